"""Cluster-Margin (Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh, Kumar: "Batch
Active Learning at Scale", NeurIPS 2021): a Margin shortlist made diverse by round-robin over
hierarchical (average-linkage) clusters of the shortlist's embeddings.

The math is three pure functions, the steps of the paper's Algorithm 1: :func:`margin_shortlist`
(the k_m lowest-margin samples), :func:`average_linkage_clusters` (HAC, average linkage) and
:func:`round_robin_order` (clusters from smallest to largest, one pick per cluster per pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from autoal.bounds import bounded
from autoal.cache import PoolCache
from autoal.errors import ConfigError
from autoal.memory import available_memory_bytes, human_bytes
from autoal.strategies import scores
from autoal.strategies.base import PoolStrategy, QueryContext
from autoal.strategies.registry import register_strategy


def margin_gaps(probs: torch.Tensor) -> torch.Tensor:
    """p_top1 − p_top2 per row (the negation of :func:`autoal.strategies.scores.margin`, so the
    same margin the "margin" strategy ranks by); a NaN row counts as certain (+inf)."""
    return torch.nan_to_num(-scores.margin(probs.float()), nan=float("inf"))


def margin_shortlist(probs: torch.Tensor, size: int) -> np.ndarray:
    """Algorithm 1's X_m: row positions of the ``size`` lowest-margin rows, lowest margin first,
    equal margins in position order (a stable sort, so no randomness)."""
    gaps = margin_gaps(probs)
    size = min(int(size), gaps.shape[0])
    return torch.argsort(gaps, stable=True)[:size].cpu().numpy().astype(np.int64)


def hac_bytes(m: int) -> int:
    """Memory of average-linkage HAC on ``m`` rows: the condensed float64 distance matrix, which
    SciPy holds once as input and once as its working copy."""
    return 2 * 8 * (m * (m - 1) // 2)


def average_linkage_clusters(x: torch.Tensor, k: int) -> np.ndarray:
    """Hierarchical agglomerative clustering with average linkage (Algorithm 1's HAC, Euclidean
    distance; SciPy's ``linkage``) of the rows of ``x``, cut into at most ``k`` flat clusters:
    the lowest cut of the dendrogram that leaves no more than ``k`` (``fcluster(maxclust)``).
    Fewer than ``k`` come out only where merges tie at that height — identical rows are never
    split, so a shortlist of identical embeddings is one cluster. Returns a label per row in
    0..c−1 (c clusters). Runs on a float64 CPU copy; deterministic for a given ``x``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    m = x.shape[0]
    k = max(1, int(k))
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    if k >= m:  # every row its own cluster: the cut below the first merge
        return np.arange(m, dtype=np.int64)
    if k == 1:
        return np.zeros(m, dtype=np.int64)
    pts = x.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(pts).all():
        raise ValueError("cluster_margin: the embeddings hold NaN or infinite values (did training diverge?)")
    z = linkage(pts, method="average", metric="euclidean")
    labels = fcluster(z, t=k, criterion="maxclust")
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def round_robin_order(labels: np.ndarray) -> np.ndarray:
    """Algorithm 1's round-robin sampling over clusters. Row i of ``labels`` is the cluster of
    the shortlist's i-th sample, rows in query priority (lowest margin first). Returns every row
    in pick order: pass p takes the p-th row of each cluster that has one, clusters visited from
    smallest to largest (equal sizes: the cluster whose first row comes first), so no cluster
    gives a second pick before every cluster has given one; inside a cluster, rows in order."""
    labels = np.asarray(labels, dtype=np.int64)
    m = labels.shape[0]
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    first = np.full(counts.shape[0], m, dtype=np.int64)
    np.minimum.at(first, inv, np.arange(m))
    visit = np.empty_like(counts)
    visit[np.lexsort((first, counts))] = np.arange(counts.shape[0])  # a cluster's place in a pass
    by_cluster = np.argsort(inv, kind="stable")
    within = np.empty(m, dtype=np.int64)  # a row's rank inside its cluster = the pass that takes it
    within[by_cluster] = np.arange(m) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.lexsort((visit[inv], within)).astype(np.int64)


def cluster_margin_order(
    probs: torch.Tensor, embeddings: torch.Tensor, n: int, shortlist_factor: float
) -> tuple[np.ndarray, int]:
    """The shortlist of min(N, max(n, ⌈shortlist_factor·n⌉)) lowest-margin rows in Cluster-Margin's
    pick order (its first ``n`` are the query), and the number of clusters it fell into."""
    total = probs.shape[0]
    size = min(total, max(int(n), math.ceil(float(shortlist_factor) * int(n))))
    short = margin_shortlist(probs, size)
    if hac_bytes(len(short)) > (available_memory_bytes() or float("inf")):
        raise ConfigError(
            f"cluster_margin: clustering a shortlist of {len(short):,} samples needs "
            f"{human_bytes(hac_bytes(len(short)))} (SciPy's condensed distances), more than this "
            "machine has available; lower strategy.params.shortlist_factor or al.query_size"
        )
    rows = torch.as_tensor(short, dtype=torch.long, device=embeddings.device)
    labels = average_linkage_clusters(embeddings[rows], min(int(n), len(short)))
    clusters = int(labels.max()) + 1 if len(labels) else 0
    return short[round_robin_order(labels)], clusters


@dataclass
class ClusterMarginParams:
    """``strategy.params`` of Cluster-Margin (conf/strategy/cluster_margin.yaml)."""

    shortlist_factor: float = bounded(10.0, 1, note="the shortlist is this many times the batch")


@register_strategy("cluster_margin")
class ClusterMargin(PoolStrategy):
    """Cluster-Margin (Citovsky et al.: "Batch Active Learning at Scale", NeurIPS 2021, Algorithm 1).

    Per round: the k_m = ``shortlist_factor`` × b lowest-margin unlabeled samples (margin
    p_top1 − p_top2 from the shared cache, capped at the pool); their penultimate embeddings
    clustered by HAC with average linkage; then round-robin: clusters from smallest to largest,
    one pick per cluster per pass, until b picks. Small clusters first spreads the batch over
    regions of the uncertain set instead of spending it on one dense, uncertain region.

    Choices where the paper leaves room (or its setting differs):
    (1) the paper runs HAC once, before the first round, over the whole pool, with a distance
    threshold ε tuned per data set, and reuses the clusters in every round; here HAC runs every
    round, over the shortlist only, on the current model's embeddings — the pool's O(N²)
    distances (50,000 images: 10 GB) are out of reach without the paper's distributed HAC, and
    the embeddings move as the model is retrained, so clusters of round 0 grow stale;
    (2) instead of ε, whose meaning changes with the embeddings' scale every round, the
    dendrogram is cut into (at most) b clusters: a count, not a scale, so nothing to tune per data
    set or round; the batch takes one sample from every cluster, and with the default factor 10 a
    cluster holds 10 shortlisted samples on average; merges that tie at the cut (identical
    embeddings) keep their rows together, so fewer clusters and a second pass (the paper's
    round-robin case, which a threshold reaches whenever clusters are fewer than b);
    (3) inside a cluster the paper draws at random; here the lowest-margin sample comes first,
    ties by pool position, so the query is deterministic (the round's generator is not used);
    (4) clusters of equal size are visited in the order of their lowest-margin sample.
    Cost: O(k_m²) time and memory for the HAC (float64 distances; a shortlist of 10,000 needs
    about 0.8 GB), checked against the free memory before it is allocated.
    """

    needs = frozenset({"embeddings"})

    params_type = ClusterMarginParams  # types and ranges, checked by build_strategy (autoal.typed_config)

    def __init__(self, shortlist_factor: float = 10.0) -> None:
        self.shortlist_factor = float(shortlist_factor)

    def _order(self, cache: PoolCache, n: int) -> tuple[np.ndarray, int]:
        if not 0 <= int(n) <= len(cache):
            raise ValueError(f"cannot select {n} of {len(cache)} samples")
        if int(n) == 0:
            return np.zeros(0, dtype=np.int64), 0
        return cluster_margin_order(cache.probs, cache.embeddings, int(n), self.shortlist_factor)

    def select_positions(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> np.ndarray:
        return self._order(cache, n)[0][: int(n)]

    def query(self, ctx: QueryContext) -> np.ndarray:
        order, clusters = self._order(ctx.cache, ctx.n)
        ctx.log("cluster_margin/clusters", clusters)
        return ctx.unlabeled[order[: ctx.n]]

    def rank_score(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> torch.Tensor:
        """1 down to 0 by rank: the shortlist in pick order first, then the rest of the pool by
        margin (lowest first), so the top ``n`` are the picks."""
        order = self._order(cache, n)[0]
        by_margin = margin_shortlist(cache.probs, len(cache))
        rest = by_margin[np.isin(by_margin, order, invert=True)]
        full = torch.as_tensor(np.concatenate([order, rest]), dtype=torch.long, device=cache.probs.device)
        m = len(cache)
        r = torch.empty(m, device=cache.probs.device)
        r[full] = torch.linspace(1.0, 0.0, m, device=r.device) if m > 1 else torch.ones(m, device=r.device)
        return r
