"""AutoAL credited by the labels that arrive (autoal/strategies/autoal/credit.py, DESIGN.md §3.10):
the credit math, the label-free embedding, the share rule, the long-tail guard, resume."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import autoal
from autoal.cache import PoolCache
from autoal.errors import ConfigError, StateError
from autoal.strategies import QueryContext, build_strategy
from autoal.strategies.autoal.label_credit import (
    DecayedMean,
    rarity_share,
    CompetenceEstimate,
    class_quotas,
    imbalance_beyond_pvalue,
    imbalance_pvalue,
    late_tail_signal,
    pick_credit,
    prior_shifted,
    split_batch,
    tail_effect_size,
    uncertainty_share,
)
from autoal.strategies.autoal.credit import CreditFormulation
from autoal.strategies.autoal.params import CreditParams
from autoal.strategies.autoal.pool_embedding import joint_embedding, pixel_pca


# -- credit ----------------------------------------------------------------------------------
def test_pick_credit_competence_rarity_diversity():
    counts = np.array([8, 2, 0, 2])  # mean count 3
    c = pick_credit(np.array([0, 1, 3, 3]), np.array([0, 1, 2, 2]), counts)
    assert c.count == 4
    assert c.competence == pytest.approx(0.5)
    # (3 + 1) / (count + 1) per pick: class 0 -> 4/9, class 1 -> 4/3, class 2 -> 4/1 twice
    assert c.rarity == pytest.approx(np.mean([4 / 9, 4 / 3, 4.0, 4.0]))
    assert c.diversity == pytest.approx(3 / 4)
    empty = pick_credit(np.zeros(0), np.zeros(0), counts)
    assert empty.count == 0 and math.isnan(empty.competence) and math.isnan(empty.rarity)
    with pytest.raises(ValueError, match="shape"):
        pick_credit(np.zeros(2), np.zeros(3), counts)


def test_competence_estimate_is_a_decayed_beta_posterior():
    est = CompetenceEstimate(decay=0.5)
    assert est.mean == 0.5  # no evidence
    est.update(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 0]))  # 3 right, 1 wrong
    assert est.mean == pytest.approx(4 / 6)
    est.update(np.array([1, 1]), np.array([1, 1]))  # counts decay: 1.5 + 2 right, 0.5 wrong
    assert est.mean == pytest.approx(4.5 / 6)
    full = CompetenceEstimate(decay=1.0)
    full.update(np.ones(4), np.ones(4))
    full.update(np.ones(4), np.ones(4))
    assert full.mean == pytest.approx(9 / 10)


def test_competence_prior_bounds_the_estimate_with_few_picks_a_round():
    """With k right picks a round a Beta(1, 1) prior never passes (1 + 2k)/(2 + 2k); prior 0 is
    the decayed hit rate, 0.5 without evidence."""
    held, rate = CompetenceEstimate(decay=0.5), CompetenceEstimate(decay=0.5, prior=0.0)
    assert rate.mean == 0.5
    for _ in range(30):
        held.update(np.ones(2), np.ones(2))
        rate.update(np.ones(2), np.ones(2))
    assert held.mean == pytest.approx(5 / 6) and rate.mean == 1.0
    rate.update(np.array([1, 1]), np.array([1, 0]))  # decayed counts 2 + 1 right, 1 wrong
    assert rate.mean == pytest.approx(3 / 4)


def test_competence_prior_reaches_the_formulation_and_its_resumed_state():
    params = CreditParams.from_params({"competence_prior": 0.0})
    f = CreditFormulation(params)
    assert f.competence.prior == 0.0
    f.competence.update(np.ones(3), np.ones(3))
    g = CreditFormulation(params)
    g.load_state_dict(f.state_dict())
    assert g.competence.prior == 0.0 and g.competence.mean == 1.0
    with pytest.raises(ConfigError, match="competence_prior"):
        CreditParams.from_params({"competence_prior": -1.0})


def test_candidate_params_reach_each_candidate_and_a_bad_one_names_its_nested_key():
    s = build_strategy(
        "autoal_credit",
        coverage="probcover",
        coverage_params={"purity": 0.3},
        uncertainty="cluster_margin",
        uncertainty_params={"shortlist_factor": 4},
    )
    assert s.formulation.coverage.purity == 0.3 and s.formulation.uncertainty.shortlist_factor == 4.0
    default = build_strategy("autoal_credit", coverage="probcover").formulation.coverage
    assert default.purity == 0.95  # {} keeps the candidate's own defaults
    with pytest.raises(ConfigError, match=r"strategy\.params\.coverage_params\.purity: must lie in \(0, 1\]"):
        build_strategy("autoal_credit", coverage="probcover", coverage_params={"purity": 0})
    with pytest.raises(ConfigError, match=r"strategy\.params\.uncertainty_params: .*unknown parameter\(s\) purity"):
        build_strategy("autoal_credit", uncertainty_params={"purity": 0.5})
    with pytest.raises(ConfigError, match=r"strategy\.params\.coverage_params: expected a mapping"):
        build_strategy("autoal_credit", coverage_params=[0.5])


def test_typiclust_as_the_rules_coverage_takes_far_clusters_first_unless_told_otherwise():
    """The rule's own default for TypiClust (CREDIT_COVERAGE_DEFAULTS): order far; coverage_params
    still wins, and other coverage candidates get nothing they do not take."""
    assert build_strategy("autoal_credit").formulation.coverage.order == "far"
    told = build_strategy("autoal_credit", coverage_params={"order": "size", "k_nn": 7}).formulation.coverage
    assert (told.order, told.k_nn) == ("size", 7)
    assert build_strategy("typiclust").order == "size"  # TypiClust on its own stays the paper's
    assert build_strategy("autoal_credit", coverage="kmeans").formulation.coverage.name == "kmeans"
    with pytest.raises(ConfigError, match=r"strategy\.params\.coverage_params\.order: expected one of size, far"):
        build_strategy("autoal_credit", coverage_params={"order": "near"})


def test_candidate_params_are_set_from_the_command_line():
    from autoal.cli.common import compose, run_config

    cfg = run_config(
        compose(
            [
                "strategy=autoal_credit",
                "strategy.params.coverage=probcover",
                "+strategy.params.coverage_params.purity=0.5",
            ]
        )
    )
    assert cfg.strategy.params["coverage_params"] == {"purity": 0.5}
    assert build_strategy("autoal_credit", **cfg.strategy.params).formulation.coverage.purity == 0.5


def test_uncertainty_share_ramps_between_the_probe_shares():
    assert uncertainty_share(0.3, 0.6, 0.9, 0.1) == pytest.approx(0.1)
    assert uncertainty_share(0.6, 0.6, 0.9, 0.1) == pytest.approx(0.1)
    assert uncertainty_share(0.75, 0.6, 0.9, 0.1) == pytest.approx(0.5)
    assert uncertainty_share(0.99, 0.6, 0.9, 0.1) == pytest.approx(0.9)
    assert uncertainty_share(0.99, 0.6, 0.9, 0.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        uncertainty_share(0.5, 0.9, 0.6, 0.1)
    with pytest.raises(ValueError):
        uncertainty_share(0.5, 0.6, 0.9, 0.7)


def test_split_batch_keeps_a_probe_pick_on_each_side():
    assert split_batch(10, 0.1, 0.1) == (9, 1)
    assert split_batch(10, 0.02, 0.1) == (9, 1)  # the probe side keeps one pick
    assert split_batch(10, 0.98, 0.1) == (1, 9)
    assert split_batch(10, 0.5, 0.1) == (5, 5)
    assert split_batch(10, 1.0, 0.0) == (0, 10)  # no probe: one side may take all
    assert split_batch(1, 0.9, 0.1) == (0, 1)
    assert split_batch(0, 0.5, 0.1) == (0, 0)


def test_imbalance_test_separates_long_tailed_from_uniform_samples():
    rng = np.random.default_rng(0)
    prior = 10.0 ** (-np.arange(10) / 9)  # imbalance ratio 10, as mnist_lt
    prior /= prior.sum()
    lt = [imbalance_pvalue(np.bincount(rng.choice(10, 50, p=prior), minlength=10)) for _ in range(200)]
    uni = [imbalance_pvalue(np.bincount(rng.choice(10, 20), minlength=10)) for _ in range(200)]
    assert np.mean(np.array(lt) < 0.01) > 0.8  # the guard fires on most long-tailed first sets
    assert np.mean(np.array(uni) < 0.01) < 0.03  # and about alpha of the time on uniform ones
    assert imbalance_pvalue(np.array([5, 5, 5, 5])) == pytest.approx(1.0)
    assert imbalance_pvalue(np.array([3, 0, 0, 0])) == 1.0  # too few to tell
    assert imbalance_pvalue(np.array([40, 0, 0, 0])) < 1e-6


# -- label-free embedding -----------------------------------------------------------------------
def test_imbalance_beyond_a_tail_asks_for_more_than_a_small_skew_that_many_labels_make_significant():
    """imbalance_beyond_pvalue (the second look's guard): χ² against the noncentral χ² of an
    exponential tail of the given ratio. Ratio 1 is the plain test; a skew of Cohen's w 0.27 over
    200 labels (what coverage picks on a balanced pool can carry) is significant for the plain test
    and not beyond a ratio-2 tail; a ratio-7 tail over 40 labels is."""
    from autoal.data.subset import long_tail_quotas

    assert tail_effect_size(1.0, 10) == 0.0 and tail_effect_size(3.0, 1) == 0.0
    sizes = [tail_effect_size(r, 10) for r in (1.5, 2, 5, 10, 100)]
    assert sizes == sorted(sizes) and sizes[1] == pytest.approx(0.220, abs=1e-3)
    # the effect size of the class sizes the data layer builds for a ratio, on a large pool
    quotas = np.asarray(long_tail_quotas(100_000, 7.0, 10), dtype=np.float64)
    share = quotas / quotas.sum()
    assert tail_effect_size(7.0, 10) == pytest.approx(np.sqrt(((share - 0.1) ** 2 / 0.1).sum()), rel=1e-3)

    skew = np.array([29, 27, 24, 22, 20, 20, 18, 16, 13, 11])  # 200 labels: χ² 15 (p 0.09), w = 0.27
    assert imbalance_pvalue(skew) < 0.2 < imbalance_beyond_pvalue(skew, 2.0)
    assert imbalance_beyond_pvalue(skew, 1.0) == pytest.approx(imbalance_pvalue(skew))
    tail = np.array([10, 8, 6, 5, 4, 2, 2, 1, 1, 1])  # 40 labels from a steep tail
    assert imbalance_beyond_pvalue(tail, 2.0) < 0.05
    assert imbalance_beyond_pvalue(tail, 2.0) > imbalance_pvalue(tail)  # never fires where the plain test does not
    assert imbalance_beyond_pvalue(np.array([3, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 2.0) == 1.0  # too few to tell
    with pytest.raises(ValueError, match="one row"):
        imbalance_beyond_pvalue(np.ones((2, 10)), 2.0)
    with pytest.raises(ValueError, match="ratio"):
        tail_effect_size(0.5, 10)


def test_pixel_pca_finds_a_planted_subspace_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(64, 3, generator=g))[0]
    coords = torch.randn(500, 3, generator=g) * torch.tensor([5.0, 3.0, 1.0])
    images = (coords @ basis.T).reshape(500, 1, 8, 8)
    z = pixel_pca(images, 3)
    assert z.shape == (500, 3)
    centered = coords - coords.mean(0)
    # the three components span the planted coordinates (a rotation of them: distances agree)
    exact = "donot_use_mm_for_euclid_dist"
    assert torch.allclose(
        torch.cdist(z[:50], z[:50], compute_mode=exact),
        torch.cdist(centered[:50], centered[:50], compute_mode=exact),
        atol=1e-3,
    )
    assert torch.equal(z, pixel_pca(images, 3))
    assert pixel_pca((images * 0 + 200).to(torch.uint8)[:, :, :2, :2], 50).shape == (500, 4)  # dim capped at D
    with pytest.raises(ValueError, match="non-empty"):
        pixel_pca(torch.zeros(0, 1, 8, 8), 3)


# -- the strategy -----------------------------------------------------------------------------
def test_joint_embedding_weighs_each_space_alike_and_keeps_a_sample_far_in_either_space_far():
    g = torch.Generator().manual_seed(0)
    a_pool, a_lab = torch.randn(300, 5, generator=g) * 100 + 7, torch.randn(20, 5, generator=g) * 100 + 7
    b_pool, b_lab = torch.randn(300, 40, generator=g) * 0.01, torch.randn(20, 40, generator=g) * 0.01
    a_pool[0] += 5000  # far from everything in the first space only
    pool, lab = joint_embedding((a_pool, a_lab), (b_pool, b_lab))
    assert pool.shape == (300, 45) and lab.shape == (20, 45)
    both = torch.cat([pool, lab])
    for block in (both[:, :5], both[:, 5:]):  # each space: centred, unit root-mean-square distance from its mean
        assert block.mean(0).abs().max() < 1e-4
        assert float((block**2).sum(1).mean()) == pytest.approx(1.0, rel=1e-4)
    # squared distances add: the joint distance is the sum of the two normalized ones
    d = ((pool[1] - lab[0]) ** 2).sum()
    assert float(d) == pytest.approx(
        float(((pool[1, :5] - lab[0, :5]) ** 2).sum() + ((pool[1, 5:] - lab[0, 5:]) ** 2).sum())
    )
    nearest = torch.cdist(pool, lab).min(1).values
    assert int(nearest.argmax()) == 0  # the outlier of one space is the farthest in the joint one
    one, _ = joint_embedding((a_pool, a_lab))
    assert torch.allclose(one, pool[:, :5])
    with pytest.raises(ValueError, match="at least one"):
        joint_embedding()


def _data(n=400, classes=4, seed=0, prior=None):
    """Blobs whose pixels separate the classes; a model whose probabilities follow the class with
    accuracy ``acc`` for the context."""
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, n, p=prior)
    centers = rng.normal(0, 4, size=(classes, 16))
    x = centers[y] + rng.normal(0, 1, size=(n, 16))
    x = ((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8).reshape(n, 1, 4, 4)
    return SimpleNamespace(x_train=torch.from_numpy(x), y_train=torch.from_numpy(y), num_classes=classes)


def _ctx(ds, labeled, n, acc=0.9, seed=0, round_=0):
    rng = np.random.default_rng(seed + 100 * round_)
    unlabeled = np.setdiff1d(np.arange(len(ds.y_train)), labeled)
    y = ds.y_train.numpy()[unlabeled]
    right = rng.random(len(unlabeled)) < acc
    pred = np.where(right, y, (y + 1) % ds.num_classes)
    logits = torch.full((len(unlabeled), ds.num_classes), 0.0)
    logits[torch.arange(len(unlabeled)), torch.from_numpy(pred)] = torch.from_numpy(
        rng.uniform(0.1, 3, len(unlabeled))
    ).float()
    probs = torch.softmax(logits, 1)
    emb = torch.randn(len(unlabeled), 8, generator=torch.Generator().manual_seed(seed + 100 * round_))
    cache = PoolCache(unlabeled, probs, emb, logits)
    # the labeled set's cache, as the loop scores it for a strategy that needs it (the default's joint space)
    lab = np.asarray(labeled)
    none = torch.zeros(len(lab), ds.num_classes)
    labeled_cache = PoolCache(lab, none, torch.randn(len(lab), 8, generator=torch.Generator().manual_seed(seed)), none)
    return QueryContext(
        cache=cache,
        labeled_cache=labeled_cache,
        unlabeled=unlabeled,
        labeled=np.asarray(labeled),
        n=n,
        rng=np.random.default_rng(seed),
        round=round_,
        dataset=ds,
    )


def _rounds(strategy, ds, acc, rounds=4, n=20, start=None):
    labeled = np.arange(40) if start is None else start
    logs = []
    for r in range(rounds):
        ctx = _ctx(ds, labeled, n, acc=acc, round_=r)
        picks = strategy.query(ctx)
        assert len(picks) == n and len(set(picks.tolist())) == n and np.isin(picks, ctx.unlabeled).all()
        logs.append(ctx.metrics)
        labeled = np.concatenate([labeled, picks])
    return logs


def test_competent_model_moves_the_weights_to_uncertainty_and_a_poor_one_keeps_coverage():
    ds = _data()
    good = _rounds(build_strategy("autoal_credit"), ds, acc=0.98)
    poor = _rounds(build_strategy("autoal_credit"), ds, acc=0.3)
    assert good[0]["weight/margin"] == pytest.approx(0.1)  # no evidence yet: coverage, with a probe
    assert good[-1]["weight/margin"] > 0.8 and good[-1]["share/margin"] >= 0.8
    assert poor[-1]["weight/margin"] == pytest.approx(0.1)
    assert "competence/typiclust" in good[1] and "competence/margin" in good[1]
    assert good[1]["competence/typiclust"] > 0.8 > poor[1]["competence/typiclust"]
    for key in ("rarity/typiclust", "diversity/typiclust", "credit/competence_estimate"):
        assert math.isfinite(good[1][key])
    assert good[0]["credit/long_tailed"] == 0.0


def test_a_long_tailed_first_set_sends_the_batch_to_uncertainty_from_the_start():
    """tail_coverage=probe: under the guard coverage keeps only its probe share."""
    prior = 10.0 ** (-np.arange(4) / 3)
    ds = _data(n=600, prior=prior / prior.sum(), seed=1)
    logs = _rounds(build_strategy("autoal_credit", tail_coverage="probe"), ds, acc=0.3, rounds=2)
    assert logs[0]["credit/imbalance_p"] < 0.01 and logs[0]["credit/long_tailed"] == 1.0
    assert logs[0]["weight/margin"] == pytest.approx(0.9) and logs[1]["weight/margin"] == pytest.approx(0.9)


def test_the_default_level_fires_the_guard_on_a_mild_imbalance_that_p_below_0_01_misses():
    """imbalance_alpha is 0.2 (bench/README.md, "The guard's level"): twenty or forty first labels
    seldom show a tail at p < 0.01, and a false fire on a balanced pool costs little."""
    ds = _data(n=400, seed=2)
    y = ds.y_train.numpy().copy()
    y[:40] = np.repeat(np.arange(4), [16, 10, 8, 6])  # χ² = 5.6 on 3 degrees of freedom: p ≈ 0.13
    ds = SimpleNamespace(x_train=ds.x_train, y_train=torch.from_numpy(y), num_classes=4)
    default = _rounds(build_strategy("autoal_credit"), ds, acc=0.3, rounds=1)[0]
    strict = _rounds(build_strategy("autoal_credit", imbalance_alpha=0.01), ds, acc=0.3, rounds=1)[0]
    assert 0.01 < default["credit/imbalance_p"] < 0.2
    assert default["credit/long_tailed"] == 1.0 and strict["credit/long_tailed"] == 0.0
    assert "weight/coreset" in default and "weight/typiclust" in strict  # k-center covers the tail


def test_under_the_guard_tail_probe_and_tail_prior_shift_set_the_uncertainty_side():
    """tail_probe 0: the whole batch is the uncertainty candidate's; tail_prior_shift τ: it
    scores the prior-shifted probabilities, so its picks are Margin's on p(c|x)/π_c^τ."""
    prior = 10.0 ** (-np.arange(4) / 3)
    ds = _data(n=600, prior=prior / prior.sum(), seed=1)
    labeled = np.arange(40)
    counts = np.bincount(ds.y_train.numpy()[labeled], minlength=4)
    for tau in (0.0, 1.0):
        ctx = _ctx(ds, labeled, 20, acc=0.6)
        picks = build_strategy("autoal_credit", tail_coverage="probe", tail_probe=0.0, tail_prior_shift=tau).query(ctx)
        assert ctx.metrics["credit/long_tailed"] == 1.0 and ctx.metrics["share/margin"] == 1.0
        _, shifted = prior_shifted(ctx.cache.logits, counts, tau)
        margin = build_strategy("margin").select_positions(
            replace(ctx.cache, probs=shifted), 20, np.random.default_rng(0), None
        )
        assert set(picks.tolist()) == set(ctx.unlabeled[np.asarray(margin)].tolist())
    plain = build_strategy("autoal_credit", tail_coverage="probe", tail_probe=0.0).query(_ctx(ds, labeled, 20, acc=0.6))
    shifted_picks = build_strategy("autoal_credit", tail_coverage="probe", tail_probe=0.0, tail_prior_shift=1.0).query(
        _ctx(ds, labeled, 20, acc=0.6)
    )
    assert set(plain.tolist()) != set(shifted_picks.tolist())  # the shift moves picks
    # a uniform pool: the guard does not fire and the tail parameters change nothing
    uniform = _data()
    base = build_strategy("autoal_credit").query(_ctx(uniform, labeled, 20))
    tail = build_strategy("autoal_credit", tail_probe=0.0, tail_prior_shift=1.0).query(_ctx(uniform, labeled, 20))
    assert np.array_equal(base, tail)


def test_class_quotas_favour_the_classes_with_fewest_labels_and_respect_what_is_available():
    # weights 1/(count + 1) = 1/31, 1/6, 1/2: the rarest class takes most of the batch
    q = class_quotas(20, np.array([30, 5, 1]), np.array([100, 100, 100]))
    assert q.sum() == 20 and q[2] > q[1] > q[0]
    assert q.tolist() == [1, 5, 14]
    # a class with too few candidates gives its share to the others, by the same weights
    capped = class_quotas(20, np.array([30, 5, 1]), np.array([100, 100, 3]))
    assert capped[2] == 3 and capped.sum() == 20 and capped[1] > capped[0]
    assert class_quotas(50, np.array([0, 0]), np.array([4, 6])).tolist() == [4, 6]  # all there is
    assert class_quotas(0, np.array([1, 2]), np.array([5, 5])).tolist() == [0, 0]
    assert class_quotas(7, np.array([2, 2, 2]), np.array([9, 9, 9])).sum() == 7
    with pytest.raises(ValueError, match="one length"):
        class_quotas(3, np.array([1, 2]), np.array([1, 2, 3]))


def test_by_class_tail_coverage_splits_coverage_over_predicted_classes():
    """tail_coverage=by_class: under the guard the competence rule runs as on balanced pools
    (round 0: coverage, but the probe share) and the coverage picks are spread over the predicted
    classes by class_quotas, most for the class the labeled set holds fewest of."""
    prior = 10.0 ** (-np.arange(4) / 3)
    ds = _data(n=600, prior=prior / prior.sum(), seed=1)
    labeled = np.arange(40)
    counts = np.bincount(ds.y_train.numpy()[labeled], minlength=4)
    ctx = _ctx(ds, labeled, 20, acc=0.9)
    picks = build_strategy("autoal_credit", tail_coverage="by_class").query(ctx)
    assert ctx.metrics["credit/long_tailed"] == 1.0 and ctx.metrics["weight/margin"] == pytest.approx(0.1)
    n_cov = round(ctx.metrics["share/typiclust"] * 20)
    assert n_cov == 18
    positions = np.searchsorted(ctx.unlabeled, picks[:n_cov])
    predicted = ctx.cache.probs.argmax(1).numpy()
    got = np.bincount(predicted[positions], minlength=4)
    expect = class_quotas(n_cov, counts, np.bincount(predicted, minlength=4))
    assert got.tolist() == expect.tolist() and got[np.argmin(counts)] == got.max()
    # tail_coverage=probe keeps the guard's probe: 90 % uncertainty from the start
    plain = _ctx(ds, labeled, 20, acc=0.9)
    build_strategy("autoal_credit", tail_coverage="probe").query(plain)
    assert plain.metrics["weight/margin"] == pytest.approx(0.9)


def test_kcenter_tail_coverage_covers_the_tail_by_k_center_greedy_under_the_competence_rule():
    """tail_coverage=kcenter: under the guard the competence rule runs as on balanced
    pools, and the coverage picks are Coreset's (k-center greedy on the task model's embedding,
    from the labeled set's embeddings); the competence is measured on those picks and moves the
    weights. On a uniform pool the guard does not fire and TypiClust on pixels covers, as before."""
    prior = 10.0 ** (-np.arange(4) / 3)
    ds = _data(n=600, prior=prior / prior.sum(), seed=1)
    labeled = np.arange(40)

    def ctx_with_labeled(data, acc, round_=0, labeled=labeled):
        ctx = _ctx(data, labeled, 20, acc=acc, round_=round_)
        emb = torch.randn(len(labeled), 8, generator=torch.Generator().manual_seed(round_))
        empty = torch.zeros(len(labeled), data.num_classes)
        return replace(ctx, labeled_cache=PoolCache(np.asarray(labeled), empty, emb, empty))

    ctx = ctx_with_labeled(ds, 0.9)
    picks = build_strategy("autoal_credit", tail_coverage="kcenter", kcenter_group=1).query(ctx)
    assert ctx.metrics["credit/long_tailed"] == 1.0 and ctx.metrics["weight/margin"] == pytest.approx(0.1)
    assert "weight/typiclust" not in ctx.metrics and ctx.metrics["share/coreset"] == pytest.approx(0.9)
    kcenter = build_strategy("coreset").select_positions(ctx.cache, 18, np.random.default_rng(0), ctx.labeled_cache)
    assert picks[:18].tolist() == ctx.unlabeled[np.asarray(kcenter)].tolist()
    # kcenter_group: the coverage picks are k-center's over uncovered groups of that many points
    grouped_ctx = ctx_with_labeled(ds, 0.9)
    grouped = build_strategy("autoal_credit", tail_coverage="kcenter", kcenter_group=3).query(grouped_ctx)
    by_groups = build_strategy("coreset", group=3).select_positions(
        grouped_ctx.cache, 18, np.random.default_rng(0), grouped_ctx.labeled_cache
    )
    assert grouped[:18].tolist() == grouped_ctx.unlabeled[np.asarray(by_groups)].tolist()
    assert grouped[:18].tolist() != picks[:18].tolist()
    # a competent model on the coreset picks moves the batch to uncertainty; a poor one keeps coverage
    for acc, final in ((0.98, lambda w: w > 0.8), (0.3, lambda w: w == pytest.approx(0.1))):
        strategy, have, logs = build_strategy("autoal_credit", tail_coverage="kcenter"), labeled, []
        for r in range(4):
            c = ctx_with_labeled(ds, acc, r, have)
            have = np.concatenate([have, strategy.query(c)])
            logs.append(c.metrics)
        assert "competence/coreset" in logs[1] and final(logs[-1]["weight/margin"])
    # a uniform pool: the guard does not fire, kcenter changes nothing
    uniform = _data()
    assert np.array_equal(
        build_strategy("autoal_credit", tail_coverage="kcenter").query(_ctx(uniform, labeled, 20)),
        build_strategy("autoal_credit", tail_coverage="probe").query(_ctx(uniform, labeled, 20)),
    )
    # the default is this rule over groups of 3 points (kcenter_group); probe keeps 90 % uncertainty
    default_ctx = replace(grouped_ctx, metrics={})
    assert build_strategy("autoal_credit").query(default_ctx).tolist() == grouped.tolist()
    assert default_ctx.metrics["share/coreset"] == pytest.approx(0.9)
    plain = ctx_with_labeled(ds, 0.9)
    build_strategy("autoal_credit", tail_coverage="probe").query(plain)
    assert plain.metrics["weight/margin"] == pytest.approx(0.9) and "share/coreset" not in plain.metrics
    for mode in ("kcenter", "kcenter_rarity"):
        with pytest.raises(ConfigError, match="strategy.params.uncertainty"):
            build_strategy("autoal_credit", uncertainty="coreset", tail_coverage=mode)


def test_decayed_mean_and_rarity_share():
    m = DecayedMean(decay=0.5)
    assert math.isnan(m.mean)
    m.update(2.0, 4)  # total 8, count 4
    m.update(1.0, 4)  # total 4 + 4, count 2 + 4
    assert m.mean == pytest.approx(8 / 6) and m.state_dict() == {"total": 8.0, "count": 6.0, "decay": 0.5}
    assert rarity_share(math.nan, 1.0, 0.1) == 0.1 and rarity_share(1.5, math.nan, 0.1) == 0.1
    assert rarity_share(1.5, 1.5, 0.1) == 0.1  # a tie keeps coverage
    assert rarity_share(1.2, 1.5, 0.1) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="probe"):
        rarity_share(1.0, 2.0, 0.7)


