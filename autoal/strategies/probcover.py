"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022): maximum coverage by δ-balls.

At low budgets a labeled sample teaches the model about the samples near it. ProbCover puts a
ball of radius δ around every sample and picks, greedily, the sample whose ball holds the most
samples that no labeled (or already picked) sample's ball holds yet: the greedy approximation
of maximum coverage, which the paper shows bounds the error of a 1-nearest-neighbour classifier.
δ is set without labels: L ∪ U is clustered into C groups (C = the number of classes) by
k-means, and δ is the largest radius at which at least ``purity`` of the balls hold samples of
their centre's cluster only. A ball is pure while δ stays below its centre's distance to the
nearest sample of another cluster, so δ is the (1 − purity)-quantile of those distances.

Choices where the paper leaves room: the representation is the task model's embedding from the
shared cache (the paper uses self-supervised features; AutoAL's credit formulation gives its
coverage candidates a label-free PCA of the pixels); once every sample is covered the remaining
picks are drawn at random, as in the authors' code. Balls are kept as a sparse neighbour list
(CSR), so memory grows with the number of pairs within δ, not with N².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autoal.bounds import bounded
from autoal.cache import PoolCache
from autoal.distances import sq_dists
from autoal.kmeans import kmeans
from autoal.strategies.base import PoolStrategy
from autoal.strategies.registry import register_strategy
from autoal.selection import picks_first_rank_score

#: rows per chunk of the pairwise-distance passes (bounds their memory at CHUNK × N floats)
CHUNK = 1024


def purity_radius(x: torch.Tensor, assign: torch.Tensor, purity: float) -> float:
    """ProbCover's δ (§4.1 of the paper): the largest radius at which at least ``purity`` of the
    balls around the rows of ``x`` hold only rows of their centre's cluster (``assign``), i.e. the
    (1 − purity)-quantile of each row's distance to the nearest row of another cluster; ∞ when
    there is one cluster (every ball is pure)."""
    n = x.shape[0]
    nearest_other = torch.empty(n, device=x.device)
    for s in range(0, n, CHUNK):
        d = sq_dists(x[s : s + CHUNK], x)
        d[assign[s : s + CHUNK, None] == assign[None, :]] = float("inf")
        nearest_other[s : s + CHUNK] = d.min(1).values
    finite = nearest_other[torch.isfinite(nearest_other)]
    if finite.numel() == 0:
        return float("inf")
    return float(torch.quantile(finite, 1.0 - float(purity)).clamp_min(0).sqrt())


def ball_graph(x: torch.Tensor, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The δ-balls of the rows of ``x`` as CSR arrays (``indptr``, ``neighbours``): row i's ball
    is ``neighbours[indptr[i]:indptr[i + 1]]`` (itself included). Symmetric: j is in i's ball
    exactly when i is in j's."""
    r2 = float(radius) ** 2
    cols, counts = [], []
    for s in range(0, x.shape[0], CHUNK):
        rows, c = torch.nonzero(sq_dists(x[s : s + CHUNK], x) <= r2, as_tuple=True)
        counts.append(torch.bincount(rows, minlength=min(CHUNK, x.shape[0] - s)).cpu())
        cols.append(c.cpu())
    indptr = np.concatenate([[0], np.cumsum(torch.cat(counts).numpy())]).astype(np.int64)
    return indptr, torch.cat(cols).numpy().astype(np.int64)


def _members(indptr: np.ndarray, neighbours: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The concatenated balls of ``rows`` (with repeats)."""
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([neighbours[indptr[r] : indptr[r + 1]] for r in rows])


def probcover_order(
    pool: torch.Tensor,
    labeled: torch.Tensor | None,
    n: int,
    num_clusters: int,
    rng: np.random.Generator,
    *,
    purity: float = 0.95,
    iters: int = 20,
) -> tuple[np.ndarray, np.ndarray, float]:
    """ProbCover's ``n`` picks (row positions in ``pool``, in pick order), each pool row's ball
    size, and δ. ``labeled``: the labeled set's embeddings (their balls count as covered)."""
    nl = 0 if labeled is None else labeled.shape[0]
    x = pool.float() if labeled is None else torch.cat([labeled.float(), pool.float()])
    n = min(int(n), pool.shape[0])
    k = max(1, min(int(num_clusters), x.shape[0]))
    _, assign = kmeans(x, k, iters=iters, seed=int(rng.integers(0, 2**31 - 1)))
    delta = purity_radius(x, assign, purity)
    indptr, neighbours = ball_graph(x, delta)
    total = x.shape[0]
    uncovered = np.ones(total, dtype=bool)
    uncovered[_members(indptr, neighbours, np.arange(nl))] = False
    size = np.diff(indptr)[nl:]
    # degree[i]: how many uncovered rows pool row i's ball holds (balls are symmetric, so covering
    # row j lowers the degree of every row in j's ball)
    degree = np.bincount(_members(indptr, neighbours, np.flatnonzero(~uncovered)), minlength=total)[nl:]
    degree = size - degree
    taken = np.zeros(pool.shape[0], dtype=bool)
    picks: list[int] = []
    while len(picks) < n:
        gain = np.where(taken, -1, degree)
        if gain.max() <= 0:  # everything is covered: the rest at random (the authors' choice)
            rest = np.flatnonzero(~taken)
            picks += rng.choice(rest, size=n - len(picks), replace=False).tolist()
            break
        p = int(gain.argmax())
        picks.append(p)
        taken[p] = True
        ball = neighbours[indptr[nl + p] : indptr[nl + p + 1]]
        newly = ball[uncovered[ball]]
        uncovered[newly] = False
        degree -= np.bincount(_members(indptr, neighbours, newly), minlength=total)[nl:]
    return np.asarray(picks, dtype=np.int64), size, delta


@dataclass
class ProbCoverParams:
    """``strategy.params`` of ProbCover (conf/strategy/probcover.yaml)."""

    purity: float = bounded(0.95, 0, 1, low_open=True, note="share of pure δ-balls that sets the radius δ")
    iters: int = bounded(20, 1, note="Lloyd iterations of the clustering that measures purity")


@register_strategy("probcover")
class ProbCover(PoolStrategy):
    """ProbCover (module docstring). ``purity``: the share of pure balls that sets δ (the
    paper's α, 0.95); ``iters``: Lloyd iterations of the purity clustering."""

    needs = frozenset({"embeddings", "labeled_cache"})
    params_type = ProbCoverParams  # types and ranges, checked by build_strategy (autoal.typed_config)

    def __init__(self, purity: float = 0.95, iters: int = 20) -> None:
        self.purity, self.iters = purity, iters

    def _order(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        return probcover_order(
            cache.embeddings,
            None if labeled is None else labeled.embeddings,
            n,
            cache.probs.shape[1],
            rng,
            purity=self.purity,
            iters=self.iters,
        )

    def select_positions(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> np.ndarray:
        return self._order(cache, n, rng, labeled)[0]

    def rank_score(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> torch.Tensor:
        """1 down to 0.5 over the picks in pick order; below 0.5 the other rows by ball size."""
        picks, size, _ = self._order(cache, n, rng, labeled)
        return picks_first_rank_score(picks, torch.as_tensor(size, dtype=torch.float32, device=cache.probs.device))
