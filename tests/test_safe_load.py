"""Untrusted files never run code (issue 23, "Loading never executes"): every checkpoint kind
autoal reads — a run folder's strategy_NNN.pt and task_model_NNN.pt (warm start) on resume, the
pre-keyed strategy_state.pt and task_model.pt, final_model.pt before it is logged as the MLflow
model, a labeling project's strategy checkpoint on export, the Ray Train search state — holds
tensors and plain values and is read with ``torch.load(weights_only=True)``. A planted pickle
whose ``__reduce__`` would create a marker file is refused with a one-line StateError naming the
file and the global, and the marker never appears. Checkpoints autoal writes itself load
back weights-only (numpy values made plain on save), so resume stays exact."""

from __future__ import annotations

import dataclasses
import pathlib
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autoal.checkpoint_io import plain_checkpoint, safe_torch_load
from autoal.config import RunConfig
from autoal.errors import StateError
from autoal.loop import FINAL_MODEL_FILE, run_dir_for, run_experiment
from autoal.state import STRATEGY_FILE, atomic_torch_save, checkpoint_path, load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labeling_images import make_images, settings  # noqa: E402


class Touch:
    """Unpickling this runs ``marker.touch()`` (a harmless stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def plant(path: Path, marker: Path, fmt: str = "torch") -> None:
    """A malicious checkpoint at ``path``: a state-dict-looking mapping holding :class:`Touch`,
    as ``torch.save`` writes it (``torch``) or as a bare pickle (``pickle``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"calls": 1, "weight": torch.zeros(2), "payload": Touch(marker)}
    if fmt == "torch":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))


def assert_refused(e: pytest.ExceptionInfo, path: Path, marker: Path) -> None:
    msg = str(e.value)
    assert msg.startswith(f"refusing to load {path}: it holds ") and "which could run code" in msg, msg
    assert "\n" not in msg, msg
    assert not marker.exists()


# -- the loader itself -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_a_malicious_checkpoint_is_refused_and_never_runs(tmp_path, fmt):
    path, marker = tmp_path / "strategy_001.pt", tmp_path / "pwned"
    plant(path, marker, fmt)
    # the payload is real: the old loader (weights_only=False) runs it
    probe = tmp_path / "probe"
    plant(tmp_path / "probe.pt", probe, fmt)
    try:
        torch.load(tmp_path / "probe.pt", weights_only=False)
    except RuntimeError:  # a bare pickle: unpickled (and run) as the legacy header, then "Invalid magic number"
        assert fmt == "pickle"
    assert probe.exists()

    with pytest.raises(StateError) as e:
        load_checkpoint(path, "cpu")
    if fmt == "torch":  # the zip names every global (read statically)
        assert_refused(e, path, marker)
        assert "builtins.getattr" in str(e.value) and "move the run folder away" in str(e.value)
    else:  # a bare pickle: refused by torch's weights-only reader before any global is built
        assert str(path) in str(e.value) and "\n" not in str(e.value) and not marker.exists()


def test_an_old_checkpoint_with_numpy_objects_is_one_clear_line(tmp_path):
    """A checkpoint written with NumPy objects in it (as a strategy of an older autoal could)
    is refused weights-only: one line naming the file and telling to move the run folder away."""
    path = tmp_path / "strategy_002.pt"
    torch.save({"log_w": np.zeros(3), "T": np.int64(5)}, path)
    with pytest.raises(StateError) as e:
        load_checkpoint(path, "cpu")
    msg = str(e.value)
    assert msg.startswith(f"refusing to load {path}: it holds numpy.") and "\n" not in msg
    assert msg.endswith("move the run folder away to start the run afresh")