def test_kcenter_rarity_keeps_k_center_coverage_while_its_picks_are_the_rarer_then_hands_over():
    """tail_coverage=kcenter_rarity: under the guard the batch is k-center coverage (but the probe)
    while the decayed class rarity of its arrived picks is at least the uncertainty picks'; once
    the uncertainty picks are the rarer, the batch is uncertainty (but the probe). The two
    rarities are logged, and they survive a save and load of the strategy's state."""
    prior = 10.0 ** (-np.arange(4) / 3)
    ds = _data(n=600, prior=prior / prior.sum(), seed=1)
    labeled = np.arange(40)

    def run(strategy, have, rounds, acc=0.9):
        logs = []
        for r in range(rounds):
            ctx = _ctx(ds, have, 20, acc=acc, round_=r)
            emb = torch.randn(len(have), 8, generator=torch.Generator().manual_seed(r))
            empty = torch.zeros(len(have), ds.num_classes)
            ctx = replace(ctx, labeled_cache=PoolCache(np.asarray(have), empty, emb, empty))
            have = np.concatenate([have, strategy.query(ctx)])
            logs.append(ctx.metrics)
        return logs, have

    strategy = build_strategy("autoal_credit", tail_coverage="kcenter_rarity")
    logs, have = run(strategy, labeled, 3)
    assert logs[0]["credit/long_tailed"] == 1.0 and logs[0]["weight/margin"] == pytest.approx(0.1)
    assert "credit/rarity_coverage" not in logs[0] and "credit/rarity_uncertainty" not in logs[0]
    for log in logs[1:]:  # the share follows whichever side's picks were the rarer
        cov, unc = log["credit/rarity_coverage"], log["credit/rarity_uncertainty"]
        assert math.isfinite(cov) and math.isfinite(unc)
        assert log["weight/margin"] == pytest.approx(0.1 if cov >= unc else 0.9)
    # the uncertainty picks turn out far rarer: the next batch is uncertainty's, also after a save and load
    strategy.formulation.rarity["uncertainty"].update(50.0, 10)
    restored = build_strategy("autoal_credit", tail_coverage="kcenter_rarity")
    restored.load_state_dict(strategy.state_dict())
    assert restored.formulation.rarity["uncertainty"].mean == strategy.formulation.rarity["uncertainty"].mean
    later, _ = run(restored, have, 1)
    assert later[0]["weight/margin"] == pytest.approx(0.9)


