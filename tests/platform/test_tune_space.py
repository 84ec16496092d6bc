"""Tune sees the real search space (issue 15): every trial's config holds the swept keys' actual
values, so Tune's own analysis (ResultGrid, get_best_result) works; sweep.search_alg (random,
optuna) and sweep.scheduler (ASHA over AL rounds) as config; MLflow parent runs record the
sweep's space and arms, child runs log typed params, the data set as an input and the final model."""

from __future__ import annotations

import json

import pytest

from autoal.errors import ConfigError
from autoal.platform.sweep import SweepSpec, run_sweep
from autoal.tracking import mlflow_client


def _base(tmp_path, **over) -> dict:
    d = {
        "al": {"initial_size": 20, "query_size": 10, "rounds": 2, "mc_samples": 2},
        "train": {"epochs": 2, "batch_size": 32},
        "strategy": {"name": "margin", "params": {}},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "tune"},
        "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 1},
    }
    for k, v in over.items():
        d.setdefault(k, {}).update(v)
    return d


def _spec(tmp_path, **over) -> SweepSpec:
    d = {"name": "t", "storage_path": str(tmp_path / "ray_results"), "progress_interval_s": 1000, "report": False}
    d.update(over)
    return SweepSpec.from_dict(d)


def test_search_and_scheduler_keys_are_validated():
    with pytest.raises(ConfigError, match="sweep.search_alg: expected one of grid, random, optuna"):
        SweepSpec.from_dict({"search_alg": "hyperopt", "space": {"train.lr": [0.1]}})
    with pytest.raises(ConfigError, match="sweep.scheduler: expected one of none, asha"):
        SweepSpec.from_dict({"scheduler": "pbt"})
    with pytest.raises(ConfigError, match=r"sweep.asha.grace_rounds: expected an integer >= 1"):
        SweepSpec.from_dict({"scheduler": "asha", "asha": {"grace_rounds": 0}})
    with pytest.raises(ConfigError, match="needs a sweep.space"):
        SweepSpec.from_dict({"search_alg": "random"})
    with pytest.raises(ConfigError, match="optuna optimizes over one seed"):
        SweepSpec.from_dict(
            {"search_alg": "optuna", "space": {"train.lr": {"uniform": [0.001, 0.01]}}, "seeds": [0, 1]}
        )
    with pytest.raises(ConfigError, match="named arms"):
        SweepSpec.from_dict({"search_alg": "random", "space": {"train.lr": [0.1]}, "arms": {"a": {"al.rounds": 1}}})


@pytest.mark.slow
def test_grid_trials_carry_their_values_and_mlflow_records_the_sweep(ray_local, tmp_path):
    from ray.tune import ExperimentAnalysis

    spec = _spec(tmp_path, name="g", space={"strategy": {"grid": ["random", "margin"]}}, seeds=[0, 1])
    res = run_sweep(spec, _base(tmp_path), out=lambda s: None)
    assert res.complete, res.trials

    analysis = ExperimentAnalysis(res.experiment_path, default_metric="aubc", default_mode="max")
    configs = [t.config for t in analysis.trials]
    assert {(c["arm"], c["strategy.name"], c["seed"]) for c in configs} == {
        ("random", "random", 0),
        ("random", "random", 1),
        ("margin", "margin", 0),
        ("margin", "margin", 1),
    }
    best = analysis.get_best_config()
    assert best["strategy.name"] == best["arm"] and best["strategy.name"] in ("random", "margin")

    client = mlflow_client(_base(tmp_path)["tracking"]["uri"])
    parent = client.get_run(res.parent_run_id)
    assert "strategy.name" not in parent.data.params  # the sweep compares strategies: no base value
    assert json.loads(parent.data.params["sweep.varied_keys"]) == ["strategy.name"]
    space = client.download_artifacts(res.parent_run_id, "sweep_space.json", str(tmp_path))
    recorded = json.loads(open(space).read())
    assert [a["label"] for a in recorded["arms"]] == ["random", "margin"] and recorded["seeds"] == [0, 1]
    child = client.search_runs(
        [parent.info.experiment_id], f"tags.sweep_id = '{res.sweep_id}' and tags.autoal_role = 'trial'"
    )[0]
    params = child.data.params
    assert "None" not in params.values() and "{}" not in params.values()
    assert params["al.rounds"] == "2" and params["runtime.quiet"] == "true"
    contexts = {t.value for d in child.inputs.dataset_inputs for t in d.tags if t.key == "mlflow.data.context"}
    assert contexts == {"training", "evaluation"}
    assert child.data.tags["autoal.model_uri"].startswith("models:/")
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(_base(tmp_path)["tracking"]["uri"])
    try:
        model = mlflow.pytorch.load_model(f"runs:/{child.info.run_id}/model", dst_path=str(tmp_path / "model"))
    finally:
        mlflow.set_tracking_uri(previous)
    import torch

    with torch.no_grad():  # the final digits task model, loadable from the run
        assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.slow
