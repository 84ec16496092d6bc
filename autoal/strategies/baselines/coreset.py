"""Core-set selection by greedy k-center (Sener & Savarese, ICLR 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autoal.bounds import bounded
from autoal.cache import PoolCache
from autoal.strategies.base import PoolStrategy
from autoal.distances import min_sq_dists, nearest_rows, sq_dists
from autoal.strategies.registry import register_strategy


def k_center_greedy(
    pool: torch.Tensor, centres: torch.Tensor | None, k: int, rng: np.random.Generator, chunk: int = 4096
) -> np.ndarray:
    """Greedy k-center (Gonzalez 1985; Sener & Savarese's Algorithm 1): repeatedly add the pool
    point farthest from its nearest centre. ``centres`` are the initial centres (the labeled
    set); without any, the first pick is a seeded uniform draw. Distance updates are one
    vectorized (chunked) pass per pick; returns ``k`` distinct positions in pick order."""
    x = pool.float()
    k = min(int(k), x.shape[0])
    d2, picks = _start(x, centres, rng, chunk)
    return _greedy(x, d2, k, picks, chunk)


def _start(
    x: torch.Tensor, centres: torch.Tensor | None, rng: np.random.Generator, chunk: int
) -> tuple[torch.Tensor, list[int]]:
    """Every pool row's squared distance to its nearest centre, and the picks so far: none when
    there are centres; else a seeded uniform first pick, marked −1 so it is never picked again."""
    if centres is not None and centres.shape[0] > 0:
        return min_sq_dists(x, centres.float().to(x.device), chunk=chunk), []
    first = int(rng.integers(0, x.shape[0]))
    d2 = _dist_to(x, first, chunk)
    d2[first] = -1.0
    return d2, [first]


def group_k_center_greedy(
    pool: torch.Tensor,
    centres: torch.Tensor | None,
    k: int,
    rng: np.random.Generator,
    group: int,
    chunk: int = 4096,
) -> np.ndarray:
    """Greedy k-center over uncovered *groups*: each pick is the pool point whose ``group``-point
    neighbourhood (itself and its ``group`` − 1 nearest pool points) lies farthest from the
    centres, scored by the neighbourhood's nearest member. A lone outlier far from everything
    scores by its (nearer) neighbours, so the picks go to uncovered regions that hold at least
    ``group`` points — the outlier-robust reading of k-center (Charikar et al., SODA 2001, drop
    what no group supports). ``group`` = 1 is :func:`k_center_greedy`. Returns ``k`` distinct
    positions in pick order."""
    x = pool.float()
    n = x.shape[0]
    k, m = min(int(k), n), max(1, min(int(group), n))
    if m == 1:
        return k_center_greedy(pool, centres, k, rng, chunk)
    # the m − 1 nearest pool neighbours of every pool row, itself first
    nbrs = nearest_rows(x, m, chunk=chunk)
    nbrs[:, 0] = torch.arange(n, device=x.device)  # duplicates can displace the row itself from the top m
    d2, picks = _start(x, centres, rng, chunk)
    taken = torch.zeros(n, dtype=torch.bool, device=x.device)
    taken[picks] = True
    while len(picks) < k:
        score = d2[nbrs].min(1).values.masked_fill_(taken, -1.0)
        if float(score.max()) <= 0.0:  # every group is covered: the farthest single point
            score = d2.masked_fill(taken, -1.0)
        nxt = int(torch.argmax(score))
        picks.append(nxt)
        taken[nxt] = True
        d2 = torch.minimum(d2, _dist_to(x, nxt, chunk))
    return np.asarray(picks, dtype=np.int64)


def _dist_to(x: torch.Tensor, i: int, chunk: int) -> torch.Tensor:
    c = x[i : i + 1]
    return torch.cat([sq_dists(x[s : s + chunk], c).squeeze(1) for s in range(0, x.shape[0], chunk)])


def _greedy(x: torch.Tensor, d2: torch.Tensor, k: int, picks: list[int], chunk: int) -> np.ndarray:
    while len(picks) < k:
        nxt = int(torch.argmax(d2))
        picks.append(nxt)
        d2 = torch.minimum(d2, _dist_to(x, nxt, chunk))
        d2[nxt] = -1.0  # never again, even when duplicates leave every distance at 0
    return np.asarray(picks, dtype=np.int64)


@dataclass
class CoresetParams:
    """``strategy.params`` of Core-set (conf/strategy/coreset.yaml)."""

    chunk: int = bounded(4096, 1, note="pool rows per distance pass")
    group: int = bounded(1, 1, note="1 = k-center greedy; m > 1 = over uncovered groups of m points")


@register_strategy("coreset")
class Coreset(PoolStrategy):
    """Core-set (Sener & Savarese: "Active Learning for Convolutional Neural Networks: A Core-Set
    Approach", ICLR 2018).

    The labeled set's embeddings are the initial centres; the b picks are chosen by the greedy
    2-approximation of the k-center problem: each pick is the unlabeled sample farthest (in
    Euclidean distance between penultimate embeddings) from its nearest centre, which then
    becomes a centre. This minimizes the covering radius of L ∪ picks over the pool.

    Choices where the paper leaves room: (1) the greedy algorithm (the paper's Algorithm 1), not
    the robust mixed-integer refinement of its Algorithm 2, as in the DeepAL toolkits; (2) the
    embeddings of both sets come from the round's task model, eval mode (the shared cache and the
    labeled cache); (3) ties in the argmax go to the lowest position; (4) with an empty labeled
    set the first centre is a seeded uniform draw. Distances are computed in float32 tiles of
    ``chunk`` rows, so memory stays O(chunk²) for any pool.
    """

    needs = frozenset({"embeddings", "labeled_cache"})

    params_type = CoresetParams  # types and ranges, checked by build_strategy (autoal.typed_config)

    def __init__(self, chunk: int = 4096, group: int = 1) -> None:
        self.chunk, self.group = int(chunk), int(group)

    def select_positions(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> np.ndarray:
        centres = None if labeled is None else labeled.embeddings
        if self.group > 1:
            return group_k_center_greedy(cache.embeddings, centres, n, rng, self.group, chunk=self.chunk)
        return k_center_greedy(cache.embeddings, centres, n, rng, chunk=self.chunk)
