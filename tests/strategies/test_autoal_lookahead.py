"""autoal's own search (DESIGN.md §3.9): the mixture space, the Hedge safety net, the batched
head fits of the look-ahead, the per-sample gate's values, and the strategy in a loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autoal.config import RunConfig
from autoal.errors import ConfigError
from autoal.loop import run_experiment
from autoal.lookahead.gate import first_order_values, soft_top
from autoal.lookahead.mixture import (
    allocate,
    decorrelated_weights,
    hedge_update,
    mixture_scores,
    portfolio_picks,
    prior_log_weights,
    rank_correlation,
)
from autoal.lookahead.valuation import fit_heads, held_out, lookahead, partition_masks
from autoal.selection import top_n
from autoal.strategies import build_strategy


def test_the_mixture_space_holds_every_single_candidate():
    g = torch.Generator().manual_seed(0)
    ranks = torch.rand(4, 200, generator=g)
    for k in range(4):
        onehot = F.one_hot(torch.tensor(k), 4).float()
        picks = top_n(mixture_scores(ranks, onehot), 10, np.random.default_rng(0))
        assert sorted(picks.tolist()) == sorted(top_n(ranks[k], 10, np.random.default_rng(0)).tolist())
    per_sample = onehot.expand(200, 4)
    assert torch.allclose(mixture_scores(ranks, per_sample), ranks[3])


def test_a_portfolio_batch_is_made_of_each_candidates_own_best_picks():
    g = torch.Generator().manual_seed(5)
    ranks = torch.rand(3, 100, generator=g)
    assert allocate(torch.tensor([0.5, 0.3, 0.2]), 10) == [5, 3, 2]
    assert allocate(torch.tensor([0.34, 0.33, 0.33]), 10) == [4, 3, 3] and sum(allocate(torch.rand(7), 23)) == 23
    for k in range(3):  # one-hot weights: exactly that candidate's top n
        picks = portfolio_picks(ranks, F.one_hot(torch.tensor(k), 3).float(), 8, np.random.default_rng(0))
        assert sorted(picks.tolist()) == sorted(ranks[k].topk(8).indices.tolist())
    picks = portfolio_picks(ranks, torch.tensor([0.5, 0.3, 0.2]), 10, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 10
    assert set(ranks[0].topk(5).indices.tolist()) <= set(picks.tolist())  # the heaviest candidate's own top 5
    # a second candidate that ranks like the first contributes its next best, not the same samples
    same = torch.stack([ranks[0], ranks[0]])
    both = portfolio_picks(same, torch.tensor([0.5, 0.5]), 6, np.random.default_rng(0))
    assert sorted(both.tolist()) == sorted(ranks[0].topk(6).indices.tolist())


def test_correlated_candidates_share_the_weight_one_of_them_would_have():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(500, generator=g), torch.rand(500, generator=g)
    ranks = torch.stack([a, a.clone(), a.clone(), b])  # three copies of one ranking, one other
    corr = rank_correlation(ranks)
    assert torch.allclose(corr[0, 1], torch.tensor(1.0)) and abs(float(corr[0, 3])) < 0.15
    w = decorrelated_weights(torch.full((4,), 0.25), corr)
    assert torch.allclose(w.sum(), torch.tensor(1.0))
    assert float(w[:3].sum()) == pytest.approx(float(w[3]), rel=0.2)  # the family weighs what one member would
    # per-sample priors work row by row
    w2 = decorrelated_weights(torch.full((7, 4), 0.25), corr)
    assert torch.allclose(w2, w.expand(7, 4), atol=1e-6)
    # the weights still follow the prior: evidence against a candidate lowers its share
    w3 = decorrelated_weights(torch.tensor([0.32, 0.32, 0.32, 0.04]), corr)
    assert float(w3[3]) < 0.15 and float(w3[:3].sum()) > 0.85


def test_hedge_moves_towards_the_better_candidate_by_a_bounded_step():
    lw = prior_log_weights(["a", "b", "c"], None)
    up = hedge_update(lw, torch.tensor([0.3, 0.1, 0.2]), rate=0.5)
    assert int(up.argmax()) == 0 and int(up.argmin()) == 1
    # the step depends on the ranking of the gains, not their scale
    assert torch.allclose(up, hedge_update(lw, torch.tensor([30.0, 10.0, 20.0]), rate=0.5))
    assert float(up.max() - up.min()) <= 0.5 * 2.5  # |z| <= sqrt(K - 1) for a population spread
    # weighted by the decorrelated weights, a family of three agreeing candidates counts once:
    # the one that differs moves by one spread, not by an outlier's z of sqrt(3)
    lw4 = prior_log_weights(["a", "b", "c", "d"], None)
    gains = torch.tensor([0.2, 0.2, 0.2, 0.1])
    plain = hedge_update(lw4, gains, rate=1.0)
    fam = hedge_update(lw4, gains, rate=1.0, weights=torch.tensor([1 / 6, 1 / 6, 1 / 6, 0.5]))
    assert float(plain[0] - plain[3]) == pytest.approx(4 / 3**0.5, rel=1e-4)  # z = 1/√3 and −√3
    assert float(fam[0] - fam[3]) == pytest.approx(2.0, rel=1e-4)
    assert torch.equal(hedge_update(lw, torch.tensor([float("nan"), 0.1, 0.2]), rate=0.5), lw)
    assert torch.equal(hedge_update(lw, torch.tensor([0.1, 0.1, 0.1]), rate=0.5), lw)
    prior = prior_log_weights(["a", "b"], {"a": 3.0, "b": 1.0})
    assert torch.allclose(torch.softmax(prior, 0), torch.tensor([0.75, 0.25]))


def _blobs(n_per=30, c=3, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(c, d, generator=g)
    x = torch.cat([centres[k] + torch.randn(n_per, d, generator=g) for k in range(c)])
    y = torch.arange(c).repeat_interleave(n_per)
    return x, y


def test_batched_head_fits_solve_the_regularized_logistic_regression():
    x, y = _blobs()
    w0, b0 = torch.zeros(3, 6), torch.zeros(3)
    weights = torch.stack([torch.ones(90), (torch.arange(90) % 2 == 0).float()])
    W, b = fit_heads(x, y, weights, w0, b0, steps=400, l2=0.05)
    for p in range(2):  # the gradient of each problem's objective vanishes at its solution
        Wp, bp = W[p].clone().requires_grad_(True), b[p].clone().requires_grad_(True)
        wn = weights[p] / weights[p].sum()
        loss = (F.cross_entropy(x @ Wp.T + bp, y, reduction="none") * wn).sum() + 0.025 * (
            Wp.square().sum() + bp.square().sum()
        )
        gW, gb = torch.autograd.grad(loss, [Wp, bp])
        assert gW.norm() < 1e-3 and gb.norm() < 1e-3
    ce, acc = held_out(x, y, W, b, torch.ones(2, 90, dtype=torch.bool))
    assert (acc > 0.95).all() and (ce < 0.3).all()


def test_lookahead_values_informative_picks_above_redundant_ones():
    """A holds two of three classes; an arm that picks the third class from the simulated pool
    must gain more held-out cross-entropy than one that picks more of the known classes."""
    x, y = _blobs(n_per=40, seed=2)
    a = torch.cat([torch.arange(0, 10), torch.arange(40, 50)])  # classes 0 and 1 only
    v = torch.tensor([i for i in range(120) if i not in set(a.tolist())])
    e_a, y_a, e_v, y_v = x[a], y[a], x[v], y[v]
    informative = (y_v == 2).float()  # ranks class 2 first
    redundant = (y_v != 2).float()
    w0, b0 = fit_heads(e_a, y_a, torch.ones(1, len(a)), torch.zeros(3, 6), torch.zeros(3), steps=200)
    res = lookahead(
        e_a,
        y_a,
        e_v,
        y_v,
        w0[0],
        b0[0],
        torch.stack([informative, redundant]),
        5,
        parts=6,
        rng=np.random.default_rng(0),
    )
    assert res.gain_ce.shape == (2, 6) and res.picks == 5 and 0 < res.distinctness <= 1
    from autoal.lookahead.valuation import arm_distinctness

    same = torch.zeros(3, 2, 10, dtype=torch.bool)
    same[:, :, :4] = True
    assert arm_distinctness(same) == 0.0
    apart = torch.zeros(2, 1, 10, dtype=torch.bool)
    apart[0, 0, :4], apart[1, 0, 4:8] = True, True
    assert arm_distinctness(apart) == 1.0
    assert (res.gain_ce[0] > res.gain_ce[1]).all() and (res.gain_acc[0] > 0.2).all()
    masks = partition_masks(50, 4, 0.5, np.random.default_rng(0))
    assert masks.shape == (4, 50) and (masks.sum(1) == 25).all()


def test_first_order_values_are_the_gradient_agreement_with_the_held_out_set():
    g = torch.Generator().manual_seed(3)
    emb, W, b = torch.randn(12, 5, generator=g), torch.randn(4, 5, generator=g), torch.randn(4, generator=g)
    y = torch.randint(0, 4, (12,), generator=g)
    probs = torch.softmax(emb @ W.T + b, 1)
    held = torch.zeros(1, 12, dtype=torch.bool)
    held[0, 6:] = True
    vals = first_order_values(emb, probs, y, held)

    def grad(rows):
        Wg, bg = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
        loss = F.cross_entropy(emb[rows] @ Wg.T + bg, y[rows], reduction="sum") / len(rows)
        return torch.cat([t.flatten() for t in torch.autograd.grad(loss, [Wg, bg])])

    g_h = grad(list(range(6, 12)))
    for i in range(6):
        assert vals[0, i].item() == pytest.approx(float(grad([i]) @ g_h), rel=1e-4, abs=1e-6)


def test_soft_top_marks_the_top_of_each_simulated_pool():
    s = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.2, 0.95])
    pool = torch.tensor([[True, True, True, True, False, False], [False, True, True, True, True, True]])
    z = soft_top(s, pool, 2, tau=1e-3)
    assert z[0].round().tolist() == [1, 0, 1, 0, 0, 0] and z[1].round().tolist() == [0, 0, 1, 0, 0, 1]


def _cfg(tmp_path, **params):
    return RunConfig.from_dict(
        {
            "dataset": {"name": "digits"},
            "al": {"rounds": 3, "seed": 1},
            "train": {"epochs": 15},
            "strategy": {"name": "autoal", "params": params},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True, "resume": False},
        }
    )


def test_lookahead_formulation_in_a_loop_logs_its_search_and_is_reproducible(tmp_path):
    params = {"candidates": ["entropy", "margin", "kmeans", "typiclust"], "lookahead_parts": 4, "head_steps": 20}
    a = run_experiment(_cfg(tmp_path / "a", **params))
    b = run_experiment(_cfg(tmp_path / "b", **params))
    assert a.labeled.tolist() == b.labeled.tolist()
    rec = a.history[1]
    weights = [rec[f"weight/{c}"] for c in params["candidates"]]
    assert sum(weights) == pytest.approx(1.0, abs=1e-5) and min(weights) > 0
    assert all(np.isfinite(rec[f"value/{c}"]) for c in params["candidates"])
    assert 0 <= rec["fitnet/accuracy_v"] <= 1 and rec["seconds_fitnet"] > 0
    strat = build_strategy("autoal", **params)
    assert "labeled_cache" in strat.needs and strat.formulation.name == "lookahead"


def test_lookahead_parameters_are_checked():
    with pytest.raises(
        ConfigError,
        match=r"strategy.params.formulation: expected one of lookahead, paper; "
        r"got 'magic'",
    ):
        build_strategy("autoal", formulation="magic")
    with pytest.raises(ConfigError, match="strategy.params.prior: names coreset are not in the candidate pool"):
        build_strategy("autoal", prior={"coreset": 1.0})
    with pytest.raises(ConfigError, match="strategy.params.prior: weights must be finite numbers >= 0"):
        build_strategy("autoal", prior={"margin": -1.0})
    with pytest.raises(ConfigError, match=r"strategy.params.hedge_rate: expected a finite number; got nan"):
        build_strategy("autoal", hedge_rate=float("nan"))
    with pytest.raises(ConfigError, match=r"strategy.params.hedge_rate: must lie in \[0, 100\]"):
        build_strategy("autoal", hedge_rate=500)
    with pytest.raises(ConfigError, match="strategy.params.gate: expected one of none, ranks"):
        build_strategy("autoal", gate="image")


def test_fitnet_is_competent_and_never_sees_v():
    """FitNet (warm-started across rounds at half the task model's steps) reaches at least 90 %
    of the accuracy of the task model's own recipe trained on the same A, and A and V keep
    their sides from round to round."""
    import torch as _t

    from autoal.cache import compute_cache
    from autoal.data import DataSpec, load_dataset
    from autoal.device import prepare_model
    from autoal.models import build_model
    from autoal.strategies import QueryContext
    from autoal.training import TrainConfig, evaluate, train_model

    ds = load_dataset(DataSpec(name="digits"))
    cpu = _t.device("cpu")
    strat = build_strategy("autoal", candidates=["entropy", "margin"], lookahead_parts=2, head_steps=5, gate="none")
    task = prepare_model(build_model("small_cnn", 1, 10, 8), cpu)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ds.y_train))
    sides = {}
    ratios = []
    for r, size in enumerate((20, 30, 40, 50, 60)):
        labeled = np.sort(order[:size])
        unlabeled = np.setdiff1d(np.arange(len(ds.y_train)), labeled)
        cache = compute_cache(task, ds, unlabeled, mc_samples=5)
        ctx = QueryContext(
            cache=cache,
            unlabeled=unlabeled,
            labeled=labeled,
            n=10,
            rng=np.random.default_rng(r),
            round=r,
            seed=100 + r,
            model=task,
            dataset=ds,
            device=cpu,
            labeled_cache=compute_cache(task, ds, labeled, mc_samples=0),
        )
        strat.query(ctx)
        a_idx, v_idx = strat.formulation._split(labeled, len(ds.y_train), np.random.default_rng(0), 0)
        assert set(a_idx.tolist()).isdisjoint(v_idx.tolist()) and len(a_idx) + len(v_idx) == size
        for i in a_idx.tolist():
            assert sides.setdefault(i, "A") == "A"
        for i in v_idx.tolist():
            assert sides.setdefault(i, "V") == "V"
        if size >= 40:
            _t.manual_seed(1)
            ref = prepare_model(build_model("small_cnn", 1, 10, 8), cpu)
            train_model(ref, ds, a_idx, TrainConfig(), device=cpu, seed=1)
            fit_acc = evaluate(strat.formulation.fitnet, ds, device=cpu)["accuracy"]
            ratios.append(fit_acc / evaluate(ref, ds, device=cpu)["accuracy"])
    assert min(ratios) >= 0.9, ratios


def test_lookahead_run_resumed_after_a_crash_picks_what_an_uninterrupted_run_picks(tmp_path):
    """The search's state (log-weights, FitNet's weights, the A/V sides) is saved with every
    round: a run that dies after round 1 and is started again picks the same samples."""
    params = {"candidates": ["entropy", "margin", "kmeans"], "lookahead_parts": 3, "head_steps": 10}

    def cfg(folder, resume):
        c = _cfg(folder, **params)
        c.runtime.resume = resume
        return c

    ref = run_experiment(cfg(tmp_path / "ref", False))

    class Crash(RuntimeError):
        pass

    def die(record):
        if record["round"] == 1:
            raise Crash

    with pytest.raises(Crash):
        run_experiment(cfg(tmp_path / "crashy", False), callbacks=[die])
    again = run_experiment(cfg(tmp_path / "crashy", True))
    assert again.labeled.tolist() == ref.labeled.tolist()
    assert [h["selected"] for h in again.history] == [h["selected"] for h in ref.history]
    assert [h.get("weight/margin") for h in again.history] == [h.get("weight/margin") for h in ref.history]