def test_late_tail_signal_reads_a_long_tail_from_the_two_sides_rarity_and_evidence():
    def side(mean, count):
        return DecayedMean(total=mean * count, count=count)

    # 16 picks a side: standard error sqrt(1/16 + 1/16) = 0.354
    assert late_tail_signal(side(1.0, 16), side(1.8, 16), 2.0)  # 0.8 > 0.707
    assert not late_tail_signal(side(1.0, 16), side(1.6, 16), 2.0)  # 0.6 < 0.707
    assert not late_tail_signal(side(1.0, 16), side(1.8, 1), 2.0)  # one probe pick: noise (0.8 < 2.06)
    assert not late_tail_signal(side(1.8, 16), side(1.0, 16), 2.0)  # coverage's picks are the rarer
    assert not late_tail_signal(DecayedMean(), side(9.0, 16), 2.0)  # no evidence on one side
    assert not late_tail_signal(side(1.0, 16), side(9.0, 16), None)  # off


def test_late_tail_z_fires_the_guard_late_when_the_uncertainty_picks_are_clearly_the_rarer():
    """late_tail_z: on a pool whose first labeled set passed the χ² test, the guard fires from
    the round the uncertainty picks' decayed rarity exceeds the coverage picks' by more than
    late_tail_z standard errors (means and counts over the run, not decayed); then late_tail_coverage rules (probe: 90 % uncertainty), the flag survives a save and
    load, and it stays. Without the key, or below the gap, nothing changes."""
    ds, labeled = _data(), np.arange(40)

    def two_rounds(strategy, extra_rarity):
        first = _ctx(ds, labeled, 20, acc=0.3)
        picks = strategy.query(first)
        assert first.metrics["credit/long_tailed"] == 0.0
        for side, value in extra_rarity.items():  # what the arrived picks' labels would say
            strategy.formulation.rarity_run[side].update(value, 50)
        second = _ctx(ds, np.concatenate([labeled, picks]), 20, acc=0.3, round_=1)
        return strategy, second, strategy.query(second)

    tail = {"coverage": 1.0, "uncertainty": 2.0}
    strategy, ctx, _ = two_rounds(build_strategy("autoal_credit", late_tail_z=2.0), tail)
    assert ctx.metrics["credit/late_tail"] == 1.0 and ctx.metrics["credit/long_tailed"] == 1.0
    assert ctx.metrics["weight/margin"] == pytest.approx(0.9)  # late_tail_coverage=probe
    restored = build_strategy("autoal_credit", late_tail_z=2.0)
    restored.load_state_dict(strategy.state_dict())
    assert restored.formulation.late_round == 1 and restored.formulation.long_tailed
    later = _ctx(ds, np.arange(80), 20, acc=0.3, round_=2)
    assert restored.formulation.rarity_run["uncertainty"].mean == strategy.formulation.rarity_run["uncertainty"].mean
    restored.formulation.rarity_run["coverage"].update(9.0, 500)  # coverage turns rarer: the flag stays
    restored.query(later)
    assert later.metrics["credit/late_tail"] == 1.0 and later.metrics["weight/margin"] == pytest.approx(0.9)
    # late_tail_coverage=kcenter: k-center coverage on the task model's embedding under the competence rule
    _, kc, _ = two_rounds(build_strategy("autoal_credit", late_tail_z=2.0, late_tail_coverage="kcenter"), tail)
    assert kc.metrics["credit/late_tail"] == 1.0 and "share/coreset" in kc.metrics
    # the gap (about 1.0) is 5 standard errors: below a threshold of 8, or with the key unset, the round is the balanced-pool rule's
    _, below, below_picks = two_rounds(build_strategy("autoal_credit", late_tail_z=8.0), tail)
    _, off, off_picks = two_rounds(build_strategy("autoal_credit"), tail)
    assert below.metrics["credit/late_tail"] == 0.0 and below.metrics["credit/long_tailed"] == 0.0
    assert "credit/late_tail" not in off.metrics and np.array_equal(below_picks, off_picks)
    assert below.metrics["weight/margin"] == off.metrics["weight/margin"] == pytest.approx(0.1)


