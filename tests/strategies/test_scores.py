"""Candidate score functions on hand-computed inputs (DESIGN.md §3.1)."""

import math

import numpy as np
import pytest
import torch

from autoal.cache import PoolCache
from autoal.mc import MCSummary
from autoal.strategies import build_strategy, strategy_names
from autoal.strategies import scores


def test_entropy_margin_least_confidence_by_hand():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.6, 0.3, 0.1]])
    ent = scores.entropy(p)
    assert ent[0] == 0.0
    assert ent[1] == pytest.approx(math.log(2))
    assert ent[2] == pytest.approx(-(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1)))
    assert scores.margin(p).tolist() == pytest.approx([-1.0, 0.0, -0.3])
    assert scores.least_confidence(p).tolist() == pytest.approx([0.0, 0.5, 0.4])


def test_no_nan_when_a_probability_underflows_to_zero():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mc = p.unsqueeze(0).repeat(4, 1, 1)
    for f in (
        scores.entropy(p),
        scores.margin(p),
        scores.least_confidence(p),
        scores.bald(MCSummary.from_samples(mc)),
        scores.var_ratio(MCSummary.from_samples(mc)),
        scores.mean_std(MCSummary.from_samples(mc)),
    ):
        assert torch.isfinite(f).all()


def test_bald_is_zero_when_all_mc_samples_agree_and_positive_otherwise():
    agree = torch.tensor([[0.7, 0.2, 0.1]]).repeat(5, 1).unsqueeze(1)  # (T=5, N=1, C=3)
    assert scores.bald(MCSummary.from_samples(agree)).item() == pytest.approx(0.0, abs=1e-6)
    disagree = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]])  # mean (0.5, 0.5)
    expected = math.log(2) - (-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))
    assert scores.bald(MCSummary.from_samples(disagree)).item() == pytest.approx(expected, rel=1e-5)


def test_var_ratio_counts_modal_votes_and_is_not_least_confidence():
    # sample 0: votes 0,0,1,1,1 → 1 − 3/5; sample 1: all vote 0 → 0
    mc = torch.tensor(
        [
            [[0.6, 0.4], [0.51, 0.49]],
            [[0.6, 0.4], [0.51, 0.49]],
            [[0.4, 0.6], [0.51, 0.49]],
            [[0.4, 0.6], [0.51, 0.49]],
            [[0.4, 0.6], [0.51, 0.49]],
        ]
    )
    vr = scores.var_ratio(MCSummary.from_samples(mc))
    assert vr.tolist() == pytest.approx([0.4, 0.0])
    lc = scores.least_confidence(mc.mean(0))
    # least confidence ranks sample 1 (p1 = 0.51) above sample 0 (p1 = 0.52); VarRatio the reverse
    assert lc[1] > lc[0] and vr[0] > vr[1]


def test_mean_std_by_hand():
    mc = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert scores.mean_std(MCSummary.from_samples(mc)).item() == pytest.approx(0.5)


def _cache(n=40, c=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g)
    mc = torch.softmax(logits.unsqueeze(0) + 0.5 * torch.randn(6, n, c, generator=g), -1)
    return PoolCache(
        indices=np.arange(100, 100 + n),
        probs=torch.softmax(logits, 1),
        embeddings=torch.randn(n, d, generator=g),
        logits=logits,
        mc=MCSummary.from_samples(mc),
    )


def test_kmeans_returns_one_distinct_pick_per_cluster():
    # three tight, well-separated clusters: one pick from each
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    emb = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    cache = PoolCache(np.arange(60), torch.full((60, 2), 0.5), emb, torch.zeros(60, 2))
    pos = build_strategy("kmeans").select_positions(cache, 3, np.random.default_rng(0))
    assert len(set(pos.tolist())) == 3
    assert sorted(p // 20 for p in pos) == [0, 1, 2]


@pytest.mark.parametrize(
    "name", ["random", "entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std"]
)
def test_every_candidate_queries_distinct_unlabeled_indices_reproducibly(name):
    from autoal.strategies import QueryContext

    cache = _cache()

    def ask(seed):
        ctx = QueryContext(
            cache=cache, unlabeled=cache.indices, labeled=np.arange(5), n=7, rng=np.random.default_rng(seed)
        )
        return build_strategy(name).query(ctx)

    a, b = ask(3), ask(3)
    assert len(set(a.tolist())) == 7 and set(a.tolist()) <= set(cache.indices.tolist())
    assert a.tolist() == b.tolist()


def test_ties_are_broken_by_a_seeded_order():
    from autoal.selection import top_n

    s = torch.zeros(50)
    a = top_n(s, 10, np.random.default_rng(1))
    b = top_n(s, 10, np.random.default_rng(1))
    c = top_n(s, 10, np.random.default_rng(2))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert top_n(torch.arange(50.0), 3, np.random.default_rng(0)).tolist() == [49, 48, 47]


def test_rank_score_is_in_unit_interval_and_orders_like_the_score():
    cache = _cache()
    r = build_strategy("entropy").rank_score(cache, 5, np.random.default_rng(0))
    s = scores.entropy(cache.probs)
    assert r.min() >= 0 and r.max() <= 1
    assert torch.argmax(r) == torch.argmax(s) and torch.argmin(r) == torch.argmin(s)


def test_registry_lists_candidates_and_rejects_unknown_names_and_params():
    from autoal.errors import ConfigError

    names = strategy_names()
    for n in ["random", "entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std"]:
        assert n in names
    with pytest.raises(ConfigError, match="valid choices: .*margin"):
        build_strategy("marginn")
    with pytest.raises(ConfigError, match="iterz.*valid parameters: iters"):
        build_strategy("kmeans", iterz=3)


def test_bald_without_mc_samples_is_a_clear_error():
    cache = _cache()
    cache.mc = None
    with pytest.raises(ValueError, match="al.mc_samples"):
        build_strategy("bald").compute_score(cache)


def test_kmeans_rank_score_is_one_on_picks_and_falls_with_distance():
    g = torch.Generator().manual_seed(2)
    emb = torch.cat([torch.zeros(1, 2), torch.randn(30, 2, generator=g) * 0.1, torch.tensor([[50.0, 50.0]])])
    cache = PoolCache(np.arange(32), torch.full((32, 2), 0.5), emb, torch.zeros(32, 2))
    strat = build_strategy("kmeans")
    r = strat.rank_score(cache, 2, np.random.default_rng(0))
    picks = strat.select_positions(cache, 2, np.random.default_rng(0))
    assert torch.all(r[torch.as_tensor(picks)] == 1.0)
    others = [i for i in range(32) if i not in set(picks.tolist())]
    assert r[others].max() < 1.0 and r.min() >= 0.0
