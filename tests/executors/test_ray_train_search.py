"""AutoAL's search on Ray Train (issue 4 item 2): the batch sharding arithmetic, and one AutoAL
round with ``search_executor: ray_train`` (2 CPU workers, DDP over the batch, gloo) that trains,
returns the weights to the driver and selects."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autoal.executors.ray_train_search import BatchSharding, default_storage_path, resources_for


def test_batch_sharding_covers_every_row_once_and_means_add_up():
    for n, world in [(10, 2), (11, 2), (64, 3), (7, 3), (3, 2)]:
        parts = [BatchSharding(r, world).local_rows(n) for r in range(world)]
        sharded = BatchSharding(0, world).sharded(n)
        if sharded:
            rows = np.concatenate([np.arange(n)[p] for p in parts])
            assert rows.tolist() == list(range(n))  # contiguous, in order, each row once
            assert min(p.stop - p.start for p in parts) >= 2
        else:  # too few rows for 2 per worker: every worker takes the whole batch
            assert all(p == slice(0, n) for p in parts)
        v = torch.arange(n, dtype=torch.float64) ** 2
        # DDP averages the workers' terms: the average of W/B·Σ_slice is the batch mean
        terms = [BatchSharding(r, world).mean(v[p], n) for r, p in enumerate(parts)]
        assert float(sum(terms) / world) == pytest.approx(float(v.mean()))
    assert BatchSharding(0, 1).local_rows(5) == slice(0, 5) and not BatchSharding(0, 1).sharded(5)


def test_storage_path_is_absolute_and_resources_are_declared(monkeypatch):
    monkeypatch.setenv("AUTOAL_RAY_TRAIN_STORAGE", "relative/dir")
    assert default_storage_path().startswith("/")
    assert resources_for(2, use_gpu=False) == {"CPU": 2.0}
    assert resources_for(2, use_gpu=True) == {"CPU": 2.0, "GPU": 2.0}


# -- DDP over the batch gives the single-process update (2 gloo processes, no Ray) -------------
def _tiny_search_setup():
    from torch import nn

    from autoal.lpm import LossPredictionModule
    from autoal.search.nets import build_fitnet, build_searchnet
    from autoal.search.cycle import SearchBatch, SearchConfig, SearchNets, SearchOptimizers

    def no_bn(m):  # BatchNorm statistics are per slice on CPU: compare the rest exactly
        for name, c in m.named_children():
            setattr(m, name, nn.Identity()) if isinstance(c, nn.BatchNorm2d) else no_bn(c)
        return m

    torch.manual_seed(0)
    sn = no_bn(build_searchnet("small_cnn", 1, 3, 8, width=4))
    fn = no_bn(build_fitnet("small_cnn", 1, 10, 8, width=4, dropout=0.0))
    lpm = LossPredictionModule(sn.stage_channels, 8)
    nets = SearchNets(sn, fn, lpm)
    opts = SearchOptimizers(*(torch.optim.SGD(m.parameters(), lr=0.5) for m in (sn, fn, lpm)))
    g = torch.Generator().manual_seed(1)
    batch = SearchBatch(
        x=torch.randn(12, 1, 8, 8, generator=g),
        y=torch.randint(0, 10, (12,), generator=g),
        S=(torch.rand(12, 3, generator=g) > 0.6).float(),
        theta=0.3,
    )
    # lpm_weight 0: the LPM's pairwise loss pairs rows within a slice (documented difference)
    return nets, opts, batch, SearchConfig(t=0.25, tau=0.1, lam_reg=2.0, lpm_weight=0.0)


class _NoAlphaReduce(BatchSharding):
    """The naive sharding: α from the worker's own rows only (what this module must not do)."""

    def sum(self, local_sum, n_rows):
        return local_sum