def test_prior_shift_moves_posteriors_to_a_uniform_prior():
    logits = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    counts = np.array([30, 5, 1])
    same_logits, same = prior_shifted(logits, counts, 0.0)
    assert torch.allclose(same, torch.softmax(logits, 1)) and torch.equal(same_logits, logits)
    assert torch.allclose(prior_shifted(logits, np.array([4, 4, 4]), 1.0)[1], torch.softmax(logits, 1), atol=1e-6)
    _, q = prior_shifted(logits, counts, 1.0)
    pi = (counts + 1.0) / (counts.sum() + 3)
    expect = torch.softmax(logits, 1) / torch.tensor(pi, dtype=torch.float32)
    assert torch.allclose(q, expect / expect.sum(1, keepdim=True), atol=1e-6)
    assert (q[:, 2] > torch.softmax(logits, 1)[:, 2]).all()  # the rarest class gains everywhere
    with pytest.raises(ValueError, match="one entry per class"):
        prior_shifted(logits, np.array([1, 2]), 1.0)


def test_resume_from_state_picks_what_an_uninterrupted_strategy_picks():
    ds = _data()
    a = build_strategy("autoal_credit")
    labeled = np.arange(40)
    first = a.query(_ctx(ds, labeled, 20, round_=0))
    labeled = np.concatenate([labeled, first])
    b = build_strategy("autoal_credit")
    b.load_state_dict(a.state_dict())
    ca, cb = _ctx(ds, labeled, 20, round_=1), _ctx(ds, labeled, 20, round_=1)
    assert np.array_equal(a.query(ca), b.query(cb))
    assert ca.metrics == cb.metrics
    with pytest.raises(StateError, match="autoal_credit"):
        build_strategy("autoal_credit").load_state_dict({"competence": {}})


