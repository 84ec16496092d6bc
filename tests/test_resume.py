"""Resume after a crash (issue 6, item 1).

- Fault injection: ``pipelines/run.py`` in a subprocess, SIGKILLed by ``AUTOAL_FAULT`` during
  selection (round 1), during training (round 2) and inside the state write (round 2: the
  temporary file is written, the rename has not happened), restarted with the same command each
  time; the final labeled sequence, every round's picks and accuracy equal an uninterrupted run
  with the same seed, history holds rounds 0..R once each, and the MLflow run (the same run id
  throughout) has metric steps 0..R once each.
- Search state: a stateful strategy and warm-start task-model weights are restored from the
  round the saved state points at, not from a later round written just before the crash.
- A corrupt or inconsistent state file, a state of another config, or a corrupt checkpoint
  raises StateError naming the file, and changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autoal.loop as loop_mod
from autoal.cache import PoolCache
from autoal.config import RunConfig
from autoal.errors import StateError
from autoal.loop import ActiveLearningLoop, run_dir_for, run_experiment
from autoal.selection import top_n
from autoal.state import RunState
from autoal.strategies import scores
from autoal.strategies.base import PoolStrategy
from autoal.cli.common import compose

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 3
TINY = [
    f"al.rounds={ROUNDS}",
    "al.initial_size=20",
    "al.query_size=10",
    "al.mc_samples=3",
    "train.epochs=3",
    "train.batch_size=32",
    "strategy=margin",
    "runtime.quiet=true",
    "runtime.num_threads=2",
]


def _overrides(base: Path, experiment: str = "resume") -> list[str]:
    """The tiny run's settings, its run folders under ``base/runs`` and the MLflow store one level up."""
    return [
        *TINY,
        f"runtime.output_dir={base / 'runs'}",
        f"tracking.uri=sqlite:///{base.parent / 'mlflow.db'}",
        f"tracking.experiment={experiment}",
    ]


def _run_cli(base: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("AUTOAL_FAULT", None)
    if fault:
        env["AUTOAL_FAULT"] = fault
    env.pop("AUTOAL_CONF_DIR", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "run.py"), *_overrides(base)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def _temps(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob(".*.tmp"))


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_equals_uninterrupted_run(tmp_path):
    from mlflow.tracking import MlflowClient

    # the uninterrupted reference (same config, another folder and store)
    ref_cfg = RunConfig.from_dict(compose(_overrides(tmp_path / "ref", experiment="reference")))
    ref = run_experiment(ref_cfg)

    base = tmp_path / "crashy"
    run_dir = run_dir_for(RunConfig.from_dict(compose(_overrides(base))))
    run_ids = []
    # (fault, rounds completed when the process dies)
    for fault, done in [("select:1", 1), ("train:2", 2), ("state_write_tmp:2", 2)]:
        p = _run_cli(base, fault)
        assert p.returncode == -signal.SIGKILL, (fault, p.returncode, p.stderr[-2000:])
        st = _state(run_dir)
        assert st["next_round"] == done and [h["round"] for h in st["history"]] == list(range(done)), fault
        assert len(st["labeled"]) == 20 + 10 * done and not st["finished"]
        run_ids.append(st["tracking_run_id"])
        if fault.startswith("state_write_tmp"):
            # the kill landed between writing the temporary file and the rename: the temporary
            # file holds round 2, state.json still the previous round
            (tmp,) = [t for t in _temps(run_dir) if t.name.startswith(".state.json.")]
            assert json.loads(tmp.read_text())["next_round"] == 3

    p = _run_cli(base, None)
    assert p.returncode == 0, p.stderr[-3000:]
    st = _state(run_dir)
    run_ids.append(st["tracking_run_id"])
    assert len(set(run_ids)) == 1 and run_ids[0] == st["tracking_run_id"]
    assert st["finished"] and st["next_round"] == ROUNDS + 1
    assert [h["round"] for h in st["history"]] == list(range(ROUNDS + 1))
    # same labeled sequence, same rounds, same picks and accuracies as the uninterrupted run
    assert st["labeled"] == ref.labeled.tolist()
    assert st["labeled_round"] == ref.labeled_round.tolist() == [0] * 20 + [1] * 10 + [2] * 10 + [3] * 10
    assert [h["selected"] for h in st["history"]] == [h["selected"] for h in ref.history]
    assert [h["accuracy"] for h in st["history"]] == [h["accuracy"] for h in ref.history]
    labeled_json = json.loads((run_dir / "labeled.json").read_text())
    assert labeled_json["labeled"] == ref.labeled.tolist()
    for r in range(ROUNDS):
        rj = json.loads((run_dir / "rounds" / f"round_{r:03d}.json").read_text())
        assert rj["selected"] == ref.history[r]["selected"]
    assert _temps(run_dir) == []  # the killed write's temporary file was cleaned up on resume

    # MLflow: one run, continued by id; steps 0..R exactly once each
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("resume")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [run_ids[0]]
    assert runs[0].info.status == "FINISHED"
    for key in ("accuracy", "labels", "seconds_train"):
        steps = sorted(m.step for m in client.get_metric_history(run_ids[0], key))
        assert steps == list(range(ROUNDS + 1)), (key, steps)
    acc = sorted(client.get_metric_history(run_ids[0], "accuracy"), key=lambda m: m.step)
    assert [m.value for m in acc] == pytest.approx([h["accuracy"] for h in ref.history])
    assert [m.step for m in client.get_metric_history(run_ids[0], "aubc")] == [ROUNDS]


# -- search state and warm start, in-process ----------------------------------------------------


class _Crash(BaseException):
    """Stands in for SIGKILL inside the process: nothing catches it."""


class _CountingStrategy(PoolStrategy):
    """A strategy with state that changes its picks: odd calls take the highest margin score,
    even calls skip the first ``calls`` of that ranking. Stands in for AutoAL's SearchNet."""

    name = "margin"

    def __init__(self) -> None:
        self.calls = 0

    def select_positions(self, cache: PoolCache, n: int, rng: np.random.Generator, labeled=None) -> np.ndarray:
        self.calls += 1
        order = top_n(scores.margin(cache.probs), len(cache), rng)
        skip = 0 if self.calls % 2 else self.calls
        return order[skip : skip + n]

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])


