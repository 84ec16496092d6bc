"""ProbCover (Yehuda et al. 2022): greedy maximum coverage by δ-balls, δ from cluster purity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoal.cache import PoolCache
from autoal.errors import ConfigError
from autoal.strategies import QueryContext, build_strategy
from autoal.strategies.probcover import ball_graph, probcover_order, purity_radius


def _blobs(sizes=(30, 20, 10), spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])[: len(sizes)]
    x = torch.cat([c + spread * torch.randn(m, 2, generator=g) for c, m in zip(centres, sizes)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


def _greedy_by_hand(x: np.ndarray, nl: int, n: int, delta: float) -> list[int]:
    """Maximum-coverage greedy on a dense adjacency, written out plainly (lowest index on ties)."""
    ball = np.linalg.norm(x[:, None] - x[None], axis=2) <= delta
    covered = ball[:nl].any(0)
    picks: list[int] = []
    for _ in range(n):
        gain = [(-1 if i in picks else int((ball[nl + i] & ~covered).sum())) for i in range(len(x) - nl)]
        p = int(np.argmax(gain))
        picks.append(p)
        covered |= ball[nl + p]
    return picks


def test_the_radius_is_the_quantile_of_the_distance_to_the_nearest_other_cluster():
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [12.0]])
    assign = torch.tensor([0, 0, 0, 1, 1])
    # nearest other-cluster distances: 10, 9, 7, 7, 9; their 0.25-quantile (linear) is 7
    assert purity_radius(x, assign, 0.75) == pytest.approx(7.0)
    assert purity_radius(x, assign, 0.5) == pytest.approx(9.0)
    assert purity_radius(x, torch.zeros(5, dtype=torch.long), 0.95) == float("inf")


def test_balls_are_the_pairs_within_the_radius_both_ways():
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(1))
    indptr, nb = ball_graph(x, 0.8)
    dense = torch.cdist(x, x) <= 0.8
    assert indptr[-1] == len(nb) == int(dense.sum())
    for i in (0, 17, 299):
        assert sorted(nb[indptr[i] : indptr[i + 1]].tolist()) == torch.nonzero(dense[i]).flatten().tolist()
    pairs = {(i, int(j)) for i in range(300) for j in nb[indptr[i] : indptr[i + 1]]}
    assert all((j, i) in pairs for i, j in pairs)


def test_picks_are_the_greedy_maximum_coverage_of_the_uncovered_samples():
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(3)) * 3
    labeled, pool = x[:15], x[15:]
    picks, size, delta = probcover_order(pool, labeled, 12, 4, np.random.default_rng(0))
    assert np.isfinite(delta) and delta > 0
    assert picks.tolist() == _greedy_by_hand(x.numpy(), 15, 12, delta)
    indptr, _ = ball_graph(x, delta)
    assert size.tolist() == np.diff(indptr)[15:].tolist()


def test_each_uncovered_blob_gets_one_pick_largest_first_and_the_labeled_blob_none():
    x, blob = _blobs(sizes=(30, 20, 10, 8))
    labeled = x[blob == 0][:1]  # one label covers the tight blob 0 (δ spans a blob, not the gap)
    picks, _, delta = probcover_order(x, labeled, 3, 4, np.random.default_rng(0))
    assert delta < 20
    assert [int(blob[p]) for p in picks] == [1, 2, 3]


def test_once_all_is_covered_the_rest_is_drawn_at_random_and_reproducibly():
    x, blob = _blobs(sizes=(6, 6))
    picks, _, _ = probcover_order(x, None, 9, 2, np.random.default_rng(5))
    assert len(set(picks.tolist())) == 9
    assert sorted(int(blob[p]) for p in picks[:2]) == [0, 1]  # one pick covers a blob
    again, _, _ = probcover_order(x, None, 9, 2, np.random.default_rng(5))
    assert picks.tolist() == again.tolist()


def test_strategy_queries_distinct_unlabeled_samples_and_ranks_its_picks_first():
    x, _ = _blobs()
    lab_rows = np.array([0, 1])
    pool_rows = np.setdiff1d(np.arange(len(x)), lab_rows)

    def cache_of(rows):
        return PoolCache(
            indices=rows + 100,
            probs=torch.full((len(rows), 3), 1 / 3),
            embeddings=x[rows],
            logits=torch.zeros(len(rows), 3),
        )

    cache, lab = cache_of(pool_rows), cache_of(lab_rows)
    strat = build_strategy("probcover")

    def ctx():  # a fresh, equally seeded context
        return QueryContext(cache, cache.indices, lab.indices, 4, np.random.default_rng(0), labeled_cache=lab)

    picks = strat.query(ctx())
    assert len(set(picks.tolist())) == 4 and set(picks.tolist()) <= set(cache.indices.tolist())
    assert picks.tolist() == strat.query(ctx()).tolist()
    r = strat.rank_score(cache, 4, np.random.default_rng(0), labeled=lab)
    top = torch.argsort(r, descending=True)[:4]
    chosen = strat.select_positions(cache, 4, np.random.default_rng(0), lab)
    assert r.max() == 1.0 and r.min() >= 0 and sorted(top.tolist()) == sorted(chosen.tolist())


def test_bad_parameters_name_the_key_and_the_range():
    with pytest.raises(ConfigError, match=r"strategy.params.purity"):
        build_strategy("probcover", purity=0)
    with pytest.raises(ConfigError, match=r"strategy.params.purity"):
        build_strategy("probcover", purity=1.5)
    with pytest.raises(ConfigError, match=r"strategy.params.iters"):
        build_strategy("probcover", iters=0)


def test_autoal_query_applies_probcover_to_ones_own_embeddings():
    import autoal

    x, blob = _blobs(sizes=(30, 20, 10, 8))
    probs = np.full((len(x), 4), 0.25)
    rows = autoal.query(probs, 3, "probcover", embeddings=x.numpy(), labeled_embeddings=x[:1].numpy())
    assert [int(blob[r]) for r in rows] == [1, 2, 3]
    with pytest.raises(ConfigError, match="reads embeddings"):
        autoal.query(probs, 3, "probcover")