def test_joint_coverage_space_covers_pixels_and_the_models_embedding_together():
    """coverage_space=joint: the coverage candidate sees the pixel PCA and the task model's
    embedding side by side, each scaled alike; without the labeled set's embeddings it refuses."""
    ds = _data()
    labeled = np.arange(40)
    strategy = build_strategy("autoal_credit", coverage_space="joint", pca_dim=6)
    # the labeled set's embeddings are asked for by joint itself, not only by the tail's k-center
    assert "labeled_cache" in build_strategy("autoal_credit", coverage_space="joint", tail_coverage="probe").needs
    assert "labeled_cache" not in build_strategy("autoal_credit", coverage_space="pixels", tail_coverage="probe").needs
    ctx = replace(_ctx(ds, labeled, 20), labeled_cache=None)
    with pytest.raises(StateError, match="coverage_space=joint"):
        strategy.query(ctx)
    seen = []
    coverage = strategy.formulation.coverage
    original = coverage.select_positions

    def spy(pool, n, rng, lab=None):
        seen.append((pool.embeddings.clone(), lab.embeddings.clone()))
        return original(pool, n, rng, lab)

    coverage.select_positions = spy
    model_lab = torch.randn(40, 8, generator=torch.Generator().manual_seed(1))
    ctx = replace(ctx, labeled_cache=PoolCache(labeled, torch.zeros(40, 4), model_lab, torch.zeros(40, 4)))
    picks = strategy.query(ctx)
    assert len(picks) == 20 and np.isin(picks, ctx.unlabeled).all()
    pool_z, lab_z = seen[0]
    assert pool_z.shape == (360, 6 + 8) and lab_z.shape == (40, 6 + 8)
    pixels = pixel_pca(ds.x_train, 6)
    want_pool, want_lab = joint_embedding((pixels[ctx.unlabeled], pixels[labeled]), (ctx.cache.embeddings, model_lab))
    assert torch.allclose(pool_z, want_pool) and torch.allclose(lab_z, want_lab)


