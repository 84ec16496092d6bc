"""Sweeps on Ray Tune (issue 4 item 3, 4, 8; issue 6 item 2): search-space parsing, paired
seeds, resource planning, a real 2x2 sweep with a trial that crashes once and is retried, restore
without rerunning finished trials, nested resources that must not deadlock on 2 CPUs, and the
pipeline under Ctrl-C (no Ray process left, then resumed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autoal.config import RunConfig
from autoal.errors import ConfigError
from autoal.platform.sweep import (
    SweepSpec,
    build_arms,
    expand_points,
    parse_space,
    plan_resources,
    point_label,
    run_sweep,
)
from autoal.tracking import sqlite_lock_path

REPO = Path(__file__).resolve().parents[2]


def _base(tmp_path: Path, **over) -> dict:
    """A tiny digits run config (what Hydra composes, as a dict)."""
    d = {
        "al": {"initial_size": 20, "query_size": 10, "rounds": 2, "mc_samples": 2},
        "train": {"epochs": 3, "batch_size": 32},
        "strategy": {"name": "margin", "params": {}},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "sweeps"},
        "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 1},
    }
    for k, v in over.items():
        d.setdefault(k, {}).update(v)
    return d


def _spec(tmp_path: Path, **over) -> SweepSpec:
    d = {
        "name": "t",
        "space": {"strategy": {"grid": ["random", "margin"]}},
        "seeds": [0, 1],
        "storage_path": str(tmp_path / "ray_results"),
        "progress_interval_s": 1000,
        "report": False,
    }
    d.update(over)
    return SweepSpec.from_dict(d)


# ------------------------------------------------------------------------------ no Ray needed


def test_parse_space_maps_every_kind_to_tune():
    from ray.tune.search.sample import Categorical, Float

    d = parse_space(
        {
            "strategy.params.lam": {"grid": [0.5, 1.0]},
            "strategy": {"params": {"tau": {"loguniform": [0.01, 1]}}},
            "a.b": {"uniform": [0, 2]},
            "a.c": {"choice": ["x", "y"]},
            "a.d": [1, 2, 3],
            "a.e": 7,
        }
    )
    assert d["strategy.params.lam"] == {"grid_search": [0.5, 1.0]}
    assert isinstance(d["strategy.params.tau"], Float) and d["strategy.params.tau"].lower == 0.01
    assert isinstance(d["a.b"], Float) and isinstance(d["a.c"], Categorical)
    assert d["a.d"] == {"grid_search": [1, 2, 3]} and d["a.e"] == 7


@pytest.mark.parametrize(
    "space, where",
    [
        ({"strategy.params.lam": {"grid": []}}, "sweep.space.strategy.params.lam.grid"),
        ({"x.y": {"uniform": [1]}}, "sweep.space.x.y.uniform"),
        ({"x.y": {"uniform": [2, 1]}}, "sweep.space.x.y.uniform"),
        ({"x.y": {"loguniform": [0, 1]}}, "sweep.space.x.y.loguniform"),
        ({"x.y": {"grid": [1], "choice": [2]}}, "sweep.space.x.y"),
    ],
)
def test_bad_space_names_the_key(space, where):
    with pytest.raises(ConfigError, match=f"^{where.replace('.', '[.]')}"):
        parse_space(space)


def test_random_draws_are_shared_by_every_grid_value_and_seeded():
    space = parse_space({"p.lam": {"loguniform": [0.1, 10]}, "p.k": {"grid": [1, 3]}})
    pts = expand_points(space, num_samples=3, sample_seed=5)
    assert len(pts) == 6 and [p["p.k"] for p in pts] == [1, 3] * 3
    lams = [p["p.lam"] for p in pts]
    assert lams[0] == lams[1] != lams[2] == lams[3] and all(0.1 <= v <= 10 for v in lams)
    assert isinstance(lams[0], float)
    assert expand_points(space, 3, 5) == pts and expand_points(space, 3, 6) != pts
    # grids only: num_samples does not repeat points
    assert len(expand_points(parse_space({"a.b": [1, 2]}), num_samples=4)) == 2
    assert point_label({"strategy": "margin"}, ["strategy"]) == "margin"
    assert (
        point_label({"strategy.params.lam": 0.5, "al.rounds": 3}, ["strategy.params.lam", "al.rounds"])
        == "lam=0.5,rounds=3"
    )


def test_spec_validation_names_the_field():
    for bad, field in [
        ({"seeds": []}, "sweep.seeds"),
        ({"seeds": [0, 0]}, "sweep.seeds"),
        ({"max_failures": "x"}, "sweep.max_failures"),
        ({"nmae": "x"}, "sweep.nmae"),
        ({"resources_per_trial": {"CPU": -1}}, "sweep.resources_per_trial.CPU"),
        ({"arms": {"a": 3}}, "sweep.arms.a"),
        ({"resume": 3}, "sweep.resume"),
        ({"name": "a/b"}, "sweep.name"),
    ]:
        with pytest.raises(ConfigError, match=f"^{field}"):
            SweepSpec.from_dict(bad)
    assert SweepSpec.from_dict({"seeds": 3}).seeds == [0, 1, 2]


def test_arms_are_resolved_and_validated_before_ray_starts(tmp_path):
    from autoal.cli.common import compose

    spec = SweepSpec.from_dict(
        {
            "name": "x",
            "fixed": {"strategy": "autoal"},
            "space": {"strategy.params.lam": [0.5, 1.0]},
            "reference": "lam=1",
        }
    )
    arms = build_arms(spec, _base(tmp_path), compose_fn=None)
    assert [a.label for a in arms] == ["lam=0.5", "lam=1"]
    assert arms[0].config["strategy"] == {"name": "autoal", "params": {"lam": 0.5}}
    assert arms[0].config["al"]["rounds"] == 2  # the base is kept
    # with the pipelines' Hydra composer, a group option composes conf/strategy/<name>.yaml
    base = compose(["sweep=smoke"], "sweep")
    base.pop("sweep")
    arms = build_arms(
        SweepSpec.from_dict({"space": {"strategy": {"grid": ["kmeans", "margin"]}}}),
        base,
        lambda extra: compose(["sweep=smoke", *extra], "sweep"),
    )
    assert arms[0].config["strategy"]["params"] == {"iters": 20}  # from conf/strategy/kmeans.yaml
    # a misspelt key or parameter fails here, naming the arm and the key
    with pytest.raises(ConfigError, match=r"sweep arm 'rouns=3': al.rouns: unknown config key"):
        build_arms(SweepSpec.from_dict({"space": {"al.rouns": [3, 4]}}), _base(tmp_path))
    with pytest.raises(ConfigError, match=r"lamm"):
        build_arms(
            SweepSpec.from_dict({"fixed": {"strategy": "autoal"}, "space": {"strategy.params.lamm": [1]}}),
            _base(tmp_path),
        )
    with pytest.raises(ConfigError, match=r"al.rounds: expected an integer"):  # a misspelt kind reads as a nested key
        build_arms(SweepSpec.from_dict({"space": {"al.rounds": {"normal": [1, 2]}}}), _base(tmp_path))
    with pytest.raises(ConfigError, match=r"sweep.reference"):
        build_arms(SweepSpec.from_dict({"space": {"strategy": ["margin"]}, "reference": "nope"}), _base(tmp_path))
    with pytest.raises(ConfigError, match=r"strategy 'nope' is unknown; valid choices: .*margin"):
        build_arms(SweepSpec.from_dict({"space": {"strategy": ["nope"]}}), _base(tmp_path))


#: optimizer steps a shipped sweep's first round takes at least: with 3 (sweep=smoke before
#: train.min_steps) accuracy fell as labels grew (issue 24)
MIN_FIRST_ROUND_STEPS = 30


def test_every_ready_sweep_composes_into_valid_arms():
    from autoal.cli.common import compose

    sizes = {}
    for path in sorted((REPO / "autoal" / "conf" / "sweep").glob("*.yaml")):
        if path.stem == "base":
            continue
        ov = [f"sweep={path.stem}"]
        d = compose(ov, "sweep")
        spec = SweepSpec.from_dict(d.pop("sweep"))
        arms = build_arms(spec, d, lambda extra, ov=ov: compose(ov + extra, "sweep"))
        sizes[path.stem] = (len(arms), len(spec.seeds))
        for arm in arms:  # enough optimizer steps in the first round for accuracy to rise with the labels
            cfg = RunConfig.from_dict(arm.config)
            n = cfg.al.initial_size
            steps = cfg.train.epochs_for(n) * -(-n // min(cfg.train.batch_size, n))
            assert steps >= MIN_FIRST_ROUND_STEPS, (path.stem, arm.label, steps)
    assert {"default", "smoke", "lam", "tau", "pool_size", "seeds", "fig2"} <= set(sizes)
    assert sizes["smoke"] == (2, 2) and sizes["default"][0] >= 3
    assert sizes["pool_size"][0] == 4
    from autoal.platform.report import MIN_PAIRS

    assert sizes["default"][1] >= MIN_PAIRS  # the main job's report can test its pairs
    from autoal.strategies import strategy_names

    assert sizes["fig2"][0] == len(strategy_names())


def test_resource_plan_declares_nested_resources():
    base = {"scoring": {"executor": "local"}, "strategy": {"name": "margin", "params": {}}}
    p = plan_resources(base, None, {"CPU": 2})
    assert p.bundles == [{"CPU": 1.0}] and p.outside == {} and p.max_concurrent == 0
    # Ray scorer actors are the trial's children: bundles of its placement group
    scored = {**base, "scoring": {"executor": "ray", "num_actors": 2, "gpus_per_actor": 0.5}}
    assert plan_resources(scored, None, {"CPU": 8}).bundles == [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}]
    assert plan_resources(scored, None, {"CPU": 8, "GPU": 1}).bundles == [
        {"CPU": 1.0, "GPU": 1.0},
        {"GPU": 0.5},
        {"GPU": 0.5},
    ]
    # Ray Train workers reserve a placement group of their own: the concurrency is capped instead
    trained = {**base, "strategy": {"name": "autoal", "params": {"search_executor": "ray_train", "num_workers": 1}}}
    p = plan_resources(trained, None, {"CPU": 2})
    assert p.bundles == [{"CPU": 1.0}] and p.outside == {"CPU": 1.0} and p.max_concurrent == 1
    assert plan_resources(trained, None, {"CPU": 8}).max_concurrent == 4
    assert plan_resources(trained, None, {"CPU": 8}, max_concurrent=2).max_concurrent == 2
    assert plan_resources(base, {"CPU": 2, "GPU": 0.5}, {"CPU": 8, "GPU": 1}).bundles == [{"CPU": 2.0, "GPU": 0.5}]
    # ENSvarR's members are Ray tasks of the trial: one more bundle (half the trial's GPU)
    ens = {**base, "strategy": {"name": "ens_var_r", "params": {"ray_num_cpus": 1.0}}}
    assert plan_resources(ens, None, {"CPU": 2}).bundles == [{"CPU": 1.0}, {"CPU": 1.0}]
    assert plan_resources(ens, None, {"CPU": 8, "GPU": 1}).bundles == [
        {"CPU": 1.0, "GPU": 0.5},
        {"CPU": 1.0, "GPU": 0.5},
    ]


def test_resource_plan_follows_the_strategys_declaration(monkeypatch):
    """plan_resources reserves what a strategy declares (Strategy.ray_resources), matching no
    names: ENSvarR's members, AutoAL's Ray Train search, and a user's strategy."""
    from autoal.platform.sweep.resources import strategy_resources
    from autoal.strategies.base import RayResources, Strategy
    from autoal.strategies.registry import STRATEGIES

    base = {"scoring": {"executor": "local"}}
    ens = strategy_resources({**base, "strategy": {"name": "ens_var_r", "params": {"ray_num_cpus": 2.0}}})
    assert ens == RayResources(task_bundles=({"CPU": 2.0, "GPU": None},))
    one = {"name": "ens_var_r", "params": {"ensemble_size": 1}}  # the task model alone: no Ray task
    assert plan_resources({**base, "strategy": one}, None, {"CPU": 2}).bundles == [{"CPU": 1.0}]
    declared = strategy_resources({"strategy": {"name": "autoal", "params": {"search_executor": "ray_train"}}})
    assert declared == RayResources(train_workers=2)
    assert strategy_resources({"strategy": {"name": "autoal", "params": {}}}) == RayResources()
    assert (
        plan_resources({"strategy": {"name": "autoal"}, "search": {"executor": "ray_train"}}, None, {"CPU": 2}).outside
        == {}
    )  # no top-level search section is read

    class TwoActors(Strategy):
        def query(self, ctx):
            return ctx.unlabeled[: ctx.n]

        @classmethod
        def ray_resources(cls, params):
            bundle = {"CPU": float(params["actor_cpus"]), "GPU": 0.25}
            return RayResources(task_bundles=(bundle, bundle), train_workers=int(params["workers"]))

        def __init__(self, actor_cpus: float = 2.0, workers: int = 0) -> None:
            self.actor_cpus, self.workers = actor_cpus, workers

    monkeypatch.setitem(STRATEGIES._items, "two_actors", TwoActors)
    mine = {**base, "strategy": {"name": "two_actors", "params": {"workers": 1}}}
    p = plan_resources(mine, None, {"CPU": 8})
    assert p.bundles == [{"CPU": 1.0}, {"CPU": 2.0}, {"CPU": 2.0}] and p.outside == {"CPU": 1.0}
    assert p.max_concurrent == 1  # 8 CPUs // (1 + 2 + 2 + 1)
    p = plan_resources(mine, None, {"CPU": 8, "GPU": 1})
    assert p.bundles == [{"CPU": 1.0, "GPU": 0.5}, {"CPU": 2.0, "GPU": 0.25}, {"CPU": 2.0, "GPU": 0.25}]
    assert p.outside == {"CPU": 1.0, "GPU": 1.0}


