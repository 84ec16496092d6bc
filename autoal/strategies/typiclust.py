"""TypiClust (Hacohen, Dekel & Weinshall, ICML 2022): typical samples from uncovered clusters.

At low budgets the samples that help most are typical ones that cover the data, not uncertain
ones (SelectAL, Hacohen & Weinshall, NeurIPS 2023, shows the best family flips as the budget
grows). TypiClust clusters L ∪ U into |L| + b clusters with k-means, then b times takes the
cluster with the fewest labeled (or already picked) members — the largest such cluster on ties
— and picks its most *typical* unlabeled member, typicality(x) = 1 / mean distance from x to its
min(20, |cluster| − 1) nearest neighbours inside the cluster. Clusters smaller than 5 are
skipped while larger ones remain (the authors' code does the same).

Choices where the paper leaves room: the representation is the task model's embedding from the
shared cache (the paper uses self-supervised features, which this platform does not train); the
number of clusters is capped at ``max_clusters`` (the authors cap it at 500) for cost.
"""

from __future__ import annotations

import heapq
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


def typicality(x: torch.Tensor, assign: torch.Tensor, num_clusters: int, k_nn: int = 20) -> torch.Tensor:
    """Per row: 1 / (mean Euclidean distance to its min(k_nn, m − 1) nearest neighbours among
    the m rows of its own cluster); 0 for a row alone in its cluster."""
    out = torch.zeros(x.shape[0], device=x.device)
    order = torch.argsort(assign, stable=True)
    counts = torch.bincount(assign, minlength=num_clusters).tolist()
    start = 0
    for m in counts:
        rows = order[start : start + m]
        start += m
        if m < 2:
            continue
        xc = x[rows]
        d = sq_dists(xc, xc).clamp_min_(0).sqrt_()
        k = min(k_nn, m - 1)
        nearest = d.topk(k + 1, dim=1, largest=False).values[:, 1:]  # drop the row itself
        out[rows] = 1.0 / nearest.mean(1).clamp_min(1e-12)
    return out


def typiclust_order(
    pool: torch.Tensor,
    labeled: torch.Tensor | None,
    n: int,
    *,
    seed: int = 0,
    k_nn: int = 20,
    min_cluster: int = 5,
    max_clusters: int = 500,
    iters: int = 20,
) -> tuple[np.ndarray, torch.Tensor]:
    """TypiClust's ``n`` picks (row positions in ``pool``, in pick order) and every pool row's
    typicality. ``labeled`` are the labeled set's embeddings (or None)."""
    nl = 0 if labeled is None else labeled.shape[0]
    x = pool.float() if labeled is None else torch.cat([labeled.float(), pool.float()])
    n = min(int(n), pool.shape[0])
    k = max(1, min(nl + n, max_clusters, x.shape[0]))
    _, assign = kmeans(x, k, iters=iters, seed=seed)
    typ = typicality(x, assign, k, k_nn)
    sizes = torch.bincount(assign, minlength=k).tolist()
    covered = torch.bincount(assign[:nl], minlength=k).tolist() if nl else [0] * k
    pool_assign = assign[nl:]
    pool_typ = typ[nl:]
    # per cluster: its pool rows, most typical first
    members: list[list[int]] = [[] for _ in range(k)]
    for r in torch.argsort(pool_typ, descending=True, stable=True).tolist():
        members[int(pool_assign[r])].append(r)
    nxt = [0] * k
    big_enough = [c for c in range(k) if sizes[c] >= min_cluster and members[c]]
    eligible = big_enough if big_enough else [c for c in range(k) if members[c]]
    heap = [(covered[c], -sizes[c], c) for c in eligible]
    heapq.heapify(heap)
    picks: list[int] = []
    while len(picks) < n:
        if not heap:  # every eligible cluster exhausted: the remaining clusters, then any row
            rest = [c for c in range(k) if nxt[c] < len(members[c]) and c not in eligible]
            if rest:
                eligible += rest
                heap = [(covered[c], -sizes[c], c) for c in rest]
                heapq.heapify(heap)
                continue
            taken = set(picks)
            picks += [r for r in torch.argsort(pool_typ, descending=True).tolist() if r not in taken][: n - len(picks)]
            break
        cov, neg_size, c = heapq.heappop(heap)
        picks.append(members[c][nxt[c]])
        nxt[c] += 1
        covered[c] += 1
        if nxt[c] < len(members[c]):
            heapq.heappush(heap, (covered[c], neg_size, c))
    return np.asarray(picks, dtype=np.int64), pool_typ


@dataclass
class TypiClustParams:
    """``strategy.params`` of TypiClust (conf/strategy/typiclust.yaml)."""

    k_nn: int = bounded(20, 1, note="neighbours for typicality")
    min_cluster: int = bounded(5, 1, note="smallest cluster used while larger ones remain")
    max_clusters: int = bounded(500, 1, note="cap on the number of clusters |L| + b")
    iters: int = bounded(20, 1, note="Lloyd iterations")


@register_strategy("typiclust")
class TypiClust(PoolStrategy):
    """TypiClust (module docstring). ``k_nn``: neighbours for typicality; ``min_cluster``:
    smallest cluster considered while larger ones remain; ``max_clusters``: cap on |L| + b."""

    needs = frozenset({"embeddings", "labeled_cache"})
    params_type = TypiClustParams  # types and ranges, checked by build_strategy (autoal.typed_config)

    def __init__(self, k_nn: int = 20, min_cluster: int = 5, max_clusters: int = 500, iters: int = 20) -> None:
        self.k_nn, self.min_cluster, self.max_clusters, self.iters = k_nn, min_cluster, max_clusters, iters

    def _order(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None
    ) -> tuple[np.ndarray, torch.Tensor]:
        return typiclust_order(
            cache.embeddings,
            None if labeled is None else labeled.embeddings,
            n,
            seed=int(rng.integers(0, 2**31 - 1)),
            k_nn=self.k_nn,
            min_cluster=self.min_cluster,
            max_clusters=self.max_clusters,
            iters=self.iters,
        )

    def select_positions(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> np.ndarray:
        return self._order(cache, n, rng, labeled)[0]

    def rank_score(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> torch.Tensor:
        """1 down to 0.5 over the picks in pick order; below 0.5 the other rows by typicality."""
        picks, typ = self._order(cache, n, rng, labeled)
        return picks_first_rank_score(picks, typ)
