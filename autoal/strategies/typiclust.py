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

from autoal.bounds import bounded, choice
from autoal.cache import PoolCache
from autoal.distances import sq_dists
from autoal.kmeans import kmeans
from autoal.strategies.base import PoolStrategy
from autoal.strategies.registry import register_strategy
from autoal.selection import picks_first_rank_score

CLUSTER_ORDERS = ("size", "far")


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
    order: str = "size",
) -> tuple[np.ndarray, torch.Tensor]:
    """TypiClust's ``n`` picks (row positions in ``pool``, in pick order) and every pool row's
    typicality. ``labeled`` are the labeled set's embeddings (or None). ``order`` ranks the
    clusters with the fewest labeled (or picked) members: ``size`` the largest first (the
    paper's), ``far`` the one whose most typical member lies farthest from everything labeled or
    picked so far first (k-center greedy over the clusters' typical members; ties by size)."""
    if order not in CLUSTER_ORDERS:
        raise ValueError(f"order must be one of {CLUSTER_ORDERS}; got {order!r}")
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
    big_enough = [c for c in range(k) if sizes[c] >= min_cluster and members[c]]
    eligible = big_enough if big_enough else [c for c in range(k) if members[c]]
    if order == "far":
        picks = _far_first(x, nl, n, members, sizes, covered, eligible)
    else:
        picks = _largest_first(n, members, sizes, covered, eligible)
    if len(picks) < n:  # every cluster exhausted: the most typical rows left
        taken = set(picks)
        picks += [r for r in torch.argsort(pool_typ, descending=True).tolist() if r not in taken][: n - len(picks)]
    return np.asarray(picks, dtype=np.int64), pool_typ


def _largest_first(
    n: int, members: list[list[int]], sizes: list[int], covered: list[int], eligible: list[int]
) -> list[int]:
    """TypiClust's order: b times the cluster with the fewest labeled or picked members, the
    largest on ties, and its most typical member not yet picked; the clusters left out of
    ``eligible`` (too small) once the eligible ones are exhausted."""
    nxt = [0] * len(members)
    heap = [(covered[c], -sizes[c], c) for c in eligible]
    heapq.heapify(heap)
    picks: list[int] = []
    while len(picks) < n:
        if not heap:
            rest = [c for c in range(len(members)) if nxt[c] < len(members[c]) and c not in eligible]
            if not rest:
                break
            eligible = eligible + rest
            heap = [(covered[c], -sizes[c], c) for c in rest]
            heapq.heapify(heap)
            continue
        cov, neg_size, c = heapq.heappop(heap)
        picks.append(members[c][nxt[c]])
        nxt[c] += 1
        covered[c] += 1
        if nxt[c] < len(members[c]):
            heapq.heappush(heap, (covered[c], neg_size, c))
    return picks


def _nearest_sq(points: torch.Tensor, rows: torch.Tensor) -> np.ndarray:
    """Per point: the squared distance to its nearest row, on the host (one transfer per call)."""
    return sq_dists(points, rows.float()).min(1).values.cpu().numpy()


def _far_first(
    x: torch.Tensor,
    nl: int,
    n: int,
    members: list[list[int]],
    sizes: list[int],
    covered: list[int],
    eligible: list[int],
) -> list[int]:
    """As :func:`_largest_first`, but among the clusters with the fewest labeled or picked members
    the one whose most typical pool member is farthest from the labeled rows (``x[:nl]``) and the
    picks so far comes first (ties, e.g. with nothing labeled yet: the larger cluster). On a
    long-tailed pool the largest uncovered clusters belong to the head classes; the farthest ones
    are the regions the labeled set has not reached."""
    nxt = [0] * len(members)
    groups = [list(eligible), [c for c in range(len(members)) if members[c] and c not in eligible]]
    picks: list[int] = []
    for group in groups:
        if not group or len(picks) >= n:
            continue
        reps = x[nl:][torch.tensor([members[c][0] for c in group], device=x.device)].float()
        far = _nearest_sq(reps, x[:nl]) if nl else np.full(len(group), np.inf, dtype=np.float32)
        if picks:  # picks made from an earlier group
            far = np.minimum(far, _nearest_sq(reps, x[nl + torch.tensor(picks, device=x.device)]))
        while len(picks) < n:
            live = [i for i, c in enumerate(group) if nxt[c] < len(members[c])]
            if not live:
                break
            low = min(covered[group[i]] for i in live)
            i = max((i for i in live if covered[group[i]] == low), key=lambda i: (float(far[i]), sizes[group[i]]))
            c = group[i]
            r = members[c][nxt[c]]
            picks.append(r)
            nxt[c] += 1
            covered[c] += 1
            far = np.minimum(far, _nearest_sq(reps, x[nl + r : nl + r + 1]))
    return picks


@dataclass
class TypiClustParams:
    """``strategy.params`` of TypiClust (conf/strategy/typiclust.yaml)."""

    k_nn: int = bounded(20, 1, note="neighbours for typicality")
    min_cluster: int = bounded(5, 1, note="smallest cluster used while larger ones remain")
    max_clusters: int = bounded(500, 1, note="cap on the number of clusters |L| + b")
    iters: int = bounded(20, 1, note="Lloyd iterations")
    order: str = choice(
        "size", CLUSTER_ORDERS, note="least-covered clusters: size = largest first (the paper's), far = farthest first"
    )


@register_strategy("typiclust")
class TypiClust(PoolStrategy):
    """TypiClust (module docstring). ``k_nn``: neighbours for typicality; ``min_cluster``:
    smallest cluster considered while larger ones remain; ``max_clusters``: cap on |L| + b;
    ``order``: which least-covered cluster comes first (:func:`typiclust_order`)."""

    needs = frozenset({"embeddings", "labeled_cache"})
    params_type = TypiClustParams  # types and ranges, checked by build_strategy (autoal.typed_config)

    def __init__(
        self, k_nn: int = 20, min_cluster: int = 5, max_clusters: int = 500, iters: int = 20, order: str = "size"
    ) -> None:
        if order not in CLUSTER_ORDERS:
            raise ValueError(f"order must be one of {CLUSTER_ORDERS}; got {order!r}")
        self.k_nn, self.min_cluster, self.max_clusters, self.iters = k_nn, min_cluster, max_clusters, iters
        self.order = order

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
            order=self.order,
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