def test_sqlite_lock_is_per_database_and_outside_the_repo(tmp_path):
    a = sqlite_lock_path(f"sqlite:///{tmp_path / 'a.db'}")
    assert a is not None and a != sqlite_lock_path(f"sqlite:///{tmp_path / 'b.db'}")
    assert not str(a).startswith(str(tmp_path)) and sqlite_lock_path("http://127.0.0.1:5000") is None


def _open_store(args):
    """In a fresh process: open a tracker on the store through the sweep's lock, log, end."""
    uri, i = args
    from autoal.tracking import SerializedTracker, call_serialized, sqlite_lock_path
    from autoal.tracking import MLflowTracker

    try:
        lock = sqlite_lock_path(uri)
        t = SerializedTracker(call_serialized(lock, lambda: MLflowTracker(uri, "race", run_name=f"w{i}")), lock)
        t.start()
        for step in range(5):
            t.log_metrics({"accuracy": step / 10, "labels": 10 * step}, step=step)
        t.end()
        return "ok"
    except Exception as e:  # noqa: BLE001 - reported to the test
        return f"{type(e).__name__}: {e}"


def test_concurrent_writers_on_a_fresh_sqlite_store_are_serialized(tmp_path):
    """Without the lock, processes that open a fresh SQLite store at once race to create its
    tables ("table experiments already exists", "duplicate column name"); with it every writer
    succeeds and every step lands."""
    import multiprocessing as mp

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    with mp.get_context("spawn").Pool(4) as pool:
        assert pool.map(_open_store, [(uri, i) for i in range(4)]) == ["ok"] * 4
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("race").experiment_id])
    assert len(runs) == 4
    assert all([m.step for m in c.get_metric_history(r.info.run_id, "accuracy")] == list(range(5)) for r in runs)


