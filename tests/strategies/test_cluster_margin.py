"""Cluster-Margin (Citovsky et al., NeurIPS 2021): the pure steps of Algorithm 1 (Margin shortlist,
average-linkage HAC, round-robin over clusters), the strategy's defining properties on constructed
embeddings, degenerate inputs, and one round in the loop on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import autoal
from autoal.cache import PoolCache
from autoal.errors import ConfigError
from autoal.strategies import QueryContext, build_strategy
from autoal.strategies.baselines.cluster_margin import (
    ClusterMargin,
    average_linkage_clusters,
    margin_shortlist,
    round_robin_order,
)

torch.set_num_threads(2)


def _cache(probs: torch.Tensor, emb: torch.Tensor) -> PoolCache:
    return PoolCache(
        indices=np.arange(100, 100 + len(probs)), probs=probs, embeddings=emb, logits=probs.clamp_min(1e-12).log()
    )


def _probs_with_gaps(gaps: np.ndarray, classes: int = 3) -> torch.Tensor:
    """Rows whose top-two gap p1 − p2 is exactly ``gaps`` (the rest of the mass on class 2)."""
    g = torch.as_tensor(gaps, dtype=torch.float64)
    rest = 0.1
    p1 = (1 - rest + g) / 2
    p = torch.zeros(len(g), classes, dtype=torch.float64)
    p[:, 0], p[:, 1], p[:, 2] = p1, p1 - g, rest
    return p.float()


def _blobs(sizes: list[int], dim: int = 4, spread: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Rows in well-separated blobs (centres 100 apart along the axes), blob of each row."""
    g = torch.Generator().manual_seed(seed)
    blob = np.repeat(np.arange(len(sizes)), sizes)
    centres = 100.0 * torch.eye(max(len(sizes), dim))[: len(sizes), :dim]
    x = centres[torch.as_tensor(blob)] + spread * torch.randn(len(blob), dim, generator=g)
    return x, blob


# -- the pure steps ------------------------------------------------------------------------
def test_round_robin_visits_small_clusters_first_and_every_cluster_before_a_second_pick():
    labels = np.array([7, 7, 7, 3, 3, 9])  # rows in priority order: cluster 7 has 3 rows, 3 has 2, 9 has 1
    assert round_robin_order(labels).tolist() == [5, 3, 0, 4, 1, 2]
    # equal sizes: the cluster whose first row comes first is visited first
    assert round_robin_order(np.array([1, 0, 1, 0, 2, 2])).tolist() == [0, 1, 4, 2, 3, 5]
    assert round_robin_order(np.zeros(0, dtype=np.int64)).tolist() == []
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 6, size=40)
        order = round_robin_order(labels)
        assert sorted(order.tolist()) == list(range(40))
        seen = {c: 0 for c in labels.tolist()}
        passes = []
        for row in order:  # the pass that takes a row = the picks its cluster gave before it
            passes.append(seen[labels[row]])
            seen[labels[row]] += 1
        assert passes == sorted(passes)  # no cluster gives a second pick before every cluster gave one
        sizes = np.bincount(labels)
        for p in set(passes):  # inside a pass, clusters from smallest to largest
            in_pass = [sizes[labels[r]] for r, q in zip(order, passes) if q == p]
            assert in_pass == sorted(in_pass)
        for c in np.unique(labels):  # inside a cluster, rows in priority order
            picked = [r for r in order if labels[r] == c]
            assert picked == sorted(picked)


def test_margin_shortlist_is_the_lowest_margins_in_order_ties_by_position():
    gaps = np.array([0.5, 0.1, 0.3, 0.1, 0.9, 0.0])
    assert margin_shortlist(_probs_with_gaps(gaps), 4).tolist() == [5, 1, 3, 2]
    assert margin_shortlist(_probs_with_gaps(gaps), 99).tolist() == [5, 1, 3, 2, 0, 4]
    p = _probs_with_gaps(gaps)
    p[5] = float("nan")  # a NaN row counts as certain
    assert margin_shortlist(p, 6).tolist() == [1, 3, 2, 0, 4, 5]


def _naive_average_linkage(x: np.ndarray, k: int) -> set[frozenset[int]]:
    """UPGMA by definition: merge the two clusters of least mean pairwise distance until k remain."""
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    clusters = [[i] for i in range(len(x))]
    while len(clusters) > k:
        best = min(
            ((d[np.ix_(a, b)].mean(), i, j) for i, a in enumerate(clusters) for j, b in enumerate(clusters) if i < j)
        )
        _, i, j = best
        clusters[i] = clusters[i] + clusters.pop(j)
    return {frozenset(c) for c in clusters}


