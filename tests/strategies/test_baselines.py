"""The paper's baselines (BADGE, Coreset, LPL, VAAL, ENSvarR, DDU, ALBL): each one's defining
property on small synthetic data, resume state, config files, and a 2-round run in the loop."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autoal.cache import PoolCache
from autoal.config import RunConfig
from autoal.data.base import ALDataset
from autoal.loop import ActiveLearningLoop, run_experiment
from autoal.strategies import PoolStrategy, QueryContext, Strategy, build_strategy, strategy_names
from autoal.strategies.registry import strategy_defaults

torch.set_num_threads(2)

#: the paper's baselines, and Cluster-Margin (Citovsky et al., NeurIPS 2021)
BASELINES = ["badge", "coreset", "lpl", "vaal", "ens_var_r", "ddu", "albl", "cluster_margin"]
CONF = Path(__file__).resolve().parents[2] / "autoal" / "conf" / "strategy"


def _cache(emb: torch.Tensor, probs: torch.Tensor | None = None, offset: int = 0) -> PoolCache:
    n = emb.shape[0]
    if probs is None:
        probs = torch.full((n, 3), 1.0 / 3)
    return PoolCache(indices=np.arange(offset, offset + n), probs=probs, embeddings=emb, logits=probs.log())


def _ctx(cache: PoolCache, n: int, seed: int = 0, **kw) -> QueryContext:
    labeled = kw.pop("labeled", np.zeros(0, dtype=np.int64))
    return QueryContext(
        cache=cache, unlabeled=cache.indices, labeled=labeled, n=n, rng=np.random.default_rng(seed), seed=seed, **kw
    )


def _images(pattern: torch.Tensor, amp: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    """uint8 (N,1,8,8) images: 128 + amp·pattern + Gaussian noise."""
    x = 128 + amp.view(-1, 1, 1, 1) * pattern + noise * torch.randn(pattern.shape, generator=gen)
    return x.clamp(0, 255).round().to(torch.uint8)


def _synthetic_dataset(x: torch.Tensor, y: torch.Tensor, classes: int) -> ALDataset:
    return ALDataset(
        name="synthetic", x_train=x, y_train=y, x_test=x[:4], y_test=y[:4], num_classes=classes, augmentation="none"
    )


# -- registry and config files -------------------------------------------------------------
def test_registry_lists_the_baselines():
    names = strategy_names()
    assert set(BASELINES) <= set(names)
    for name in BASELINES:
        s = build_strategy(name)
        assert isinstance(s, Strategy) and s.name == name
        doc = inspect.getdoc(type(s))
        assert doc and "paper leaves room" in doc  # docstring names the paper and the choices


@pytest.mark.parametrize("name", BASELINES)
def test_conf_file_lists_every_parameter_with_its_default(name):
    import yaml

    d = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert d["name"] == name and name in strategy_names()
    defaults = strategy_defaults(name)
    params = d.get("params") or {}
    assert set(params) == set(defaults)
    for k, v in defaults.items():
        assert params[k] == (list(v) if isinstance(v, tuple) else v), k
    build_strategy(name, **params)


# -- BADGE ---------------------------------------------------------------------------------
def test_badge_gradient_embedding_is_the_last_layer_gradient_and_distances_factorize():
    from autoal.strategies.baselines.badge import gradient_embeddings, gradient_factors

    torch.manual_seed(0)
    emb = torch.randn(6, 5)
    fc = torch.nn.Linear(5, 4)
    probs = torch.softmax(fc(emb), 1).detach()
    g = gradient_embeddings(probs, emb)
    for i in range(6):  # autograd: d CE(fc(e_i), ŷ_i) / d W
        fc.zero_grad()
        torch.nn.functional.cross_entropy(fc(emb[i : i + 1]), probs[i : i + 1].argmax(1)).backward()
        assert torch.allclose(g[i], fc.weight.grad.reshape(-1), atol=1e-5)
    a, e = gradient_factors(probs, emb)
    d_fact = (a @ a.T) * (e @ e.T)
    assert torch.allclose(d_fact, g @ g.T, atol=1e-5)


def test_badge_picks_differ_from_margin_and_cover_diverse_uncertain_points():
    from autoal.strategies.baselines.badge import BADGE

    gen = torch.Generator().manual_seed(0)
    # 30 near-duplicates with the smallest margins, 30 other uncertain points spread out, 40 confident
    dup = torch.randn(1, 16, generator=gen).repeat(30, 1) + 0.01 * torch.randn(30, 16, generator=gen)
    spread = 3.0 * torch.randn(30, 16, generator=gen)
    conf = torch.randn(40, 16, generator=gen)
    emb = torch.cat([dup, spread, conf])
    probs = torch.cat(
        [
            torch.tensor([[0.34, 0.33, 0.33]]).repeat(30, 1),
            torch.tensor([[0.45, 0.40, 0.15]]).repeat(30, 1),
            torch.tensor([[0.98, 0.01, 0.01]]).repeat(40, 1),
        ]
    )
    cache = _cache(emb, probs)
    b = 10
    margin = build_strategy("margin").select_positions(cache, b, np.random.default_rng(0))
    picks = BADGE().select_positions(cache, b, np.random.default_rng(0))
    assert len(set(picks.tolist())) == b
    assert set(margin.tolist()) <= set(range(30))  # margin takes only duplicates
    assert len(set(picks.tolist()) & set(margin.tolist())) <= 2
    # diverse: one pick at most from the duplicates and from the confident points (near g = 0)
    assert (picks < 30).sum() <= 1 and (picks >= 60).sum() <= 1 and ((picks >= 30) & (picks < 60)).sum() >= 8
    again = BADGE().select_positions(cache, b, np.random.default_rng(0))
    assert picks.tolist() == again.tolist()  # seeded


# -- Coreset -------------------------------------------------------------------------------
def _radius(pool: torch.Tensor, centres: torch.Tensor) -> float:
    return float(torch.cdist(pool, centres).min(1).values.max())


def test_coreset_reduces_the_covering_radius_more_than_random():
    from autoal.strategies.baselines.coreset import Coreset, k_center_greedy

    gen = torch.Generator().manual_seed(1)
    centres_true = 10.0 * torch.randn(12, 8, generator=gen)
    pool = torch.cat([c + torch.randn(40, 8, generator=gen) for c in centres_true])
    lab = torch.cat([c + torch.randn(5, 8, generator=gen) for c in centres_true[:3]])  # L covers 3 clusters
    cache, lab_cache = _cache(pool), _cache(lab, offset=10_000)
    b = 12
    picks = Coreset().query(_ctx(cache, b, labeled=lab_cache.indices, labeled_cache=lab_cache))
    assert len(set(picks.tolist())) == b
    greedy = _radius(pool, torch.cat([lab, pool[picks]]))
    rng = np.random.default_rng(0)
    rand = [_radius(pool, torch.cat([lab, pool[rng.choice(len(pool), b, replace=False)]])) for _ in range(20)]
    assert greedy < min(rand)
    assert greedy < 0.5 * _radius(pool, lab)
    # chunked distances give the same picks
    small = k_center_greedy(pool, lab, b, np.random.default_rng(0), chunk=7)
    assert small.tolist() == picks.tolist()


def test_group_k_center_skips_lone_outliers_for_uncovered_groups():
    """group_k_center_greedy: a point far from the labeled set but alone is not picked while an
    uncovered group of ``group`` points remains; plain k-center takes the outlier first; group=1
    is plain k-center; picks are distinct and cover the pool when k = n."""
    from autoal.strategies.baselines.coreset import Coreset, group_k_center_greedy, k_center_greedy

    gen = torch.Generator().manual_seed(3)
    covered = torch.randn(50, 4, generator=gen)  # around the labeled set
    tail = torch.tensor([8.0, 0, 0, 0]) + 0.3 * torch.randn(6, 4, generator=gen)  # an uncovered group of 6
    outliers = torch.tensor([[0.0, 30, 0, 0], [0.0, 0, -30, 0]])  # two lone points, farther than the group
    pool = torch.cat([covered, tail, outliers])
    lab = torch.randn(10, 4, generator=gen)
    rng = np.random.default_rng(0)
    plain = k_center_greedy(pool, lab, 2, rng)
    assert set(plain.tolist()) == {56, 57}  # the outliers
    grouped = group_k_center_greedy(pool, lab, 3, rng, group=4)
    assert 50 <= grouped[0] < 56 and not {56, 57} & set(grouped.tolist()[:1])
    assert group_k_center_greedy(pool, lab, 5, rng, group=1).tolist() == k_center_greedy(pool, lab, 5, rng).tolist()
    everything = group_k_center_greedy(pool, None, len(pool), np.random.default_rng(1), group=4)
    assert sorted(everything.tolist()) == list(range(len(pool)))
    # chunked distances give the same picks; the strategy's group parameter reaches the function
    assert (
        group_k_center_greedy(pool, lab, 6, rng, group=4, chunk=7).tolist()
        == group_k_center_greedy(pool, lab, 6, rng, group=4).tolist()
    )
    cache, lab_cache = _cache(pool), _cache(lab, offset=10_000)
    via_strategy = Coreset(group=4).select_positions(cache, 3, rng, lab_cache)
    assert via_strategy.tolist() == grouped.tolist()


# -- DDU -----------------------------------------------------------------------------------
def test_ddu_ranks_points_far_from_every_class_density_first():
    from autoal.strategies.baselines.ddu import DDU

    gen = torch.Generator().manual_seed(2)
    d = 12
    means = 6.0 * torch.randn(3, d, generator=gen)
    # class 2 has fewer samples than dimensions: singular covariance, fitted with jitter
    sizes = [40, 40, 6]
    lab = torch.cat([m + torch.randn(s, d, generator=gen) for m, s in zip(means, sizes)])
    y = torch.cat([torch.full((s,), c) for c, s in enumerate(sizes)])
    near = torch.cat([m + torch.randn(30, d, generator=gen) for m in means[:2]])
    far = 25.0 + 3.0 * torch.randn(5, d, generator=gen)
    pool = torch.cat([near, far])
    lab_cache = _cache(lab, offset=0)
    cache = _cache(pool, offset=len(lab))
    ds = _synthetic_dataset(
        torch.zeros(len(lab) + len(pool), 1, 2, 2, dtype=torch.uint8),
        torch.cat([y, torch.zeros(len(pool), dtype=torch.long)]),
        3,
    )
    s = DDU()
    ctx = _ctx(cache, 5, labeled=lab_cache.indices, labeled_cache=lab_cache, dataset=ds)
    picks = s.query(ctx)
    assert sorted(picks.tolist()) == sorted(cache.indices[60:65].tolist())
    assert ctx.metrics["ddu/jitter"] > 0  # the singular class needed jitter


def test_ddu_density_matches_a_full_rank_gaussian():
    from scipy.stats import multivariate_normal

    from autoal.strategies.baselines.ddu import GaussianDensity

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(200, 3, generator=gen) @ torch.tensor([[2.0, 0, 0], [0.5, 1.0, 0], [0, 0.3, 0.5]])
    y = torch.arange(200) % 2
    gd = GaussianDensity(x, y, 2)
    assert gd.jitter == 0.0
    q = torch.randn(4, 3, generator=gen)
    x0 = x[y == 0].numpy()
    ref = multivariate_normal(x0.mean(0), np.cov(x0, rowvar=False)).logpdf(q.numpy())
    assert np.allclose(gd.class_log_density(q)[:, 0].numpy(), ref, atol=1e-8)


# -- ALBL ----------------------------------------------------------------------------------
class _FixedPicks(PoolStrategy):
    """A deterministic arm that always advises the given positions, in order."""

    def __init__(self, name: str, order: list[int]) -> None:
        self.name = name
        self.order = np.asarray(order)

    def select_positions(self, cache, n, rng, labeled=None):
        return self.order[:n]


def test_albl_arm_probabilities_move_toward_the_rewarded_arm():
    from autoal.strategies.baselines.albl import ALBL

    pool = torch.zeros(40, 2)
    arm_a, arm_b = _FixedPicks("a", list(range(0, 20))), _FixedPicks("b", list(range(20, 40)))

    class Rewarded(ALBL):
        def reward(self, ctx):  # 1 when the last round's draw was arm a's advice
            return float(np.isin(self.pending["idx"], np.arange(20)).mean())

    s = Rewarded(arms=[arm_a, arm_b, "random"], p_min=0.1)
    p_a = []
    cache = _cache(pool)
    for r in range(40):
        ctx = _ctx(cache, 1, seed=r)
        s.query(ctx)
        p_a.append(ctx.metrics["albl/p_a"])
        assert {"albl/p_a", "albl/p_b", "albl/p_random"} <= set(ctx.metrics)
        assert sum(ctx.metrics[f"albl/p_{k}"] for k in ("a", "b", "random")) == pytest.approx(1.0)
    assert p_a[0] == pytest.approx(1 / 3)
    # a gains, b (never rewarded) loses; random, whose uniform draws hit a's half of the pool
    # half of the time, keeps about its share
    assert p_a[-1] > 0.4 and p_a[-1] > ctx.metrics["albl/p_b"] + 0.15
    assert p_a[-1] == max(ctx.metrics[f"albl/p_{k}"] for k in ("a", "b", "random"))
    # the same run without reward does not favour a
    s0 = type("Unrewarded", (ALBL,), {"reward": lambda self, ctx: 0.0})(arms=[arm_a, arm_b, "random"], p_min=0.1)
    for r in range(40):
        ctx0 = _ctx(cache, 1, seed=r)
        s0.query(ctx0)
    assert abs(ctx0.metrics["albl/p_a"] - 1 / 3) < 0.03


def test_albl_importance_weighted_accuracy_and_batch_draws():
    from autoal.strategies.baselines.albl import ALBL

    n_pool = 30
    pool = torch.randn(n_pool, 2)
    cache = _cache(pool)
    s = ALBL(arms=[_FixedPicks("a", list(range(10))), "random"], p_min=0.1)
    ctx = _ctx(cache, 6)
    picks = s.query(ctx)
    assert len(set(picks.tolist())) == 6  # drawn without replacement
    q = s.pending["q"]
    assert np.all(q > 0) and np.all(q <= 1)
    # IW-ACC: a model right on every queried sample scores Σ(1/q)/(n·t); one wrong on all scores 0
    y = torch.zeros(n_pool, dtype=torch.long)
    ds = _synthetic_dataset(torch.zeros(n_pool, 1, 2, 2, dtype=torch.uint8), y, 3)
    lab_idx = np.sort(picks)
    right = _cache(torch.zeros(6, 2), torch.tensor([[0.9, 0.05, 0.05]]).repeat(6, 1), offset=0)
    right.indices = lab_idx
    ctx2 = _ctx(
        cache.subset(np.setdiff1d(np.arange(n_pool), lab_idx)), 1, labeled=lab_idx, labeled_cache=right, dataset=ds
    )
    expect = min(float((1.0 / q).sum() / (n_pool * 6)), 1.0)
    assert s.reward(ctx2) == pytest.approx(expect)
    wrong = _cache(torch.zeros(6, 2), torch.tensor([[0.05, 0.9, 0.05]]).repeat(6, 1))
    wrong.indices = lab_idx
    ctx2.labeled_cache = wrong
    assert s.reward(ctx2) == 0.0


def test_albl_state_dict_resumes_exactly():
    from autoal.strategies.baselines.albl import ALBL

    gen = torch.Generator().manual_seed(4)
    emb = torch.randn(60, 4, generator=gen)
    probs = torch.softmax(torch.randn(60, 3, generator=gen), 1)
    y = torch.randint(0, 3, (60,), generator=gen)
    ds = _synthetic_dataset(torch.zeros(60, 1, 2, 2, dtype=torch.uint8), y, 3)
    full = PoolCache(np.arange(60), probs, emb, probs.log())

    def run(strategy, labeled, r):
        unl = np.setdiff1d(np.arange(60), labeled)
        ctx = QueryContext(
            cache=full.subset(unl),
            unlabeled=unl,
            labeled=labeled,
            n=4,
            rng=np.random.default_rng(r),
            seed=r,
            labeled_cache=full.subset(labeled),
            dataset=ds,
        )
        return np.sort(np.concatenate([labeled, strategy.query(ctx)])), ctx.metrics

    arms = ["random", "entropy", "margin", "kmeans", "coreset"]
    a = ALBL(arms=arms)
    lab = np.arange(5)
    for r in range(2):
        lab, _ = run(a, lab, r)
    b = ALBL(arms=arms)
    b.load_state_dict(a.state_dict())
    lab_a, m_a = run(a, lab, 2)
    lab_b, m_b = run(b, lab, 2)
    assert lab_a.tolist() == lab_b.tolist() and m_a == m_b and "albl/reward" in m_a


# -- LPL -----------------------------------------------------------------------------------
def test_lpl_predicted_loss_correlates_with_the_true_loss():
    from scipy.stats import spearmanr

    from autoal.models import build_model
    from autoal.lpm import LossPredictionModule
    from autoal.strategies.baselines.lpl import predict_loss, train_joint

    gen = torch.Generator().manual_seed(5)
    n = 320
    y = torch.randint(0, 2, (n,), generator=gen)
    top = torch.zeros(1, 8, 8)
    top[:, :4] = 1.0
    pattern = torch.where(y.view(-1, 1, 1, 1) == 0, top, 1.0 - top) * 2.0 - 1.0
    amp = torch.rand(n, generator=gen) ** 2 * 60.0  # many faint (hard) samples, some clear ones
    x = _images(pattern, amp, 25.0, gen)
    ds = _synthetic_dataset(x, y, 2)
    train, held = np.arange(0, 160), np.arange(160, n)
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 2, 8, width=8)
    lpm = LossPredictionModule(model.stage_channels, 32)
    hist = train_joint(
        model,
        lpm,
        ds,
        train,
        epochs=12,
        batch_size=32,
        optimizer="adam",
        lr=3e-3,
        momentum=0.9,
        weight_decay=0.0,
        weight=1.0,
        margin=1.0,
        detach_epoch=8,
        device=torch.device("cpu"),
        seed=0,
    )
    assert hist["rank"][-1] < hist["rank"][0]
    pred = predict_loss(model, lpm, ds, held, device=torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        true = torch.nn.functional.cross_entropy(model(ds.eval_transform(x[held])), y[held], reduction="none")
    rho = spearmanr(pred.numpy(), true.numpy()).statistic
    assert rho > 0.4, rho  # (an untrained module: about −0.2 to −0.6 on these data)


# -- VAAL ----------------------------------------------------------------------------------
def test_vaal_queries_the_unlabeled_cluster_unlike_the_labeled_data():
    from autoal.strategies.baselines.vaal import VAAL

    gen = torch.Generator().manual_seed(6)
    stripes_v = (torch.arange(8) % 2).float().view(1, 1, 8).expand(1, 8, 8) * 2 - 1
    stripes_h = stripes_v.transpose(1, 2)
    n_a, n_b = 200, 30
    pat = torch.cat([stripes_v.expand(n_a, 1, 8, 8), stripes_h.expand(n_b, 1, 8, 8)])
    x = _images(pat, torch.full((n_a + n_b,), 60.0), 20.0, gen)
    ds = _synthetic_dataset(x, torch.zeros(n_a + n_b, dtype=torch.long), 2)
    labeled = np.arange(0, 60)  # only cluster A is labeled
    unl = np.arange(60, n_a + n_b)  # 140 of A, 30 of B
    cache = _cache(torch.zeros(len(unl), 2), offset=60)
    s = VAAL(epochs=0, batch_size=32, latent_dim=8, width=8, disc_hidden=64, lr=2e-3, min_iterations=20)
    ctx = _ctx(cache, 15, labeled=labeled, dataset=ds)
    picks = s.query(ctx)
    from_b = int((picks >= n_a).sum())
    assert from_b >= 12, (from_b, ctx.metrics)  # random would give ≈ 15·30/170 ≈ 3


# -- ENSvarR -------------------------------------------------------------------------------
def test_variation_ratio_is_zero_when_members_agree():
    from autoal.strategies.baselines.ens_var_r import variation_ratio

    agree = torch.tensor([[0, 1, 2, 1]] * 5)
    assert variation_ratio(agree, 3).tolist() == [0.0] * 4
    mixed = torch.tensor([[0, 0], [0, 1], [0, 2], [0, 1]])
    assert variation_ratio(mixed, 3).tolist() == pytest.approx([0.0, 0.5])


@contextlib.contextmanager
def _local_ray():
    """A real local Ray (2 CPUs, no dashboard), shut down afterwards unless it was already up."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    owned = not ray.is_initialized()
    if owned:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        if owned:
            ray.shutdown()