def test_cluster_address_resolution(monkeypatch):
    from autoal.platform.sweep import cluster_address

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert cluster_address("auto") == "10.0.0.1:6379"
    assert cluster_address("local") is None
    assert cluster_address("10.0.0.2:6379") == "10.0.0.2:6379"


# ------------------------------------------------------------------------------ with Ray


def _children(uri: str, experiment: str, sweep_id: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], f"tags.sweep_id = '{sweep_id}'")
    return (
        c,
        [r for r in runs if r.data.tags.get("autoal_role") == "trial"],
        [r for r in runs if r.data.tags.get("autoal_role") == "sweep"],
    )


@pytest.mark.timeout(300)
def test_smoke_sweep_tracks_every_round_and_retries_a_crashed_trial(ray_local, tmp_path, monkeypatch):
    """2 strategies x 2 seeds; the first trial to finish round 1 crashes once and is retried
    from its saved state: every trial completes, every MLflow step 0..2 exists exactly once."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "fault.marker"
    lines: list[str] = []
    monkeypatch.setenv("AUTOAL_FAULT_ONCE", f"1:{marker}")
    spec = _spec(tmp_path, max_failures=2, report=True, reference="margin")
    res = run_sweep(spec, _base(tmp_path), out=lines.append)
    assert marker.exists(), "the injected fault never fired"
    assert res.complete and not res.failed and len(res.trials) == 4
    assert all(t["status"] == "TERMINATED" and t["rounds"] == 3 and 0 < t["aubc"] <= 1 for t in res.trials)
    assert sum(t["failures"] for t in res.trials) == 1
    assert any("retrying from its last round" in ln for ln in lines), "\n".join(lines)
    assert any("4/4 done" in ln and "best AUBC 0." in ln for ln in lines), "\n".join(lines)
    assert {(a["arm"], a["seeds"]) for a in res.arms} == {("random", 2), ("margin", 2)}
    # MLflow: one parent, one child per trial, tags, step = round, no duplicated steps after the retry
    uri = _base(tmp_path)["tracking"]["uri"]
    c, kids, parents = _children(uri, "sweeps", res.sweep_id)
    assert len(parents) == 1 and parents[0].info.run_id == res.parent_run_id and parents[0].info.status == "FINISHED"
    assert len(kids) == 4
    for r in kids:
        t = r.data.tags
        assert t["mlflow.parentRunId"] == res.parent_run_id and t["sweep_id"] == res.sweep_id
        assert t["arm"] in ("random", "margin") and t["seed"] in ("0", "1") and t["dataset"] == "digits"
        assert t["git_sha"] and t["autoal_version"] and t["ablation"] == "none" and t["device"] == "cpu"
        assert r.info.status == "FINISHED"
        assert [m.step for m in c.get_metric_history(r.info.run_id, "accuracy")] == [0, 1, 2]
        assert [m.step for m in c.get_metric_history(r.info.run_id, "labels")] == [0, 1, 2]
    assert {(r.data.tags["arm"], r.data.tags["seed"]) for r in kids} == {
        (a, s) for a in ("random", "margin") for s in "01"
    }
    # the parent run compares the arms on the runs page: mean and std of AUBC and final accuracy per arm
    pm = c.get_run(res.parent_run_id).data.metrics
    for a in res.arms:
        kid_aubc = [r.data.metrics["aubc"] for r in kids if r.data.tags["arm"] == a["arm"]]
        assert pm[f"aubc/{a['arm']}"] == pytest.approx(np.mean(kid_aubc))
        assert pm[f"aubc_std/{a['arm']}"] == pytest.approx(np.std(kid_aubc, ddof=1))
        assert pm[f"final_accuracy/{a['arm']}"] == pytest.approx(a["final_acc_mean"]) and pm[f"seeds/{a['arm']}"] == 2
    # Tune saw every round of every trial (the retried one too), AUBC as the objective
    from ray.tune import ExperimentAnalysis

    ea = ExperimentAnalysis(res.experiment_path)
    for trial in ea.trials:
        df = ea.trial_dataframes[trial.trial_id]
        assert sorted(set(df["round"].astype(int))) == [0, 1, 2]
    # the report was written and logged on the parent run
    assert res.report_dir and (Path(res.report_dir) / "summary.md").exists()
    assert "report" in {a.path for a in c.list_artifacts(res.parent_run_id)}


@pytest.mark.timeout(300)
def test_restore_continues_failed_trials_without_rerunning_finished_ones(ray_local, tmp_path, monkeypatch):
    """A sweep ends with one trial failed (no retries left); Tuner.restore (sweep.resume) runs
    that trial to the end and leaves the finished one alone."""
    monkeypatch.chdir(tmp_path)
    base = _base(tmp_path, al={"rounds": 1})
    spec = _spec(tmp_path, name="rs", seeds=[0], max_failures=0)
    monkeypatch.setenv("AUTOAL_FAULT_ONCE", f"0:{tmp_path / 'm'}")
    first = run_sweep(spec, base, out=lambda s: None)
    assert [t["status"] for t in first.trials].count("ERROR") == 1 and len(first.failed) == 1
    done = [t for t in first.trials if t["status"] == "TERMINATED"]
    assert len(done) == 1
    state_files = {
        p: p.stat().st_mtime_ns
        for p in (Path(base["runtime"]["output_dir"]) / "sweeps" / first.sweep_id).glob("*/state.json")
    }
    finished_dir = [p for p in state_files if p.parent.name.startswith(f"{done[0]['arm']}-seed0")]
    assert len(finished_dir) == 1

    second = run_sweep(spec, base, out=lambda s: None, resume=True)  # the latest run of sweep "rs"
    assert second.sweep_id == first.sweep_id and second.parent_run_id == first.parent_run_id
    assert second.complete and all(t["status"] == "TERMINATED" for t in second.trials)
    # the finished trial was not rerun: its state file is untouched, its Tune result unchanged
    assert finished_dir[0].stat().st_mtime_ns == state_files[finished_dir[0]]
    again = {t["arm"]: t for t in second.trials}
    assert again[done[0]["arm"]]["aubc"] == done[0]["aubc"]
    c, kids, _ = _children(base["tracking"]["uri"], "sweeps", first.sweep_id)
    assert len(kids) == 2 and all(r.info.status == "FINISHED" for r in kids)
    for r in kids:
        assert [m.step for m in c.get_metric_history(r.info.run_id, "accuracy")] == [0, 1]
    with pytest.raises(ConfigError, match="sweep.resume"):
        run_sweep(_spec(tmp_path, name="never-ran"), base, out=lambda s: None, resume=True)


@pytest.mark.timeout(400)
def test_nested_ray_work_in_concurrent_trials_does_not_deadlock(ray_local, tmp_path, monkeypatch):
    """Two trials at once on 2 CPUs, each starting Ray work of its own: Ray scorer actors
    (scoring.executor=ray) and ENSvarR's ensemble tasks. With Tune's default resources each
    trial would hold a CPU while its children wait for another, forever; with the default plan
    the children are bundles of the trial's placement group, so the trials take turns."""
    pytest.importorskip("autoal.executors.ray_scoring")
    monkeypatch.chdir(tmp_path)
    spec = _spec(
        tmp_path,
        name="nested",
        space={},
        seeds=[0],
        arms={
            "scorer_actors": {"scoring.executor": "ray", "scoring.num_actors": 1},
            "ensemble_tasks": {"strategy": "ens_var_r", "strategy.params.ensemble_size": 2},
        },
    )
    res = run_sweep(spec, _base(tmp_path, al={"rounds": 1}), out=lambda s: None)
    assert res.complete and sorted(t["arm"] for t in res.trials) == ["ensemble_tasks", "scorer_actors"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_train_search_in_concurrent_trials_does_not_deadlock(ray_local, tmp_path, monkeypatch):
    """AutoAL's search on Ray Train (Train V2 workers reserve a placement group of their own,
    outside the trial's). Two trials that each start a TorchTrainer deadlock on 2 CPUs with
    Tune's default resources (each trial holds a CPU, each trainer waits for one); the plan
    caps the concurrency so that both finish."""
    pytest.importorskip("autoal.executors.ray_train_search")
    monkeypatch.chdir(tmp_path)
    fixed = {
        "strategy": "autoal",
        "strategy.params.formulation": "paper",
        "strategy.params.search_executor": "ray_train",
        "strategy.params.num_workers": 1,
        "strategy.params.warmup_epochs": 1,
        "strategy.params.search_epochs": 1,
    }
    spec = _spec(tmp_path, name="train", space={}, seeds=[0, 1], fixed=fixed)
    plan = plan_resources(build_arms(spec, _base(tmp_path))[0].config, None, ray_local.cluster_resources())
    assert plan.outside == {"CPU": 1.0} and plan.max_concurrent == 1
    res = run_sweep(spec, _base(tmp_path, al={"rounds": 1}), out=lambda s: None)
    assert res.complete and len(res.trials) == 2


# ------------------------------------------------------------------------ pipeline, Ctrl-C


def _ray_processes(tag: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in cmd:
            pids.append(int(p.name))
    return pids


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_pipeline_ctrl_c_leaves_no_ray_processes_and_resumes(tmp_path):
    """pipelines/sweep.py from another folder (conf/ found without the script's location);
    Ctrl-C once a trial has finished: exit 130, no Ray process of that run left; then
    sweep.resume=true finishes the rest without rerunning the finished trials."""
    import tempfile

    raytmp = Path(tempfile.mkdtemp(prefix="swc", dir="/tmp"))
    env = {
        **os.environ,
        "RAY_TMPDIR": str(raytmp),
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAY_ADDRESS", None)
    args = [
        sys.executable,
        str(REPO / "pipelines" / "sweep.py"),
        "sweep=smoke",
        "sweep.address=local",
        "sweep.num_cpus=2",
        "al.rounds=3",
        "train.epochs=20",
        "sweep.max_concurrent=1",
        "sweep.progress_interval_s=1",
        "sweep.report=false",
        "runtime.num_threads=1",
    ]
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        args, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    out: list[str] = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if " 1/4 done" in line:
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
        out.append(rest)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "".join(out)
    assert proc.returncode == 130, text[-3000:]
    assert "sweep.resume=" in text, text[-3000:]
    time.sleep(2)
    left = _ray_processes(str(raytmp))
    assert not left, f"Ray processes left after Ctrl-C: {left}"
    meta = next((work / "ray_results").glob("smoke-*/sweep_meta.json"))
    runs_dir = Path(json.loads(meta.read_text())["runs_dir"])
    finished = {
        p: p.stat().st_mtime_ns for p in runs_dir.glob("*/state.json") if json.loads(p.read_text()).get("finished")
    }
    assert len(finished) >= 1

    try:
        done = subprocess.run(
            args + ["sweep.resume=true"], cwd=work, env=env, capture_output=True, text=True, timeout=400
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert "resuming from" in done.stdout and "4/4 trials finished" in done.stdout
        for p, mtime in finished.items():
            assert p.stat().st_mtime_ns == mtime, f"{p.parent.name} was rerun"
        assert not _ray_processes(str(raytmp))
    finally:
        shutil.rmtree(raytmp, ignore_errors=True)


def test_arm_labels_become_valid_metric_keys():
    from mlflow.utils.validation import _validate_metric_name

    from autoal.platform.sweep.driver import arm_metrics, metric_key

    assert metric_key("setting=digits,strategy=margin") == "setting_digits_strategy_margin"
    assert metric_key("margin") == "margin"
    arms = [
        {
            "arm": "lr=0.001,margin",
            "seeds": 3,
            "aubc_mean": 0.8,
            "aubc_std": 0.01,
            "final_acc_mean": 0.9,
            "final_acc_std": 0.02,
        },
        {"arm": "failed", "seeds": 0, "aubc_mean": None},
    ]
    m = arm_metrics(arms)
    assert m == {
        "aubc/lr_0.001_margin": 0.8,
        "aubc_std/lr_0.001_margin": 0.01,
        "final_accuracy/lr_0.001_margin": 0.9,
        "final_accuracy_std/lr_0.001_margin": 0.02,
        "seeds/lr_0.001_margin": 3.0,
    }
    for key in m:
        _validate_metric_name(key)  # MLflow accepts it