def test_random_search_with_asha_stops_trials_and_ends_their_runs(ray_local, tmp_path):
    spec = _spec(
        tmp_path,
        name="r",
        space={"train.lr": {"loguniform": [1e-4, 1e-2]}},
        search_alg="random",
        num_samples=4,
        seeds=[0],
        scheduler="asha",
        asha={"grace_rounds": 1, "reduction_factor": 2},
        max_concurrent=1,
    )
    base = _base(tmp_path, al={"rounds": 3}, tracking={"log_model": False})
    res = run_sweep(spec, base, out=lambda s: None)
    assert not res.interrupted and len(res.trials) == 4, res.trials
    statuses = [t["status"] for t in res.trials]
    assert set(statuses) <= {"TERMINATED", "STOPPED"} and "STOPPED" in statuses, res.trials
    from ray.tune import ExperimentAnalysis

    lrs = [t.config["train.lr"] for t in ExperimentAnalysis(res.experiment_path).trials]
    assert len(set(lrs)) == 4 and all(1e-4 <= lr <= 1e-2 for lr in lrs)  # the drawn values, in the config
    assert all(t["arm"].startswith("lr=") for t in res.trials)
    client = mlflow_client(base["tracking"]["uri"])
    runs = client.search_runs(
        [client.get_experiment_by_name("tune").experiment_id],
        f"tags.sweep_id = '{res.sweep_id}' and tags.autoal_role = 'trial'",
    )
    stopped = [r for r in runs if "autoal.stopped" in r.data.tags]
    assert len(stopped) == statuses.count("STOPPED") and all(r.info.status == "KILLED" for r in stopped)
    assert {r.data.params["train.lr"] for r in runs} == {json.dumps(lr) for lr in lrs}


@pytest.mark.slow
def test_optuna_proposes_the_points(ray_local, tmp_path):
    pytest.importorskip("optuna")
    spec = _spec(
        tmp_path,
        name="o",
        space={"train.lr": {"loguniform": [1e-4, 1e-2]}, "strategy": {"choice": ["margin", "entropy"]}},
        search_alg="optuna",
        num_samples=3,
        seeds=[0],
        max_concurrent=2,
    )
    res = run_sweep(spec, _base(tmp_path, al={"rounds": 1}, tracking={"log_model": False}), out=lambda s: None)
    assert res.complete and len(res.trials) == 3, res.trials
    from ray.tune import ExperimentAnalysis

    configs = [t.config for t in ExperimentAnalysis(res.experiment_path).trials]
    assert all(
        1e-4 <= c["train.lr"] <= 1e-2 and c["strategy"] in ("margin", "entropy") and c["seed"] == 0 for c in configs
    )
    client = mlflow_client(_base(tmp_path)["tracking"]["uri"])
    runs = client.search_runs(
        [client.get_experiment_by_name("tune").experiment_id],
        f"tags.sweep_id = '{res.sweep_id}' and tags.autoal_role = 'trial'",
    )
    # each trial ran the strategy and learning rate that Optuna proposed for it
    assert sorted((r.data.params["strategy.name"], float(r.data.params["train.lr"])) for r in runs) == sorted(
        (c["strategy"], c["train.lr"]) for c in configs
    )