def _spied_rounds(strategy, ds, rounds=3, n=20):
    """Rounds with the labeled set's embeddings in the context; per round the coverage
    candidate's embedding width and the round's metrics."""
    coverage = strategy.formulation.coverage
    original, widths = coverage.select_positions, []

    def spy(pool, k, rng, lab=None):
        widths.append(pool.embeddings.shape[1])
        return original(pool, k, rng, lab)

    coverage.select_positions = spy
    labeled, logs = np.arange(40), []
    for r in range(rounds):
        ctx = _ctx(ds, labeled, n, round_=r)
        emb = torch.randn(len(labeled), 8, generator=torch.Generator().manual_seed(r))
        z = torch.zeros(len(labeled), ds.num_classes)
        ctx = replace(ctx, labeled_cache=PoolCache(labeled, z, emb, z))
        picks = strategy.query(ctx)
        logs.append(ctx.metrics)
        labeled = np.concatenate([labeled, picks])
    return widths, logs


def test_joint_when_balanced_covers_pixels_first_then_joint_once_the_second_look_finds_balance():
    """coverage_space=joint_when_balanced: the first batch on pixels; once its labels arrive, a χ²
    test on the labeled set picks joint (balanced) or keeps pixels (a tail the first set missed)."""
    balanced = build_strategy("autoal_credit", coverage_space="joint_when_balanced", pca_dim=6)
    widths, logs = _spied_rounds(balanced, _data())
    assert widths == [6, 14, 14]
    assert math.isnan(logs[0]["credit/second_look_p"]) and logs[0]["credit/coverage_joint"] == 0.0
    assert logs[1]["credit/second_look_p"] >= 0.2 and logs[1]["credit/coverage_joint"] == 1.0
    assert logs[2]["credit/second_look_p"] == logs[1]["credit/second_look_p"]  # decided once
    # a steep tail with both guards off (the first set's and the second look's): the second look keeps pixels
    prior = 10.0 ** (-np.arange(4) / 1.5)
    tail = _data(n=600, prior=prior / prior.sum(), seed=1)
    strategy = build_strategy(
        "autoal_credit",
        coverage_space="joint_when_balanced",
        pca_dim=6,
        imbalance_alpha=0.0,
        second_look_guard_ratio=None,
    )
    widths, logs = _spied_rounds(strategy, tail)
    assert widths == [6, 6, 6] and logs[1]["credit/second_look_p"] < 0.2
    assert [m["credit/coverage_joint"] for m in logs] == [0.0, 0.0, 0.0]
    # the decision is part of the saved state: a resumed strategy does not look again
    again = build_strategy("autoal_credit", coverage_space="joint_when_balanced", pca_dim=6)
    again.load_state_dict(balanced.state_dict())
    assert again.formulation.balanced is True
    assert again.formulation.second_look_p == balanced.formulation.second_look_p >= 0.2