def _tiny_cfg(tmp_tracking, out: Path, **al) -> RunConfig:
    return RunConfig.from_dict(
        {
            "al": {"initial_size": 20, "query_size": 10, "rounds": ROUNDS, "mc_samples": 3} | al,
            "train": {"epochs": 3, "batch_size": 32},
            "tracking": {"enabled": False},
            "runtime": {**tmp_tracking["runtime"], "output_dir": str(out)},
        }
    )


def test_crash_inside_state_write_restores_strategy_and_warm_start_weights_of_that_round(
    tmp_tracking, tmp_path, monkeypatch
):
    cfg_ref = _tiny_cfg(tmp_tracking, tmp_path / "ref", warm_start=True, rounds=2)
    ref = ActiveLearningLoop(cfg_ref, strategy=_CountingStrategy()).run()

    cfg = _tiny_cfg(tmp_tracking, tmp_path / "crashy", warm_start=True, rounds=2)
    real = loop_mod.strike

    def fault(phase, r):
        if (phase, r) == ("state_write_tmp", 1):
            raise _Crash()
        real(phase, r)

    monkeypatch.setattr(loop_mod, "strike", fault)
    with pytest.raises(_Crash):
        ActiveLearningLoop(cfg, strategy=_CountingStrategy()).run()
    monkeypatch.setattr(loop_mod, "strike", real)
    run_dir = run_dir_for(cfg)
    assert RunState.load(run_dir).next_round == 1
    # the strategy and the weights after round 1 were written before the crash, under round 2's key
    assert (run_dir / "checkpoints" / "strategy_002.pt").exists()
    assert (run_dir / "checkpoints" / "task_model_002.pt").exists()

    res = ActiveLearningLoop(cfg, strategy=_CountingStrategy()).run()
    assert [h["selected"] for h in res.history] == [h["selected"] for h in ref.history]
    assert [h["accuracy"] for h in res.history] == [h["accuracy"] for h in ref.history]
    assert res.labeled.tolist() == ref.labeled.tolist()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["strategy_003.pt", "task_model_003.pt"]


# -- bad state files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _finished_run_once(tmp_path_factory):
    base = tmp_path_factory.mktemp("finished")
    cfg = _tiny_cfg({"runtime": {"quiet": True, "num_threads": 2}}, base / "runs")
    cfg.al.rounds = 1
    cfg.train.epochs = 2
    run_experiment(cfg)
    return base / "runs"