def _ddp_worker(rank, world, init_file, out_dir):
    import torch.distributed as tdist

    from autoal.executors.ray_train_search import _forwarding_ddp_class
    from autoal.search.cycle import SearchNets, fitnet_step, searchnet_step

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        for naive in (False, True):
            nets, opts, batch, cfg = _tiny_search_setup()
            ddp = _forwarding_ddp_class()
            wrapped = SearchNets(ddp(nets.searchnet), ddp(nets.fitnet), ddp(nets.lpm))
            sharding = (_NoAlphaReduce if naive else BatchSharding)(rank, world)
            rec = searchnet_step(wrapped, opts, batch, cfg, dist=sharding)
            fitnet_step(wrapped, opts, batch, cfg, dist=sharding)
            if rank == 0:
                torch.save(
                    {
                        "searchnet": nets.searchnet.state_dict(),
                        "fitnet": nets.fitnet.state_dict(),
                        "alpha": rec["alpha"],
                    },
                    f"{out_dir}/naive_{naive}.pt",
                )
    finally:
        tdist.destroy_process_group()


def test_ddp_over_the_batch_with_all_reduced_alpha_equals_the_single_process_update(tmp_path):
    import torch.multiprocessing as mp

    from autoal.search.cycle import fitnet_step, searchnet_step

    nets, opts, batch, cfg = _tiny_search_setup()
    start = {k: v.clone() for k, v in nets.searchnet.state_dict().items()}
    rec = searchnet_step(nets, opts, batch, cfg)
    fitnet_step(nets, opts, batch, cfg)
    # forked workers (they inherit the imports; one thread each), one gloo group for both variants
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / "pg"), str(tmp_path)), nprocs=2, start_method="fork")
    results = {naive: torch.load(tmp_path / f"naive_{naive}.pt") for naive in (False, True)}

    def diff(a, b):
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    assert diff(nets.searchnet.state_dict(), start) > 1e-3
    ddp = results[False]
    assert ddp["alpha"] == pytest.approx(rec["alpha"], rel=1e-5)  # α over the whole batch
    assert diff(ddp["searchnet"], nets.searchnet.state_dict()) < 1e-6
    assert diff(ddp["fitnet"], nets.fitnet.state_dict()) < 1e-6
    # without the all-reduce, R(α) sees half the batch: a different SearchNet update
    assert diff(results[True]["searchnet"], nets.searchnet.state_dict()) > 1e-4


