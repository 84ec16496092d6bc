"""The run recorder (autoal.recorder): one place builds a run's tracker, and a state's rounds
reach the tracking store once each, also when a run or a labeling project catches up after a
crash between saving a round and logging it."""

from __future__ import annotations

import ast
from pathlib import Path

from autoal.config import RunConfig
from autoal.recorder import RunRecorder, tracker_for
from autoal.tracking import NullTracker

PKG = Path(__file__).resolve().parent.parent / "autoal"


class StoreDouble(NullTracker):
    """A tracker that keeps what it is given, as a store would (steps per metric)."""

    def __init__(self, steps: set[int] | None = None) -> None:
        self.steps = set(steps or ())
        self.logged: list[tuple[int, dict]] = []
        self.artifacts: list[tuple[str, str | None]] = []
        self.reads = 0

    def start(self, run_id=None, identity=None):
        return run_id or "new-run"

    def logged_steps(self, key):
        self.reads += 1
        return set(self.steps) if key == "labels" else set()

    def log_metrics(self, metrics, step=None):
        self.logged.append((step, dict(metrics)))
        self.steps.add(step)

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append((str(path), artifact_path))


def test_only_the_recorder_builds_a_tracker():
    """MLflowTracker and SerializedTracker are constructed in autoal/recorder.py alone (the loop, a
    sweep trial and a labeling project get theirs from tracker_for)."""
    builders = set()
    for path in PKG.rglob("*.py"):
        if path.parent.name == "tracking":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("MLflowTracker", "SerializedTracker")
            ):
                builders.add(path.relative_to(PKG).as_posix())
    assert builders == {"recorder.py"}, sorted(builders)


def test_rounds_the_store_holds_are_not_logged_again():
    store = StoreDouble(steps={0, 1})
    rec = RunRecorder(store, "labels")
    assert rec.open(None) == "new-run"
    records = [{"round": r, "labels": 10 + r} for r in range(4)]
    saved: list[int] = []
    n = rec.log_rounds(
        records,
        0,
        lambda h: {"labels": h["labels"]},
        artifacts_of=lambda h: [(Path(f"round_{h['round']}.json"), "rounds")],
        saved=saved.append,
    )
    assert n == 4 and saved == [1, 2, 3, 4]
    assert [s for s, _ in store.logged] == [2, 3] and store.logged[0][1] == {"labels": 12}
    assert store.artifacts == [(f"round_{r}.json", "rounds") for r in range(4)]  # artifacts: every round
    assert store.reads == 1  # the store is read once per opening
    # a later round: from the saved count on, nothing earlier again
    records.append({"round": 4, "labels": 14})
    assert rec.log_rounds(records, n, lambda h: {"labels": h["labels"]}) == 5
    assert [s for s, _ in store.logged] == [2, 3, 4] and store.reads == 1
    rec.open("new-run")  # reopened: the store is read again
    assert rec.log_rounds(records, 5, lambda h: {}) == 5 and store.reads == 1  # nothing to log, nothing read


def test_tracker_for_follows_the_config(tmp_path):
    off = RunConfig.from_dict({"tracking": {"enabled": False}})
    assert isinstance(tracker_for(off), NullTracker)
    on = RunConfig.from_dict(
        {
            "tracking": {
                "enabled": True,
                "uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                "experiment": "rec",
                "tags": {"team": "a"},
            },
            "strategy": {"name": "margin"},
        }
    )
    plain = tracker_for(on)
    assert type(plain).__name__ == "MLflowTracker" and plain.run_name == f"{on.dataset.name}-margin-seed{on.al.seed}"
    assert plain.tags == {"team": "a"}
    shared = tracker_for(on, run_name="trial-1", tags={"arm": "x"}, parent_run_id="p", serialized=True)
    assert type(shared).__name__ == "SerializedTracker"
    assert shared._t.run_name == "trial-1" and shared._t.tags == {"arm": "x"} and shared._t.parent_run_id == "p"