def test_second_look_guard_fires_the_guard_when_the_set_after_the_first_batch_shows_a_tail():
    """second_look_guard_ratio: a tail the first set did not flag (first-set guard off) but the
    set after the first batch shows fires the guard from the second query round, and coverage
    becomes the tail's k-center; on a balanced pool nothing changes; the decision is saved."""
    prior = 10.0 ** (-np.arange(4) / 1.5)
    tail = _data(n=600, prior=prior / prior.sum(), seed=1)
    fired = build_strategy("autoal_credit", pca_dim=6, imbalance_alpha=0.0)  # ratio 2, the default
    assert fired.formulation.second_look_guard_ratio == 2.0
    widths, logs = _spied_rounds(fired, tail)
    assert widths == [6]  # TypiClust covers the first batch only; then k-center over groups
    assert math.isnan(logs[0]["credit/second_look_guard_p"]) and logs[0]["credit/second_look_guard"] == 0.0
    assert logs[1]["credit/second_look_guard_p"] < 0.2 and logs[1]["credit/second_look_guard"] == 1.0
    assert [m["credit/long_tailed"] for m in logs] == [0.0, 1.0, 1.0]
    assert "share/coreset" in logs[1] and "share/typiclust" not in logs[1]
    assert fired.formulation.guard_round == 1
    # off (the rule of 648dfde), the same runs keep TypiClust on pixels
    widths, logs = _spied_rounds(
        build_strategy("autoal_credit", pca_dim=6, imbalance_alpha=0.0, second_look_guard_ratio=None), tail
    )
    assert widths == [6, 6, 6] and "credit/second_look_guard" not in logs[1]
    # a balanced pool: the same picks as without the second look's guard
    on, off = (
        build_strategy("autoal_credit", pca_dim=6, second_look_guard_ratio=r, imbalance_alpha=0.0) for r in (2.0, None)
    )
    (on_widths, on_logs), (off_widths, off_logs) = _spied_rounds(on, _data()), _spied_rounds(off, _data())
    assert on_logs[2]["credit/second_look_guard"] == 0.0 and on.formulation.guard_round is None
    assert on_widths == off_widths == [6, 14, 14]
    for a, b in zip(on_logs, off_logs):
        assert {k: v for k, v in a.items() if not k.startswith("credit/second_look_guard")} == b
    # a first set that fired the guard leaves nothing for the second look to decide
    first = build_strategy("autoal_credit", pca_dim=6, second_look_guard_ratio=2.0)
    logs = _spied_rounds(first, tail)[1]
    assert logs[0]["credit/long_tailed"] == 1.0 and math.isnan(logs[2]["credit/second_look_guard_p"])
    # resumed from the saved state, it neither looks again nor forgets that it fired
    again = build_strategy("autoal_credit", pca_dim=6, imbalance_alpha=0.0, second_look_guard_ratio=2.0)
    again.load_state_dict(fired.state_dict())
    assert again.formulation.guard_round == 1 and again.formulation.long_tailed is True
    assert again.formulation.second_look_guard_p == fired.formulation.second_look_guard_p
    # a state saved before second_look_guard_ratio existed still loads: looked iff the space was decided
    old = fired.state_dict()
    old["second_look"] = {"p": 0.5, "balanced": True}
    again.load_state_dict(old)
    assert again.formulation.second_looked is True and again.formulation.guard_round is None


