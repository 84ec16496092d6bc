"""The sweep's status line while trials run (a Tune callback)."""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence


def _tune_callback_base():
    from ray.tune import Callback

    return Callback


class _ProgressMixin:
    def __init__(self, sweep_id: str, total: int, interval_s: float, out: Callable[[str], None]) -> None:
        self.sweep_id = sweep_id
        self.total = total
        self.interval_s = float(interval_s)
        self.out = out
        self.t0 = time.time()
        self._last = 0.0
        self._last_line = ""

    def line(self, trials: Sequence[Any]) -> str:
        counts = {"TERMINATED": 0, "RUNNING": 0, "PENDING": 0, "ERROR": 0, "PAUSED": 0}
        best = None
        for t in trials:
            res = t.last_result or {}
            status = t.status
            if status == "TERMINATED" and res.get("final_accuracy") is None:
                status = "PAUSED"  # stopped before its last round (Ctrl-C): it resumes
            counts[status] = counts.get(status, 0) + 1
            if status == "TERMINATED" and "aubc" in res:
                if best is None or res["aubc"] > best[0]:
                    best = (res["aubc"], t.config.get("arm"), t.config.get("seed"))
        retried = sum(1 for t in trials if getattr(t, "num_failures", 0))
        el = int(time.time() - self.t0)
        parts = [f"[{self.sweep_id}] {counts['TERMINATED']}/{max(self.total, len(trials))} done",
                 f"{counts['RUNNING']} running", f"{counts['PENDING'] + counts['PAUSED']} pending"]
        if counts["ERROR"]:
            parts.append(f"{counts['ERROR']} failed")
        if retried:
            parts.append(f"{retried} retried")
        parts.append(f"best AUBC {best[0]:.4f} ({best[1]}, seed {best[2]})" if best else "best AUBC -")
        parts.append(f"{el // 60}:{el % 60:02d}")
        return " · ".join(parts)

    def emit(self, trials: Sequence[Any], force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.interval_s:
            return
        text = self.line(trials)
        if force or text != self._last_line:
            self.out(text)
        self._last, self._last_line = now, text


def make_progress_callback(sweep_id: str, total: int, interval_s: float, out: Callable[[str], None] = print):
    """A Tune callback that prints trials done / running / pending (and failed, retried) with the
    best AUBC so far: on every finished or failed trial and every ``interval_s`` seconds."""
    Callback = _tune_callback_base()

    class SweepProgress(_ProgressMixin, Callback):
        def __init__(self) -> None:
            _ProgressMixin.__init__(self, sweep_id, total, interval_s, out)

        def on_step_end(self, iteration, trials, **info):
            self.emit(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.emit(trials, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.emit(trials, force=True)

        def on_experiment_end(self, trials, **info):
            self.emit(trials, force=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.out(f"[{sweep_id}] trial {trial.config.get('arm')} seed {trial.config.get('seed')} failed; "
                     f"retrying from its last round (attempt {getattr(trial, 'num_failures', 0) + 1})")

    return SweepProgress()
