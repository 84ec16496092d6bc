"""The AL loop end to end on digits: reproducibility, state, MLflow tracking, budget checks."""

import json

import numpy as np
import pytest

from autoal.config import RunConfig
from autoal.errors import ConfigError, TrackingError
from autoal.loop import initial_labeled_set, run_experiment
from autoal.metrics import aubc


def _cfg(d, **over):
    import copy

    d = copy.deepcopy(d)
    for k, v in over.items():
        d.setdefault(k, {}).update(v)
    return RunConfig.from_dict(d)


def test_same_seed_same_picks_and_state_written(digits_cfg, tmp_path):
    from mlflow.tracking import MlflowClient

    cfg = _cfg(digits_cfg, strategy={"name": "margin"})
    a = run_experiment(cfg)
    cfg_b = _cfg(digits_cfg, strategy={"name": "margin"}, runtime={"output_dir": str(tmp_path / "other")})
    b = run_experiment(cfg_b)
    assert [h["selected"] for h in a.history] == [h["selected"] for h in b.history]
    assert len(a.labeled) == 20 + 2 * 10 == len(set(a.labeled.tolist()))
    assert a.labeled_round.tolist() == [0] * 20 + [1] * 10 + [2] * 10
    # a different seed gives a different initial set
    c = run_experiment(_cfg(digits_cfg, strategy={"name": "margin"}, al={"seed": 1}))
    assert set(c.labeled[:20].tolist()) != set(a.labeled[:20].tolist())
    # state file
    state = json.loads((a.run_dir / "state.json").read_text())
    assert state["next_round"] == 3 and state["finished"] and state["labeled"] == a.labeled.tolist()
    assert state["rng_state"]["seed"] == 0
    assert (a.run_dir / "rounds" / "round_000.json").exists()
    assert (a.run_dir / "learning_curve.png").stat().st_size > 1000
    # MLflow: params, per-round metrics with step = round, artifacts
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    run = client.get_run(a.tracking_run_id)
    assert run.data.params["strategy.name"] == "margin" and run.data.params["al.rounds"] == "2"
    steps = [m.step for m in client.get_metric_history(a.tracking_run_id, "accuracy")]
    assert steps == [0, 1, 2]
    assert run.data.metrics["aubc"] == pytest.approx(a.aubc)
    arts = {f.path for f in client.list_artifacts(a.tracking_run_id)}
    assert {"learning_curve.png", "labeled.json", "rounds"} <= arts
    assert run.data.tags["dataset"] == "digits" and run.info.status == "FINISHED"
    for h in a.history:
        assert 0.0 <= h["accuracy"] <= 1.0 and h["seconds_train"] > 0


def test_rerunning_a_finished_run_resumes_instead_of_repeating(digits_cfg):
    cfg = _cfg(digits_cfg, strategy={"name": "entropy"})
    a = run_experiment(cfg)
    b = run_experiment(cfg)  # finds its finished state: no new round
    assert b.labeled.tolist() == a.labeled.tolist() and b.tracking_run_id == a.tracking_run_id
    from mlflow.tracking import MlflowClient

    steps = [m.step for m in MlflowClient(cfg.tracking.uri).get_metric_history(a.tracking_run_id, "accuracy")]
    assert steps == [0, 1, 2]


def test_balanced_initial_set():
    y = np.repeat(np.arange(5), 30)
    idx = initial_labeled_set(y, 10, True, np.random.default_rng(0))
    assert np.bincount(y[idx], minlength=5).tolist() == [2] * 5
    idx2 = initial_labeled_set(y, 12, True, np.random.default_rng(0))
    assert sorted(np.bincount(y[idx2], minlength=5).tolist()) == [2, 2, 2, 3, 3]


def test_aubc_trapezoid_normalized():
    assert aubc([10, 20, 30], [0.5, 0.7, 0.9]) == pytest.approx((0.6 * 10 + 0.8 * 10) / 20)
    assert aubc([10], [0.4]) == 0.4


@pytest.mark.parametrize(
    "over, field",
    [
        ({"al": {"query_size": 0}}, "al.query_size"),
        ({"al": {"query_size": 2000}}, "al.query_size"),
        ({"al": {"initial_size": 5000}}, "al.initial_size"),
        ({"al": {"rounds": 500}}, "al.rounds"),
        ({"train": {"optimizer": "rmsprop"}}, "train.optimizer"),
        ({"model": {"name": "vgg"}}, "model.name"),
        ({"strategy": {"name": "nope"}}, "strategy.name"),
    ],
)
def test_bad_config_fails_before_any_work(digits_cfg, tmp_path, over, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        run_experiment(_cfg(digits_cfg, **over))
    assert not (tmp_path / "runs").exists()


def test_misspelt_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="al.roudns.*valid keys under al: initial_size"):
        RunConfig.from_dict({"al": {"roudns": 3}})
    with pytest.raises(ConfigError, match="al.rounds: expected an integer"):
        RunConfig.from_dict({"al": {"rounds": 2.5}})


def test_unreachable_mlflow_server_fails_before_any_work(digits_cfg, tmp_path):
    with pytest.raises(TrackingError, match="does not answer"):
        run_experiment(_cfg(digits_cfg, tracking={"uri": "http://127.0.0.1:9"}))
    assert not (tmp_path / "runs").exists()


def test_warm_start_and_tracking_disabled(digits_cfg):
    r = run_experiment(_cfg(digits_cfg, al={"warm_start": True}, tracking={"enabled": False}))
    assert r.tracking_run_id is None and len(r.history) == 3


def test_dataset_source_tag_is_cut_to_mlflows_limit(digits_cfg):
    """MLflow refuses tag values over 5000 characters: a long source is truncated, not fatal."""
    import dataclasses

    from autoal.data import DataSpec, load_dataset
    from autoal.loop import ActiveLearningLoop
    from autoal.tracking import NullTracker

    class Recorder(NullTracker):
        def __init__(self):
            self.tags, self.params = {}, {}

        def set_tags(self, tags):
            self.tags.update(tags)

        def log_params(self, params):
            self.params.update(params)

    ds = load_dataset(DataSpec(name="digits"))
    ds = dataclasses.replace(ds, source="x" * 6000)
    rec = Recorder()
    ActiveLearningLoop(_cfg(digits_cfg, al={"rounds": 0}, train={"epochs": 1}), dataset=ds, tracker=rec).run()
    assert rec.tags["dataset_source"] == "x" * 5000
    assert rec.params["data.pool_size"] == len(ds.y_train) and rec.params["data.test_size"] == len(ds.y_test)


def test_run_on_a_long_tailed_pool(digits_cfg):
    """A long-tailed, subsampled pool runs like any other; the same pool for every AL seed."""
    from autoal.data.subset import class_order

    cfg = _cfg(
        digits_cfg, dataset={"imbalance_ratio": 10, "train_size": 300}, al={"rounds": 1}, tracking={"enabled": False}
    )
    r = run_experiment(cfg)
    assert len(r.history) == 2 and r.tracking_run_id is None
    from autoal.loop import ActiveLearningLoop

    loop = ActiveLearningLoop(cfg)
    counts = loop.dataset.info["pool_class_counts"]
    assert sum(counts) == 300 and counts[class_order(10, 0)[0]] == max(counts)
    other_seed = ActiveLearningLoop(
        _cfg(
            digits_cfg, dataset={"imbalance_ratio": 10, "train_size": 300}, al={"seed": 5}, tracking={"enabled": False}
        )
    )
    assert other_seed.dataset.y_train.tolist() == loop.dataset.y_train.tolist()
    assert r.labeled.max() < 300