def test_plain_checkpoint_makes_numpy_plain_and_refuses_objects(tmp_path):
    sd = torch.nn.BatchNorm1d(3).state_dict()
    assert plain_checkpoint(sd) is sd  # unchanged: nothing to convert, _metadata kept
    state = {
        "a": np.float64(0.1),
        "b": np.arange(4, dtype=np.int32),
        "c": [np.int64(2), (np.bool_(True), "x")],
        "d": {1, 2},
        "e": None,
        "model": sd,
    }
    path = tmp_path / "s.pt"
    atomic_torch_save(path, state)
    back = torch.load(path, weights_only=True)
    assert back["a"] == 0.1 and type(back["a"]) is float
    assert back["b"].dtype == torch.int32 and back["b"].tolist() == [0, 1, 2, 3]
    assert back["c"] == [2, (True, "x")] and type(back["c"][0]) is int and type(back["c"][1][0]) is bool
    assert back["d"] == {1, 2} and back["e"] is None
    assert back["model"]._metadata == sd._metadata

    @dataclasses.dataclass
    class Stats:
        x: int = 1

    for bad in ({"stats": Stats()}, {"rng": np.random.default_rng(0)}, {"names": np.array(["a", "b"])}):
        with pytest.raises(TypeError, match=r"^X\.pt\['(stats|rng|names)'\]: cannot checkpoint"):
            plain_checkpoint(bad, "X.pt")