@pytest.mark.parametrize("seed", range(4))
def test_average_linkage_matches_its_definition(seed):
    x = np.random.default_rng(seed).normal(size=(25, 3))
    x[:8] += 3.0  # some structure, and a chain that single linkage would cut elsewhere
    for k in (2, 4, 7):
        labels = average_linkage_clusters(torch.as_tensor(x), k)
        got = {frozenset(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)}
        assert got == _naive_average_linkage(x, k), k


def test_average_linkage_recovers_separated_blobs_and_keeps_duplicates_together():
    x, blob = _blobs([5, 3, 8, 1], spread=0.5)
    labels = average_linkage_clusters(x, 4)
    assert len(set(labels.tolist())) == 4
    assert all(len(set(labels[blob == b].tolist())) == 1 for b in range(4))  # each blob is one cluster
    dup, _ = _blobs([4, 4, 2])  # exact duplicates inside each blob: never split, so 3 clusters of at most 5
    assert len(set(average_linkage_clusters(dup, 5).tolist())) == 3
    assert average_linkage_clusters(torch.ones(6, 3), 4).tolist() == [0] * 6
    assert average_linkage_clusters(x, 99).tolist() == list(range(len(x)))
    assert average_linkage_clusters(x[:1], 3).tolist() == [0]
    with pytest.raises(ValueError, match="NaN or infinite"):
        average_linkage_clusters(torch.tensor([[0.0], [float("nan")], [1.0]]), 2)


# -- the strategy --------------------------------------------------------------------------
def test_one_pick_per_cluster_before_a_second_from_any_cluster():
    # four blobs of exact duplicates (so the cut cannot split them): sizes 6, 3, 2, 1
    x, blob = _blobs([6, 3, 2, 1])
    gaps = np.linspace(0.01, 0.5, len(blob))  # the largest blob holds the lowest margins
    cache = _cache(_probs_with_gaps(gaps), x)
    strat = ClusterMargin(shortlist_factor=100.0)  # the whole pool is the shortlist
    picks = strat.select_positions(cache, 4, np.random.default_rng(0))
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3]  # one per cluster
    assert blob[picks].tolist() == [3, 2, 1, 0]  # smallest cluster first
    for b, p in zip(blob[picks], picks):  # each cluster's lowest-margin member
        assert gaps[p] == gaps[blob == b].min()
    six = strat.select_positions(cache, 6, np.random.default_rng(0))
    assert six[:4].tolist() == picks.tolist() and blob[six[4:]].tolist() == [2, 1]  # second pass, smallest first
    # Margin alone would take the largest blob's six rows
    margin = build_strategy("margin").select_positions(cache, 6, np.random.default_rng(0))
    assert set(blob[margin].tolist()) == {0}


def test_picks_come_from_the_margin_shortlist_and_spread_over_clusters():
    rng = np.random.default_rng(3)
    x, blob = _blobs([40, 40, 40, 40, 40], dim=8, spread=1.0)
    gaps = rng.uniform(0.2, 1.0, size=len(blob))
    gaps[:15] = rng.uniform(0.0, 0.05, size=15)  # the 15 lowest margins all sit in blob 0
    probs = _probs_with_gaps(gaps * 0.9)
    cache = _cache(probs, x)
    b, factor = 10, 3.0
    picks = ClusterMargin(shortlist_factor=factor).select_positions(cache, b, np.random.default_rng(0))
    top2 = np.sort(probs.numpy(), 1)[:, -2:]
    shortlist = np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[: int(factor * b)]
    assert set(picks.tolist()) <= set(shortlist.tolist())
    assert len(set(blob[picks].tolist())) == len(set(blob[shortlist].tolist()))  # every blob of the shortlist
    margin = build_strategy("margin").select_positions(cache, b, np.random.default_rng(0))
    assert set(blob[margin].tolist()) == {0}


