"""TypiClust (Hacohen et al. 2022): typical samples from the clusters that L does not cover."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoal.cache import PoolCache
from autoal.errors import ConfigError
from autoal.strategies import QueryContext, build_strategy
from autoal.strategies.typiclust import typicality, typiclust_order


def _blobs(sizes=(30, 20, 10), spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])[: len(sizes)]
    x = torch.cat([c + spread * torch.randn(m, 2, generator=g) for c, m in zip(centres, sizes)])
    blob = np.repeat(np.arange(len(sizes)), sizes)
    return x, blob


def test_typicality_is_highest_at_the_dense_centre_of_a_cluster():
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [-0.1, 0.0], [0.0, 0.1], [0.0, -0.1], [3.0, 3.0]])
    t = typicality(x, torch.zeros(6, dtype=torch.long), 1, k_nn=3)
    assert int(t.argmax()) == 0 and int(t.argmin()) == 5
    # by hand for the outlier: mean distance to its 3 nearest neighbours
    d = (x[:5] - x[5]).norm(dim=1).sort().values[:3].mean()
    assert t[5].item() == pytest.approx(1.0 / d.item(), rel=1e-5)


def test_picks_cover_the_uncovered_clusters_first_largest_first_most_typical_member():
    x, blob = _blobs(sizes=(30, 20, 10, 8))
    labeled = x[blob == 0][:3]  # cluster 0 is covered
    pool = x
    picks, typ = typiclust_order(pool, labeled, 3, seed=0, max_clusters=4)
    # the three uncovered clusters, the largest first
    assert [int(blob[p]) for p in picks] == [1, 2, 3]
    for p in picks:  # each pick is its blob's most typical member
        members = np.flatnonzero(blob == blob[p])
        assert typ[members].argmax().item() == list(members).index(p)


def _line_of_blobs():
    """Blobs on a line: 0 at x=0 (labeled), a large one at 6, a middle one at 15, a small one at 30."""
    g = torch.Generator().manual_seed(0)
    centres, sizes = [0.0, 6.0, 15.0, 30.0], [12, 30, 12, 8]
    x = torch.cat([torch.tensor([c, 0.0]) + 0.2 * torch.randn(m, 2, generator=g) for c, m in zip(centres, sizes)])
    return x, np.repeat(np.arange(4), sizes)


def test_far_order_takes_the_uncovered_cluster_farthest_from_the_labeled_set_first():
    x, blob = _line_of_blobs()
    labeled = x[blob == 0][:3]
    size, _ = typiclust_order(x, labeled, 3, seed=0, max_clusters=4)
    far, typ = typiclust_order(x, labeled, 3, seed=0, max_clusters=4, order="far")
    assert [int(blob[p]) for p in size] == [1, 2, 3]  # largest first: the big blob next to L
    # farthest first: the small blob at 30; then the middle one (15 from L and from the first
    # pick) before the large one (6 from L)
    assert [int(blob[p]) for p in far] == [3, 2, 1]
    for p in far:  # each pick is still its blob's most typical member
        members = np.flatnonzero(blob == blob[p])
        assert typ[members].argmax().item() == list(members).index(p)
    # with nothing labeled: the largest cluster first, then each time the one farthest from the picks
    first, _ = typiclust_order(x, None, 4, seed=0, max_clusters=4, order="far")
    assert [int(blob[p]) for p in first] == [1, 3, 2, 0]
    # more picks than clusters: every cluster once, then again by the same rule; all distinct
    many, _ = typiclust_order(x, labeled, 20, seed=0, max_clusters=4, order="far")
    assert len(set(many.tolist())) == 20 and [int(blob[p]) for p in many[:3]] == [3, 2, 1]


def test_strategy_queries_distinct_unlabeled_samples_and_ranks_its_picks_first():
    x, blob = _blobs()
    lab_rows = np.array([0, 1])
    pool_rows = np.setdiff1d(np.arange(len(x)), lab_rows)
    mk = lambda rows: PoolCache(
        indices=rows + 100, probs=torch.full((len(rows), 2), 0.5), embeddings=x[rows], logits=torch.zeros(len(rows), 2)
    )
    cache, lab = mk(pool_rows), mk(lab_rows)
    strat = build_strategy("typiclust", max_clusters=10)
    ctx = QueryContext(
        cache=cache, unlabeled=cache.indices, labeled=lab.indices, n=4, rng=np.random.default_rng(0), labeled_cache=lab
    )
    picks = strat.query(ctx)
    assert len(set(picks.tolist())) == 4 and set(picks.tolist()) <= set(cache.indices.tolist())
    again = strat.query(
        QueryContext(
            cache=cache,
            unlabeled=cache.indices,
            labeled=lab.indices,
            n=4,
            rng=np.random.default_rng(0),
            labeled_cache=lab,
        )
    )
    assert picks.tolist() == again.tolist()
    r = strat.rank_score(cache, 4, np.random.default_rng(0), labeled=lab)
    top = torch.argsort(r, descending=True)[:4]
    assert (
        r.max() == 1.0
        and r.min() >= 0
        and sorted(top.tolist()) == sorted(strat.select_positions(cache, 4, np.random.default_rng(0), lab).tolist())
    )


def test_more_picks_than_clusters_and_bad_parameters():
    x, _ = _blobs(sizes=(6, 6))
    picks, _ = typiclust_order(x, None, 9, seed=1, max_clusters=2)
    assert len(set(picks.tolist())) == 9
    with pytest.raises(ConfigError, match=r"strategy.params.k_nn: must be >= 1 \(neighbours for typicality\); got 0"):
        build_strategy("typiclust", k_nn=0)
    with pytest.raises(ConfigError, match=r"strategy.params.order: expected one of size, far .*got 'near'"):
        build_strategy("typiclust", order="near")
    with pytest.raises(ValueError, match="order must be one of"):
        typiclust_order(x, None, 2, order="near")