@pytest.mark.slow
def test_autoal_round_on_ray_train_trains_and_selects(ray_local, monkeypatch, tmp_path):
    import autoal.executors.ray_train_search as ts
    import autoal.strategies.autoal.paper as paper
    from autoal.cache import compute_cache
    from autoal.data import DataSpec, load_dataset
    from autoal.models import build_model
    from autoal.strategies import QueryContext, build_strategy

    ds = load_dataset(DataSpec(name="digits"))
    torch.manual_seed(0)
    task = build_model("small_cnn", 1, 10, 8, dropout=0.3).eval()
    rng = np.random.default_rng(0)
    labeled = np.sort(rng.choice(len(ds.y_train), 40, replace=False))
    unlabeled = np.setdiff1d(np.arange(len(ds.y_train)), labeled)
    cache = compute_cache(task, ds, unlabeled, mc_samples=4, seed=1)
    params = dict(
        formulation="paper",
        warmup_epochs=2,
        search_epochs=3,
        batch_size=20,
        gmm_samples=200,
        cycles=2,
        fitnet_reset="cycle",
    )

    def ctx(round_):
        return QueryContext(
            cache=cache,
            unlabeled=unlabeled,
            labeled=labeled,
            n=10,
            rng=np.random.default_rng(round_),
            round=round_,
            seed=100 + round_,
            model=task,
            dataset=ds,
            device=torch.device("cpu"),
        )

    # round 0 in-process builds the nets; round 1 continues from its state on Ray Train
    local = build_strategy("autoal", **params)
    local.query(ctx(0))
    strat = build_strategy("autoal", search_executor="ray_train", num_workers=2, **params)
    strat.load_state_dict(local.state_dict())
    before = {k: v.clone() for k, v in local.formulation.nets.searchnet.state_dict().items()}

    calls = []
    real = ts.run_search_on_ray_train

    def spy(job):
        calls.append(job.num_workers)
        out = real(job)
        calls.append(out)
        return out

    monkeypatch.setattr(paper, "run_search_on_ray_train", spy)  # the name the paper formulation calls
    storage = tmp_path / "train"
    monkeypatch.setenv("AUTOAL_RAY_TRAIN_STORAGE", str(storage))
    c1 = ctx(1)
    picks = strat.query(c1)

    assert calls[0] == 2 and len(calls) == 2  # one TorchTrainer.fit for the whole round
    stats = calls[1]
    assert len(stats) == 2 and all(st.extra["world_size"] == 2 and st.steps > 0 for st in stats)
    for key in ("loss_fitnet", "loss_searchnet", "loss_lpm", "loss_warmup", "alpha"):
        assert all(math.isfinite(getattr(st, key)) for st in stats), key
    assert stats[0].alpha_target == pytest.approx(c1.metrics["search/alpha_target"])
    assert all(math.isfinite(c1.metrics[f"search/{k}"]) for k in ("loss_fitnet", "loss_searchnet", "alpha"))
    after = strat.formulation.nets.searchnet.state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    assert not any(k.startswith("module.") for k in after)
    # the optimizer state came back too: SearchNet's SGD momentum buffers moved on from round 0's
    state = strat.formulation.opts.searchnet.state_dict()["state"]
    state0 = local.formulation.opts.searchnet.state_dict()["state"]
    assert state and state.keys() == state0.keys()
    assert any(not torch.equal(state[k]["momentum_buffer"], state0[k]["momentum_buffer"]) for k in state)
    # selection: b distinct indices from U
    assert len(picks) == 10 and len(set(picks.tolist())) == 10 and np.isin(picks, unlabeled).all()
    # the run's Train folder (absolute storage_path) is removed after the weights are loaded
    assert storage.is_dir() and list(storage.iterdir()) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scoring_actors_and_ray_train_search_finish_on_two_cpus(ray_local, tmp_path):
    """The platform's own shape on a laptop (issue 16): Ray actors scoring the pool and AutoAL's
    search on Ray Train, on 2 CPUs. The scoring actors hold both CPUs for the whole run, so Train
    workers can never be placed: the round's search runs in this process, with a notice in the
    round's record, instead of waiting forever."""
    import json
    import time

    from autoal.config import RunConfig
    from autoal.loop import run_experiment

    cfg = RunConfig.from_dict(
        {
            "al": {"rounds": 1, "mc_samples": 2},
            "train": {"epochs": 2},
            "strategy": {
                "name": "autoal",
                "params": {
                    "formulation": "paper",
                    "search_executor": "ray_train",
                    "num_workers": 1,
                    "warmup_epochs": 1,
                    "search_epochs": 1,
                },
            },
            "scoring": {"executor": "ray", "num_actors": 2, "num_cpus": 1},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True, "num_threads": 1},
        }
    )
    t0 = time.time()
    r = run_experiment(cfg)
    assert time.time() - t0 < 300 and len(r.history) == 2
    record = json.loads((r.run_dir / "rounds" / "round_000.json").read_text())
    assert (
        record["search_executor"]["used"] == "local"
        and "Train workers need {CPU: 1}" in record["search_executor"]["notice"]
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scoring_actors_and_ray_train_search_finish_inside_a_sweep(ray_local, tmp_path):
    """The same inside a Tune trial: the trial's placement group holds the trial and its scorer
    actor (both CPUs), the Train workers' own group can never be placed; the trial finishes."""
    from autoal.platform.sweep import SweepSpec, run_sweep

    fixed = {
        "strategy": "autoal",
        "strategy.params.formulation": "paper",
        "strategy.params.search_executor": "ray_train",
        "strategy.params.num_workers": 1,
        "strategy.params.warmup_epochs": 1,
        "strategy.params.search_epochs": 1,
        "scoring.executor": "ray",
        "scoring.num_actors": 1,
    }
    spec = SweepSpec.from_dict(
        {
            "name": "shape",
            "fixed": fixed,
            "seeds": [0],
            "report": False,
            "storage_path": str(tmp_path / "ray_results"),
            "progress_interval_s": 1000,
        }
    )
    base = {
        "al": {"initial_size": 20, "query_size": 10, "rounds": 1, "mc_samples": 2},
        "train": {"epochs": 2},
        "strategy": {"name": "margin", "params": {}},
        "tracking": {"enabled": False},
        "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 1},
    }
    res = run_sweep(spec, base, out=lambda s: None)
    assert res.complete and len(res.trials) == 1, res.trials
    import json

    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("round_000.json")]
    assert record["search_executor"]["used"] == "local"  # the notice, not a wait