def test_ens_var_r_sequential_and_ray_give_the_same_picks(tmp_path):
    from autoal.strategies.baselines.ens_var_r import EnsembleVarRatio

    cfg = RunConfig.from_dict(
        {
            "model": {"width": 8},
            "train": {"epochs": 3, "batch_size": 16},
            "al": {"mc_samples": 0},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True, "device": "cpu"},
        }
    )
    learner = ActiveLearningLoop(cfg).learner
    labeled, unlabeled = np.arange(40), np.arange(40, 340)
    model = learner.new_model(0)
    learner.train(model, labeled, 0)
    cache = learner.score(model, unlabeled, 0)

    def ctx():
        return QueryContext(
            cache=cache,
            unlabeled=unlabeled,
            labeled=labeled,
            n=10,
            rng=np.random.default_rng(7),
            seed=11,
            model=model,
            dataset=learner.dataset,
            learner=learner,
        )

    s = EnsembleVarRatio(ensemble_size=3)
    seeds = s.member_seeds(11)
    assert len(seeds) == 2 and len(set(seeds)) == 2
    ray_mod = sys.modules.get("ray")
    if ray_mod is None or not ray_mod.is_initialized():
        seq_picks = s.query(ctx())
        assert s.last_backend == "sequential"
    else:  # Ray is already up in this session: the sequential path by hand
        s.last_votes = s._votes_sequential(ctx(), seeds)
        seq_picks = None
    seq_votes = s.last_votes
    with _local_ray():
        ray_picks = s.query(ctx())
        assert s.last_backend == "ray"
    assert len(set(ray_picks.tolist())) == 10
    assert torch.equal(torch.as_tensor(np.stack(seq_votes))[-2:], s.last_votes[-2:])
    if seq_picks is not None:
        assert seq_picks.tolist() == ray_picks.tolist()
    assert not torch.equal(s.last_votes[1], s.last_votes[2])  # members differ


# -- every baseline in the loop --------------------------------------------------------------
SMOKE_PARAMS = {
    "ens_var_r": {"ensemble_size": 2},
    "vaal": {"epochs": 2, "min_iterations": 5, "width": 4, "latent_dim": 4, "disc_hidden": 16},
    "lpl": {"hidden": 16},
    "albl": {"arms": ["random", "entropy", "coreset"]},
}


@pytest.mark.parametrize("name", BASELINES)
def test_two_rounds_in_the_loop(name, tmp_path):
    cfg = RunConfig.from_dict(
        {
            "strategy": {"name": name, "params": SMOKE_PARAMS.get(name, {})},
            "model": {"width": 4},
            "al": {"initial_size": 20, "query_size": 10, "rounds": 2, "mc_samples": 2},
            "train": {"epochs": 2, "batch_size": 32},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True, "device": "cpu", "num_threads": 2},
        }
    )
    res = run_experiment(cfg)
    assert [h["labels"] for h in res.history] == [20, 30, 40]
    seen = set(res.labeled[:20].tolist())
    for h in res.history[:2]:
        new = set(h["selected"])
        assert len(new) == 10 and not new & seen
        seen |= new
    assert len(set(res.labeled.tolist())) == 40