@pytest.fixture
def finished_run(_finished_run_once, tmp_path):
    """A finished 1-round run (tracking off), copied into this test's folder."""
    shutil.copytree(_finished_run_once, tmp_path / "runs")
    cfg = _tiny_cfg({"runtime": {"quiet": True, "num_threads": 2}}, tmp_path / "runs")
    cfg.al.rounds = 1
    cfg.train.epochs = 2
    return cfg, run_dir_for(cfg)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "content, match",
    [
        (b'{"fingerprint": "abc", "next_rou', "unreadable"),
        (b"\x00\xff\xfe garbage", "unreadable"),
        (b"[1, 2, 3]", "JSON object"),
        (b'{"next_round": 1}', "unreadable"),  # fingerprint missing
        (
            b'{"fingerprint": "x", "next_round": 1, "labeled": [1, 2], "labeled_round": [0], '
            b'"history": [{"round": 0}]}',
            "labeled_round",
        ),
        (
            b'{"fingerprint": "x", "next_round": 2, "labeled": [1, 2], "labeled_round": [0, 0], '
            b'"history": [{"round": 0}]}',
            "history",
        ),
    ],
)
def test_corrupt_state_raises_state_error_naming_the_file(finished_run, content, match):
    cfg, run_dir = finished_run
    (run_dir / "state.json").write_bytes(content)
    before = _snapshot(run_dir)
    with pytest.raises(StateError, match=match) as e:
        run_experiment(cfg)
    assert str(run_dir / "state.json") in str(e.value)
    assert _snapshot(run_dir) == before


def test_state_of_another_config_in_the_folder_raises(finished_run, tmp_path):
    cfg, run_dir = finished_run
    other = _tiny_cfg({"runtime": {"quiet": True, "num_threads": 2}}, tmp_path / "runs", seed=7)
    other.al.rounds, other.train.epochs = 1, 2
    copied = run_dir_for(other)
    assert copied != run_dir  # the folder name carries the config hash ...
    shutil.copytree(run_dir, copied)  # ... so only a user copying folders gets here
    before = _snapshot(copied)
    with pytest.raises(StateError, match="another config") as e:
        run_experiment(other)
    assert str(copied / "state.json") in str(e.value)
    assert _snapshot(copied) == before


def test_labeled_index_outside_the_pool_raises(finished_run):
    cfg, run_dir = finished_run
    st = json.loads((run_dir / "state.json").read_text())
    st["labeled"][0] = 10_000
    (run_dir / "state.json").write_text(json.dumps(st))
    with pytest.raises(StateError, match="outside the pool"):
        run_experiment(cfg)


def test_corrupt_checkpoint_raises_state_error_naming_it(tmp_tracking, tmp_path, monkeypatch):
    cfg = _tiny_cfg(tmp_tracking, tmp_path / "runs", warm_start=True)
    cfg.train.epochs = 2
    real = loop_mod.strike

    def fault(phase, r):
        if (phase, r) == ("train", 1):
            raise _Crash()

    monkeypatch.setattr(loop_mod, "strike", fault)
    with pytest.raises(_Crash):
        run_experiment(cfg)
    monkeypatch.setattr(loop_mod, "strike", real)
    ckpt = run_dir_for(cfg) / "checkpoints" / "task_model_001.pt"
    ckpt.write_bytes(b"truncated")
    with pytest.raises(StateError, match="checkpoint is unreadable") as e:
        run_experiment(cfg)
    assert str(ckpt) in str(e.value)


def test_resume_off_starts_afresh_and_drops_old_checkpoints(finished_run):
    cfg, run_dir = finished_run
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    (run_dir / "checkpoints" / "strategy_001.pt").write_bytes(b"old")
    cfg.runtime.resume = False
    res = run_experiment(cfg)
    assert len(res.history) == 2 and not (run_dir / "checkpoints" / "strategy_001.pt").exists()


def test_a_second_process_on_the_same_run_folder_is_refused(finished_run):
    import fcntl

    cfg, run_dir = finished_run
    before = _snapshot(run_dir)
    fd = os.open(run_dir, os.O_RDONLY)  # stands in for a first process still running the command
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StateError, match="another process is running this run") as e:
            run_experiment(cfg)
        assert str(run_dir) in str(e.value)
    finally:
        os.close(fd)
    assert _snapshot(run_dir) == before
    assert len(run_experiment(cfg).history) == 2  # the lock is gone with its holder