@pytest.mark.parametrize(
    "params, key",
    [
        ({"coverage": "nope"}, "coverage"),
        ({"uncertainty": "vaal"}, "uncertainty"),
        ({"coverage_space": "raw"}, "coverage_space"),
        ({"coverage_space": "both"}, "coverage_space"),
        ({"second_look_alpha": 1.5}, "second_look_alpha"),
        ({"second_look_guard_ratio": 0.5}, "second_look_guard_ratio"),
        ({"low": 0.9, "high": 0.5}, "low"),
        ({"probe": 0.7}, "probe"),
        ({"pca_dim": 0}, "pca_dim"),
        ({"decay": -1.0}, "decay"),
        ({"tail_probe": 0.6}, "tail_probe"),
        ({"tail_prior_shift": -1.0}, "tail_prior_shift"),
        ({"tail_coverage": "all"}, "tail_coverage"),
        ({"coverage": "margin", "uncertainty": "margin"}, "must differ"),
        ({"late_tail_z": -0.1}, "late_tail_z"),
        ({"late_tail_coverage": "all"}, "late_tail_coverage"),
        ({"uncertainty": "coreset", "tail_coverage": "probe", "late_tail_coverage": "kcenter"}, "late_tail_coverage"),
    ],
)
def test_bad_parameters_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        build_strategy("autoal_credit", **params)


def test_two_rounds_on_digits_through_the_loop(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.images / 16).astype("float32")[:, None], d.target
    result = autoal.run(
        (x[:1200], y[:1200], x[1200:], y[1200:]),
        strategy="autoal_credit",
        rounds=2,
        query_size=10,
        epochs=2,
        output_dir=str(tmp_path),
    )
    assert len(result.labeled) == 40 and len(set(result.labeled.tolist())) == 40
    h = result.history
    assert h[0]["share/typiclust"] + h[0]["share/margin"] == pytest.approx(1.0)
    assert "competence/typiclust" in h[1] and 0.0 <= h[1]["competence/typiclust"] <= 1.0