@pytest.mark.parametrize("n", [1, 7, 25, 60])
def test_exact_size_distinct_and_deterministic(n):
    g = torch.Generator().manual_seed(n)
    probs = torch.softmax(3 * torch.randn(60, 5, generator=g), 1)
    emb = torch.randn(60, 6, generator=g)
    cache = _cache(probs, emb)
    strat = build_strategy("cluster_margin")
    picks = strat.select_positions(cache, n, np.random.default_rng(0))
    assert picks.dtype == np.int64 and len(picks) == n and len(set(picks.tolist())) == n
    assert picks.min() >= 0 and picks.max() < 60
    for seed in (1, 2):  # the round's generator does not change the picks
        assert strat.select_positions(cache, n, np.random.default_rng(seed)).tolist() == picks.tolist()
    ctx = QueryContext(
        cache=cache, unlabeled=cache.indices, labeled=np.zeros(0, dtype=np.int64), n=n, rng=np.random.default_rng(0)
    )
    assert strat.query(ctx).tolist() == (cache.indices[picks]).tolist()
    assert 1 <= ctx.metrics["cluster_margin/clusters"] <= n
    r = strat.rank_score(cache, n, np.random.default_rng(0))
    assert r.min() >= 0 and r.max() <= 1 and set(torch.topk(r, n).indices.tolist()) == set(picks.tolist())
    if n == 60:  # b == pool: everything, each its own cluster, in margin order
        assert sorted(picks.tolist()) == list(range(60))
        assert picks.tolist() == margin_shortlist(probs, 60).tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_give_the_cpu_picks():
    g = torch.Generator().manual_seed(0)
    probs, emb = torch.softmax(torch.randn(500, 10, generator=g), 1), torch.randn(500, 32, generator=g)
    strat = build_strategy("cluster_margin")
    cpu = strat.select_positions(_cache(probs, emb), 20, np.random.default_rng(0))
    gpu = strat.select_positions(_cache(probs.cuda(), emb.cuda()), 20, np.random.default_rng(0))
    assert gpu.tolist() == cpu.tolist()
    assert strat.rank_score(_cache(probs.cuda(), emb.cuda()), 20, np.random.default_rng(0)).is_cuda


def test_degenerate_inputs():
    g = torch.Generator().manual_seed(5)
    probs = torch.softmax(torch.randn(30, 4, generator=g), 1)
    strat = ClusterMargin()
    # identical embeddings: one cluster, so the picks are Margin's, lowest margin first
    same = _cache(probs, torch.ones(30, 3))
    assert strat.select_positions(same, 8, np.random.default_rng(0)).tolist() == margin_shortlist(probs, 8).tolist()
    # a shortlist no longer than the query (factor 1): each sample its own cluster
    emb = torch.randn(30, 3, generator=g)
    one = ClusterMargin(shortlist_factor=1).select_positions(_cache(probs, emb), 8, np.random.default_rng(0))
    assert one.tolist() == margin_shortlist(probs, 8).tolist()
    # equal margins everywhere: the shortlist is the first positions
    flat = _cache(torch.full((30, 3), 1 / 3), emb)
    assert set(ClusterMargin(2).select_positions(flat, 5, np.random.default_rng(0)).tolist()) <= set(range(10))
    # a pool of one, a query of none, a query larger than the pool
    assert strat.select_positions(_cache(probs[:1], emb[:1]), 1, np.random.default_rng(0)).tolist() == [0]
    assert strat.select_positions(same, 0, np.random.default_rng(0)).tolist() == []
    with pytest.raises(ValueError, match="cannot select 31 of 30"):
        strat.select_positions(same, 31, np.random.default_rng(0))


@pytest.mark.parametrize("bad", [0.5, 0, -3, float("nan"), True, "ten", None])
def test_shortlist_factor_is_checked(bad):
    with pytest.raises(ConfigError, match="shortlist_factor"):
        build_strategy("cluster_margin", shortlist_factor=bad)
    assert build_strategy("cluster_margin", shortlist_factor=3).shortlist_factor == 3.0


def test_library_query_reads_embeddings():
    rng = np.random.default_rng(1)
    probs, emb = rng.dirichlet(np.ones(4), size=80), rng.normal(size=(80, 5))
    picks = autoal.query(probs, 6, "cluster_margin", embeddings=emb)
    assert len(set(picks.tolist())) == 6
    cache = _cache(torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(emb, dtype=torch.float32))
    assert picks.tolist() == ClusterMargin().select_positions(cache, 6, np.random.default_rng(0)).tolist()
    with pytest.raises(ConfigError, match="embeddings"):
        autoal.query(probs, 6, "cluster_margin")


def test_one_round_on_digits(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.images / 16).astype("float32")[:, None], d.target
    result = autoal.run(
        (x[:1200], y[:1200], x[1200:], y[1200:]),
        strategy="cluster_margin",
        rounds=1,
        query_size=10,
        epochs=2,
        output_dir=str(tmp_path),
    )
    assert len(result.history) == 2 and len(result.labeled) == 30 and len(set(result.labeled.tolist())) == 30
    assert set(result.history[0]["selected"]).isdisjoint(result.labeled[:20].tolist())
    assert 1 <= result.history[0]["cluster_margin/clusters"] <= 10
    assert result.run_dir.name.startswith("arrays-cluster_margin-seed0")