def test_a_truncated_checkpoint_is_unreadable_not_refused(tmp_path):
    path = tmp_path / "task_model_001.pt"
    atomic_torch_save(path, {"w": torch.ones(3)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(StateError, match=r"checkpoint is unreadable .*move the run folder away") as e:
        safe_torch_load(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


# -- planted in a run folder ---------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _stop(record: dict) -> None:
    raise _Stop


def _cfg(out: Path, **strategy) -> RunConfig:
    return RunConfig.from_dict(
        {
            "dataset": {"name": "digits"},
            "model": {"name": "small_cnn"},
            "al": {"rounds": 1, "initial_size": 20, "query_size": 10, "mc_samples": 3, "warm_start": True},
            "train": {"epochs": 2, "batch_size": 32, "min_steps": 0},
            "tracking": {"enabled": False},
            "strategy": strategy or {"name": "margin"},
            "runtime": {"output_dir": str(out), "quiet": True, "num_threads": 2},
        }
    )


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A warm-start run stopped after round 0 (as a crash would): its folder holds the state and
    task_model_001.pt that the resumed round 1 reads."""
    base = tmp_path_factory.mktemp("stopped")
    cfg = _cfg(base / "runs")
    with pytest.raises(_Stop):
        run_experiment(cfg, callbacks=[_stop])
    run_dir = run_dir_for(cfg)
    assert checkpoint_path(run_dir, "task_model", 1).exists()
    return cfg, run_dir


def _copy(stopped_run, tmp_path) -> tuple[RunConfig, Path]:
    cfg, run_dir = stopped_run
    cfg = _cfg(tmp_path / "runs")
    dst = run_dir_for(cfg)
    shutil.copytree(run_dir, dst)
    return cfg, dst


@pytest.mark.parametrize("kind", ["strategy", "task_model", "strategy_legacy", "task_model_legacy"])
def test_resume_refuses_a_planted_checkpoint(stopped_run, tmp_path, kind):
    cfg, run_dir = _copy(stopped_run, tmp_path)
    marker = tmp_path / "pwned"
    if kind.endswith("_legacy"):  # run folders written before keyed checkpoints
        shutil.rmtree(run_dir / "checkpoints")
        path = run_dir / (STRATEGY_FILE if kind == "strategy_legacy" else "task_model.pt")
    else:
        path = checkpoint_path(run_dir, kind, 1)
    plant(path, marker)
    state_before = (run_dir / "state.json").read_bytes()
    with pytest.raises(StateError) as e:
        run_experiment(cfg)
    assert_refused(e, path, marker)
    assert (run_dir / "state.json").read_bytes() == state_before


def test_the_cli_prints_one_line_for_a_planted_checkpoint(tmp_path, capsys):
    from autoal.cli.common import compose, main_guard
    from autoal.cli.run import main as run_main

    argv = [
        "dataset=digits",
        "model=small_cnn",
        "al.rounds=1",
        "al.initial_size=20",
        "al.query_size=10",
        "al.mc_samples=3",
        "al.warm_start=true",
        "train.epochs=2",
        "train.batch_size=32",
        "train.min_steps=0",
        "tracking.enabled=false",
        "strategy=margin",
        f"runtime.output_dir={tmp_path / 'runs'}",
        "runtime.quiet=true",
        "runtime.num_threads=2",
    ]
    cfg = RunConfig.from_dict(compose(argv))
    with pytest.raises(_Stop):
        run_experiment(cfg, callbacks=[_stop])
    run_dir = run_dir_for(cfg)
    marker = tmp_path / "pwned"
    path = checkpoint_path(run_dir, "task_model", 1)
    plant(path, marker)
    with pytest.raises(SystemExit) as e:
        main_guard(run_main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: StateError: refusing to load {path}: it holds ") and "\n" not in err, err
    assert "Traceback" not in err and not marker.exists()


def test_export_of_a_planted_final_model_is_refused(stopped_run, tmp_path):
    """final_model.pt is read when the run ends, to log it as the MLflow model (tracking.log_model):
    a rerun of a finished run whose final_model.pt was replaced refuses it."""
    cfg, run_dir = _copy(stopped_run, tmp_path)
    assert run_experiment(cfg).final_accuracy >= 0  # round 1: the run finishes, final_model.pt written
    path = run_dir / FINAL_MODEL_FILE
    torch.load(path, weights_only=True)  # what autoal writes loads weights-only
    marker = tmp_path / "pwned"
    plant(path, marker)
    with pytest.raises(StateError) as e:
        run_experiment(cfg)
    assert_refused(e, path, marker)


@pytest.mark.parametrize(
    "strategy",
    [{"name": "vaal", "params": {"epochs": 1, "min_iterations": 2, "warm_start": True}}, {"name": "autoal_credit"}],
)
def test_real_strategy_checkpoints_load_weights_only(tmp_path, strategy):
    """Stateful strategies' checkpoints (more in test_config_properties' strategy_checkpoints) hold
    tensors and plain values only."""
    cfg = _cfg(tmp_path / "runs", **strategy)
    with pytest.raises(_Stop):
        run_experiment(cfg, callbacks=[_stop])
    path = checkpoint_path(run_dir_for(cfg), "strategy", 1)
    state = torch.load(path, weights_only=True)
    assert state and isinstance(state, dict)


# -- a labeling project ---------------------------------------------------------------------------------


def test_labeling_export_refuses_a_planted_strategy_checkpoint(tmp_path):
    from autoal.cli.query import main

    images, project = tmp_path / "images", tmp_path / "project"
    make_images(images)
    marker = tmp_path / "pwned"
    path = checkpoint_path(project, "strategy", 1)  # what the first export (round 1) reads
    plant(path, marker)
    with pytest.raises(StateError) as e:
        main(["export", *settings(tmp_path, images, project, "tracking.enabled=false")])
    assert_refused(e, path, marker)
    assert "labels are kept" in str(e.value)
    assert not (project / "labels.json").exists() and not (project / "batches").exists()


# -- the Ray Train search state (function level, no Ray) ------------------------------------------------------


def _nets_and_opts():
    from autoal.search.cycle import SearchNets, SearchOptimizers

    torch.manual_seed(0)
    nets = SearchNets(torch.nn.Linear(4, 2), torch.nn.Linear(4, 3), None)
    opts = SearchOptimizers(
        torch.optim.Adam(nets.searchnet.parameters(), lr=0.1),
        torch.optim.SGD(nets.fitnet.parameters(), lr=0.1, momentum=0.9),
        None,
    )
    for net, opt in ((nets.searchnet, opts.searchnet), (nets.fitnet, opts.fitnet)):
        net(torch.ones(3, 4)).sum().backward()
        opt.step()
    return nets, opts


def test_the_ray_train_search_state_round_trips_weights_only(tmp_path):
    from autoal.executors.ray_train_search import load_search_state, save_search_state

    nets, opts = _nets_and_opts()
    stats = [{"loss_fitnet": np.float64(0.5), "steps": 3, "extra": {"theta": np.float32(0.25)}}]
    path = str(tmp_path / "search_state.pt")
    save_search_state(path, nets, opts, stats, world_size=2)
    state = load_search_state(path)
    assert state["world_size"] == 2 and state["stats"] == [{"loss_fitnet": 0.5, "steps": 3, "extra": {"theta": 0.25}}]
    assert state["lpm"] is None and state["opt_lpm"] is None
    assert all(torch.equal(state["fitnet"][k], v) for k, v in nets.fitnet.state_dict().items())
    fresh, fresh_opts = _nets_and_opts()
    fresh_opts.searchnet.load_state_dict(state["opt_searchnet"])  # an optimizer state loads back
    assert fresh_opts.searchnet.state_dict()["state"][0]["step"] == opts.searchnet.state_dict()["state"][0]["step"]


def test_the_ray_train_search_state_refuses_a_planted_pickle(tmp_path):
    from autoal.executors.ray_train_search import load_search_state

    path, marker = tmp_path / "search_state.pt", tmp_path / "pwned"
    plant(path, marker)
    with pytest.raises(StateError) as e:
        load_search_state(str(path))
    assert_refused(e, path, marker)


class _DataDependent(torch.nn.Module):
    """A module torch.export cannot trace: its branch depends on the input's values."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.linear(x)
        return -self.linear(x)


_LOAD_WITHOUT_AUTOAL = """
import sys
sys.modules['autoal'] = None  # any import of autoal now fails: the model must not need it
import mlflow, torch
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pytorch.load_model(sys.argv[2], dst_path=sys.argv[3])
with torch.no_grad():
    print('SHAPE', tuple(model(torch.zeros(7, 1, 8, 8)).shape))
"""


def test_the_logged_mlflow_model_is_a_graph_that_loads_without_pickle_or_autoal(tmp_path):
    """A run's MLflow model is a torch.export program (MLflow's pt2 format): no pickle to run,
    loadable where autoal is not installed, any batch size; the tag says the format."""
    import subprocess

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = RunConfig.from_dict(
        {
            "al": {"rounds": 0},
            "train": {"epochs": 1},
            "tracking": {"uri": uri},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True},
        }
    )
    r = run_experiment(cfg)
    tags = MlflowClient(uri).get_run(r.tracking_run_id).data.tags
    assert tags["autoal.model_format"] == "pt2"
    (tmp_path / "dst").mkdir()
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_AUTOAL, uri, tags["autoal.model_uri"], str(tmp_path / "dst")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SHAPE (7, 10)" in out.stdout
    assert not list((tmp_path / "dst").rglob("*.pkl")), "a pickle was logged"


def test_a_model_torch_export_cannot_trace_is_pickled_and_tagged(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from autoal.tracking import MLflowTracker, ensure_experiment

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    ensure_experiment(uri, "e")
    tracker = MLflowTracker(uri, "e")
    run_id = tracker.start()
    model = _DataDependent().eval()
    model_uri = tracker.log_model(model, input_example=np.ones((2, 4), np.float32))
    tracker.end()
    assert MlflowClient(uri).get_run(run_id).data.tags["autoal.model_format"] == "pickle"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    (tmp_path / "d").mkdir()
    try:  # our own store: trusted
        back = mlflow.pytorch.load_model(model_uri, dst_path=str(tmp_path / "d"))
    finally:
        mlflow.set_tracking_uri(previous)
    x = torch.ones(3, 4)
    assert torch.equal(back(x), model(x)) and torch.equal(back(-x), model(-x))
