"""AutoAL's differentiable search (issue 3; DESIGN.md §3.2-3.8). Every test can fail: each one
checks a number or a set against what the paper's equations (and the fixes to the released
code) require."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from autoal.cache import PoolCache, compute_cache
from autoal.mc import MCSummary
from autoal.errors import ConfigError
from autoal.lpm import LossPredictionModule, ranking_loss
from autoal.search.losses import aggregated_score, budget_regularizer, gmm_threshold, soft_selection
from autoal.search.nets import build_fitnet, build_searchnet
from autoal.search.cycle import SearchBatch, SearchConfig, SearchNets, make_optimizers, pool_scores, searchnet_step
from autoal.strategies.base import QueryContext
from autoal.strategies.autoal import AutoAL
from autoal.strategies.candidates import BALD, EntropySampling, LeastConfidence, MarginSampling, MeanSTD

torch.set_num_threads(1)

#: small and fast: 2 warm-up epochs, 2 search epochs, a 4-wide CNN
TINY = {"formulation": "paper", "warmup_epochs": 2, "search_epochs": 2, "width": 4, "gmm_samples": 500}


# ---------------------------------------------------------------------------------------------
# gradients through the soft selection
# ---------------------------------------------------------------------------------------------
def _nets(seed: int = 0, lpm: bool = True) -> SearchNets:
    torch.manual_seed(seed)
    sn = build_searchnet("small_cnn", 1, 3, 8, width=4)
    fn = build_fitnet("small_cnn", 1, 10, 8, width=4)
    return SearchNets(sn, fn, LossPredictionModule(sn.stage_channels, 8) if lpm else None)


def _batch(seed: int = 0, n: int = 32) -> SearchBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    S = (torch.rand(n, 3, generator=g) < 0.3).float()
    return SearchBatch(x=x, y=y, S=S, theta=0.1)


def _head_grad(tau: float, lpm: bool = True) -> float:
    nets = _nets(lpm=lpm)
    opts = make_optimizers(nets, fitnet_lr=5e-3, searchnet_lr=5e-3, lpm_lr=5e-3)
    cfg = SearchConfig(t=0.1, tau=tau, lam=1.0, lam_reg=2.0, lpm=lpm)
    return searchnet_step(nets, opts, _batch(), cfg)["head_grad_norm"]


def test_searchnet_head_gradient_alive_with_soft_selection_and_dead_with_hard_threshold():
    soft = _head_grad(0.1)
    hard = _head_grad(0.0)  # the released code's hard step (exactly zero gradient)
    tiny = _head_grad(1e-7)  # τ → 0 through the sigmoid itself
    assert np.isfinite(soft) and soft > 1e-3, soft
    assert hard == 0.0
    assert tiny < 1e-4 * soft, (tiny, soft)


def test_lpm_only_keeps_the_search_loss_out_of_the_backbone():
    nets = _nets()
    opts = make_optimizers(nets, fitnet_lr=5e-3, searchnet_lr=5e-3, lpm_lr=5e-3)
    cfg = SearchConfig(t=0.1, tau=0.1, lpm=True, lpm_only=True, lpm_weight=0.0)
    rec = searchnet_step(nets, opts, _batch(), cfg)
    assert rec["head_grad_norm"] > 1e-3
    conv = nets.searchnet.backbone.blocks[0][0].weight.grad
    assert conv is None or float(conv.abs().max()) == 0.0
    # ... and without lpm_only the same loss does reach the backbone
    nets = _nets()
    opts = make_optimizers(nets, fitnet_lr=5e-3, searchnet_lr=5e-3, lpm_lr=5e-3)
    searchnet_step(nets, opts, _batch(), SearchConfig(t=0.1, tau=0.1, lpm=True, lpm_weight=0.0))
    assert float(nets.searchnet.backbone.blocks[0][0].weight.grad.abs().max()) > 0.0


def test_soft_selection_limits():
    s = torch.tensor([-1.0, -1e-3, 1e-3, 1.0], requires_grad=True)
    z = soft_selection(s, 0.0)
    assert z.tolist() == [0.0, 0.0, 1.0, 1.0]
    z.sum().backward()
    assert s.grad.abs().max() == 0.0
    assert torch.allclose(soft_selection(torch.zeros(3), 0.1), torch.full((3,), 0.5))


# ---------------------------------------------------------------------------------------------
# budget regularizer
# ---------------------------------------------------------------------------------------------
def test_budget_regularizer_nonpositive_peaks_at_budget_and_is_differentiable():
    t, B = 0.1, 64
    alphas = torch.linspace(0, B, 641)
    r = budget_regularizer(alphas, t, B)
    assert float(r.max()) <= 0.0
    assert float(alphas[int(r.argmax())]) == pytest.approx(t * B, abs=0.1)
    assert float(budget_regularizer(torch.tensor(t * B), t, B)) == pytest.approx(0.0, abs=1e-7)
    for a0, sign in ((2.0, 1.0), (12.0, -1.0)):  # below tB R rises with α, above it falls
        a = torch.tensor(a0, requires_grad=True)
        budget_regularizer(a, t, B).backward()
        assert a.grad is not None and torch.isfinite(a.grad) and float(a.grad) * sign > 0


def test_alpha_stays_differentiable_through_the_soft_count():
    w = torch.full((8, 2), 0.5, requires_grad=True)
    S = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 0.0]] * 4)
    z = soft_selection(aggregated_score(w, S, 0.3, 1.0), 0.1)
    budget_regularizer(z.sum(), 0.1, 8).backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------------------
# GMM threshold
# ---------------------------------------------------------------------------------------------
def test_gmm_threshold_matches_the_true_quantile_of_a_known_mixture():
    rng = np.random.default_rng(0)
    pi, mu, sd = np.array([0.8, 0.2]), np.array([0.0, 5.0]), np.array([1.0, 0.5])
    comp = rng.choice(2, size=4000, p=pi)
    s = rng.normal(mu[comp], sd[comp])
    t = 0.1
    cdf = lambda v: float((pi * stats.norm.cdf(v, mu, sd)).sum())  # noqa: E731
    true_q = optimize.brentq(lambda v: cdf(v) - (1 - t), -10, 20)  # ≈ 4.81
    theta = gmm_threshold(s, t, components=2, n_samples=20000, seed=1)
    assert abs(theta - true_q) < 0.15, (theta, true_q)  # tolerance: sample + fit error
    assert gmm_threshold(s, t, components=2, n_samples=20000, seed=1) == theta
    assert gmm_threshold(rng.permutation(s), t, components=2, n_samples=20000, seed=1) == pytest.approx(theta)


def _em_on_every_sample(s, components, var_floor, iters=100, tol=1e-7):
    """The textbook EM over all N values (the reference the distinct-value EM must equal)."""
    x = np.sort(np.asarray(s, dtype=np.float64))
    uniq = np.unique(x)
    g = min(components, uniq.size)
    mu = uniq[np.round(np.linspace(0, uniq.size - 1, g)).astype(int)].copy()
    var, pi, prev = np.full(g, max(x.var(), var_floor)), np.full(g, 1.0 / g), -np.inf
    for _ in range(iters):
        logp = -0.5 * ((x[:, None] - mu) ** 2 / var + np.log(2 * np.pi * var)) + np.log(pi)
        lse = np.logaddexp.reduce(logp, axis=1, keepdims=True)
        resp = np.exp(logp - lse)
        nk = resp.sum(0) + 1e-12
        pi, mu = nk / nk.sum(), (resp * x[:, None]).sum(0) / nk
        var = np.maximum((resp * (x[:, None] - mu) ** 2).sum(0) / nk, var_floor)
        if abs(float(lse.mean()) - prev) < tol:
            break
        prev = float(lse.mean())
    return pi, mu, var


@pytest.mark.parametrize("kind", ["votes", "continuous"])
def test_gmm_em_on_distinct_values_equals_em_on_every_sample(kind):
    from autoal.search.losses import fit_gmm_1d

    rng = np.random.default_rng(3)
    s = rng.binomial(7, 0.1, size=5000) / 7 if kind == "votes" else rng.normal(size=800) * [1, 3][rng.integers(2)]
    ours, ref = fit_gmm_1d(s, 3, var_floor=1e-4), _em_on_every_sample(s, 3, 1e-4)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_gmm_threshold_defined_on_constant_votes():
    theta = gmm_threshold(np.full(50, 0.25), 0.05, components=3, n_samples=1000, seed=0)
    assert np.isfinite(theta) and abs(theta - 0.25) < 0.01
    theta0 = gmm_threshold(np.zeros(50), 0.05, components=3, n_samples=1000, seed=0)
    assert np.isfinite(theta0) and abs(theta0) < 0.01


def test_ranking_loss_orders_pairs():
    target = torch.tensor([3.0, 2.0, 1.0, 0.0])
    good = torch.tensor([30.0, 20.0, 10.0, 0.0])
    assert float(ranking_loss(good, target)) == 0.0
    assert float(ranking_loss(-good, target)) > 1.0


def test_ranking_loss_one_rule_for_odd_batches_shared_by_autoal_and_lpl():
    """Pairs (i, B-1-i): in a batch of 5 the middle sample has no partner, so changing it
    changes nothing; the pairs (0, 4) and (1, 3) are the ones scored. AutoAL's search and the
    LPL baseline call this very function."""
    import autoal.search.cycle as search_mod
    import autoal.strategies.baselines.lpl as lpl_mod

    assert search_mod.ranking_loss is ranking_loss and lpl_mod.ranking_loss is ranking_loss
    assert search_mod.LossPredictionModule is LossPredictionModule is lpl_mod.LossPredictionModule
    target = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    pred = torch.tensor([0.0, 5.0, 7.0, 2.0, 3.0])
    # pair (0, 4): target says 0 > 4, prediction 0 - 3 = -3 -> 1 + 3 = 4; pair (1, 3): 5 - 2 = 3 -> 0
    assert float(ranking_loss(pred, target)) == pytest.approx((4.0 + 0.0) / 2)
    pred_mid = pred.clone()
    pred_mid[2] = -100.0
    assert float(ranking_loss(pred_mid, target)) == float(ranking_loss(pred, target))
    one = torch.tensor([1.5], requires_grad=True)
    loss = ranking_loss(one, torch.tensor([0.3]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and one.grad is not None


# ---------------------------------------------------------------------------------------------
# alignment: S̄ is a per-sample function of the pool
# ---------------------------------------------------------------------------------------------
def _random_cache(n: int, seed: int) -> tuple[PoolCache, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, 10, generator=g)
    mc = torch.softmax(logits.unsqueeze(0) + torch.randn(5, n, 10, generator=g), -1)
    cache = PoolCache(
        indices=np.arange(100, 100 + n),
        probs=torch.softmax(logits, 1),
        embeddings=torch.randn(n, 16, generator=g),
        logits=logits,
        mc=MCSummary.from_samples(mc),
    )
    return cache, torch.randn(n, 1, 8, 8, generator=g)


@pytest.mark.parametrize("searchnet_input,kind", [("image", "indicator"), ("image+scores", "rank")])
def test_permuting_the_pool_permutes_the_aggregated_score(searchnet_input, kind):
    torch.manual_seed(0)
    # candidates with continuous scores: ties (VarRatio's few discrete values, k-means seeding)
    # are broken by a seeded order of positions, which a permutation of the pool changes
    cands = [EntropySampling(), MarginSampling(), LeastConfidence(), BALD(), MeanSTD()]
    sn = build_searchnet(
        "small_cnn", 1, len(cands), 8, width=4, num_scores=len(cands) if searchnet_input == "image+scores" else 0
    )
    if sn.score_fc is not None:
        torch.nn.init.normal_(sn.score_fc.weight)
    cache, x = _random_cache(60, 0)
    kw = dict(lam=1.0, candidate_score=kind, searchnet_input=searchnet_input, gmm_samples=2000, seed=3)
    ref = pool_scores(sn, cands, cache, x, 6, **kw)
    perm = np.random.default_rng(1).permutation(60)
    out = pool_scores(sn, cands, cache.subset(perm), x[torch.from_numpy(perm)], 6, **kw)
    assert out["theta"] == pytest.approx(ref["theta"])
    assert torch.equal(out["S"], ref["S"][torch.from_numpy(perm)])
    assert torch.allclose(out["sbar"], ref["sbar"][torch.from_numpy(perm)], atol=1e-5)
    assert ref["sbar"].std() > 0  # not trivially constant


# ---------------------------------------------------------------------------------------------
# selection through the strategy
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_ctx_parts():
    from autoal.data import load_dataset
    from autoal.data.registry import DataSpec
    from autoal.models import build_model

    ds = load_dataset(DataSpec(name="digits"))
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, 8, width=4)
    rng = np.random.default_rng(0)
    labeled = np.sort(rng.choice(len(ds.y_train), 40, replace=False))
    unlabeled = np.setdiff1d(np.arange(len(ds.y_train)), labeled)
    cache = compute_cache(model, ds, unlabeled, mc_samples=5, device=torch.device("cpu"), seed=0)
    return ds, model, labeled, unlabeled, cache


def _ctx(parts, seed: int = 7, n: int = 10) -> QueryContext:
    ds, model, labeled, unlabeled, cache = parts
    return QueryContext(
        cache=cache,
        unlabeled=unlabeled,
        labeled=labeled,
        n=n,
        rng=np.random.default_rng(seed),
        seed=seed,
        model=model,
        dataset=ds,
        device=torch.device("cpu"),
    )


def test_selection_gives_b_distinct_unlabeled_indices_reproducibly(digits_ctx_parts):
    ctx = _ctx(digits_ctx_parts)
    picks = AutoAL(**TINY).query(ctx)
    assert len(picks) == 10 and len(np.unique(picks)) == 10
    assert np.isin(picks, digits_ctx_parts[3]).all()
    again = AutoAL(**TINY).query(_ctx(digits_ctx_parts))
    assert np.array_equal(picks, again)
    assert {"w_mean/entropy", "contribution/margin", "search/alpha", "seconds_search"} <= set(ctx.metrics)
    trace = ctx.artifacts["autoal_trace"]
    assert set(trace["w_mean"]) == {"entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std"}
    shares = [v for v in trace["share"].values() if v is not None]
    assert sum(shares) == pytest.approx(1.0)


def test_state_dict_resume_continues_like_an_uninterrupted_strategy(digits_ctx_parts):
    a = AutoAL(**TINY)
    a.query(_ctx(digits_ctx_parts, seed=1))
    state = {k: v for k, v in a.state_dict().items()}
    import copy

    b = AutoAL(**TINY)
    b.load_state_dict(copy.deepcopy(state))
    assert np.array_equal(a.query(_ctx(digits_ctx_parts, seed=2)), b.query(_ctx(digits_ctx_parts, seed=2)))
    assert set(state) >= {"searchnet", "fitnet", "lpm", "opt_searchnet", "opt_fitnet", "opt_lpm"}


@pytest.mark.parametrize(
    "params,key",
    [
        ({"candidates": ["entropy", "nope"]}, "candidates"),
        ({"candidates": ["entropy", "albl"]}, "candidates"),
        ({"pool_size": 9}, "pool_size"),
        ({"tau": -1.0}, "tau"),
        ({"candidate_model": "oracle"}, "candidate_model"),
        ({"candidate_score": "votes"}, "candidate_score"),
        ({"searchnet_input": "scores"}, "searchnet_input"),
        ({"lpm": False, "lpm_only": True}, "lpm_only"),
        ({"cycles": 0}, "cycles"),
    ],
)
def test_bad_params_raise_config_error_naming_the_key(params, key):
    with pytest.raises(ConfigError, match=rf"strategy\.params\.{key}"):
        AutoAL(**params)


def test_the_old_executor_key_is_refused_naming_search_executor():
    """``strategy.params.executor`` was renamed ``search_executor``: the library, a sweep's dotted
    key and a command-line override all refuse the old key in one line naming the new one."""
    from autoal.cli.common import compose
    from autoal.strategies import build_strategy

    for make in (
        lambda: build_strategy("autoal", formulation="paper", executor="ray_train"),
        lambda: AutoAL(executor="local"),
        lambda: compose(["strategy=autoal_paper", "strategy.params.executor=ray_train"]),
    ):
        with pytest.raises(
            ConfigError,
            match=r"^strategy\.params\.executor was renamed to "
            r"strategy\.params\.search_executor; write search_executor instead$",
        ):
            make()
    assert (
        build_strategy("autoal", formulation="paper", search_executor="ray_train").params.paper.search_executor
        == "ray_train"
    )


def test_any_registered_pool_strategy_is_a_candidate_and_others_are_refused():
    s = AutoAL(candidates=["coreset", "typiclust", "badge"], formulation="paper")
    assert s.candidate_names == ["coreset", "typiclust", "badge"] and "labeled_cache" in s.needs
    with pytest.raises(ConfigError, match=r"strategy\.params\.candidates: 'vaal' is not a pool strategy"):
        AutoAL(candidates=["margin", "vaal"])


def test_pool_size_takes_a_prefix_of_the_paper_order():
    assert AutoAL(pool_size=3).candidate_names == ["entropy", "margin", "least_confidence"]


# ---------------------------------------------------------------------------------------------
# end to end: the loop, MLflow trace
# ---------------------------------------------------------------------------------------------
def test_autoal_run_on_digits_logs_the_trace(tmp_path):
    from mlflow.tracking import MlflowClient

    from autoal.config import RunConfig
    from autoal.loop import run_experiment

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = RunConfig.from_dict(
        {
            "dataset": {"name": "digits"},
            "train": {"epochs": 10},
            "al": {"initial_size": 20, "query_size": 10, "rounds": 3, "seed": 0, "mc_samples": 5},
            "strategy": {"name": "autoal", "params": {"formulation": "paper", "warmup_epochs": 5, "search_epochs": 3}},
            "tracking": {"uri": uri, "experiment": "autoal-test"},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 1},
        }
    )
    res = run_experiment(cfg)
    assert len(res.labeled) == 50
    client = MlflowClient(tracking_uri=uri)
    for key in (
        "w_mean/entropy",
        "w_mean/mean_std",
        "contribution/kmeans",
        "search/alpha",
        "search/alpha_target",
        "search/loss_searchnet",
        "seconds_search",
        "seconds_candidates",
    ):
        steps = sorted(m.step for m in client.get_metric_history(res.tracking_run_id, key))
        assert steps == [0, 1, 2], (key, steps)
    w = client.get_metric_history(res.tracking_run_id, "w_mean/entropy")
    assert all(0.0 < m.value < 1.0 for m in w)


def test_config_group_lists_every_constructor_default():
    from pathlib import Path

    import yaml

    folder = Path(__file__).resolve().parents[2] / "autoal" / "conf" / "strategy"
    conf = yaml.safe_load((folder / "autoal.yaml").read_text())
    assert conf["name"] == "autoal"
    from autoal.strategies.registry import strategy_defaults

    defaults = strategy_defaults("autoal")
    assert conf["params"] == defaults
    # the paper's formulation is a named configuration: autoal.yaml (Hydra's defaults list) with
    # only what differs, formulation: paper
    paper = yaml.safe_load((folder / "autoal_paper.yaml").read_text())
    assert paper["defaults"] == ["autoal", "_self_"] and paper["params"] == {"formulation": "paper"}
    from autoal.cli.common import compose

    composed = compose(["strategy=autoal_paper"])["strategy"]
    assert composed == {"name": "autoal", "params": {**defaults, "formulation": "paper"}}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_search_nets_run_channels_last_on_cuda(digits_ctx_parts):
    """FitNet and SearchNet take the GPU fast path (channels-last, like the task model); a
    layout mismatch would put a conversion kernel in front of every convolution."""
    import copy

    from autoal.device import prepare_model

    ds, model, labeled, unlabeled, cache = digits_ctx_parts
    dev = torch.device("cuda")
    ctx = QueryContext(
        cache=cache.to(dev),
        unlabeled=unlabeled,
        labeled=labeled,
        n=10,
        rng=np.random.default_rng(7),
        seed=7,
        model=prepare_model(copy.deepcopy(model), dev),
        dataset=ds,
        device=dev,
    )
    strategy = AutoAL(**TINY)
    picks = strategy.query(ctx)
    assert len(np.unique(picks)) == 10
    for net in (strategy.formulation.nets.searchnet, strategy.formulation.nets.fitnet):
        convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
        assert convs and all(w.is_cuda and w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_autoal_params_are_a_typed_dataclass_checked_before_any_work():
    from autoal.strategies import build_strategy
    from autoal.strategies.autoal import AutoALParams, PaperParams

    s = build_strategy("autoal", lam=2, cycles=3.0, candidates=["margin", "kmeans"])
    assert isinstance(s.params, AutoALParams) and isinstance(s.params.paper, PaperParams)
    assert s.params.paper.lam == 2.0 and isinstance(s.params.paper.lam, float)
    assert s.params.paper.cycles == 3 and isinstance(s.params.paper.cycles, int)
    assert s.candidate_names == ["margin", "kmeans"]
    assert AutoALParams.from_params({}) == AutoALParams()
    for bad, key in (
        ({"cycles": "abc"}, "cycles"),
        ({"cycles": 2.5}, "cycles"),
        ({"lpm": 1}, "lpm"),
        ({"gate": "nope"}, "gate"),
        ({"width_factor": 0}, "width_factor"),
        ({"prior": {"bald": 1.0}, "candidates": ["margin"]}, "prior"),
    ):
        with pytest.raises(ConfigError, match=f"strategy.params.{key}"):
            build_strategy("autoal", **bad)
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_strategy("autoal", lamm=1.0)


def test_the_round_config_is_the_params_by_name_with_one_set_of_defaults():
    """SearchConfig takes the paper formulation's settings by field name (no copy by hand), and
    its defaults are the params' own."""
    from autoal.strategies.autoal import AutoALParams, PaperParams

    p = AutoALParams.from_params({"formulation": "paper", "search_epochs": 3, "tau": 0.5, "candidate_score": "rank"})
    cfg = SearchConfig.of(p.paper, t=0.1, mc_samples=4)
    assert (cfg.search_epochs, cfg.tau, cfg.candidate_score, cfg.t, cfg.mc_samples) == (3, 0.5, "rank", 0.1, 4)
    default = SearchConfig(t=0.1)
    assert all(
        getattr(default, k) == getattr(PaperParams(), k)
        for k in ("search_epochs", "warmup_epochs", "lam", "tau", "batch_size", "gmm_samples")
    )
    with pytest.raises(ConfigError, match=r"^strategy\.params\.batch_size: must be >= 2; got 1$"):
        AutoALParams.from_params({"batch_size": 1})


@pytest.mark.parametrize("n, size", [(65, 64), (129, 64), (193, 64), (64, 64), (3, 2), (130, 64)])
def test_batch_rows_partition_every_row_once(n, size):
    """A tail of one row joins the batch before it (BatchNorm needs 2 rows): every row exactly
    once, no batch of fewer than 2 rows (n = k * size + 1 used to crash or duplicate a batch)."""
    import numpy as np

    from autoal.search.cycle import batch_rows

    parts = batch_rows(n, size, np.random.default_rng(0))
    rows = np.concatenate(parts)
    assert sorted(rows.tolist()) == list(range(n)) and min(len(p) for p in parts) >= min(2, n)
