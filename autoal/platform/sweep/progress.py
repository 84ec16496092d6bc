"""The sweep's status line while trials run (a Tune callback), with an estimate of the time
left (:func:`estimate_eta`)."""

from __future__ import annotations

import heapq
import time
from typing import Any, Callable, Sequence

from autoal.progress import clock


def estimate_eta(
    durations: Sequence[float], running_elapsed: Sequence[float], pending: int, concurrency: int
) -> float | None:
    """Seconds until the sweep's last trial ends; None before any trial has finished.

    Every trial is taken to last the mean of the finished ``durations``: a running trial ends
    when its elapsed time (``running_elapsed``) reaches that mean (now, if it already has), and
    the ``pending`` trials start one after another on whichever of ``concurrency`` slots frees
    first (at least as many slots as trials running now)."""
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    slots = [max(mean - float(e), 0.0) for e in running_elapsed]
    slots += [0.0] * max(0, int(concurrency) - len(slots))
    if not slots:
        slots = [0.0]
    heapq.heapify(slots)
    for _ in range(max(0, int(pending))):
        heapq.heappush(slots, heapq.heappop(slots) + mean)
    return max(slots)


def eta_text(eta: float | None) -> str:
    """``ETA m:ss`` (``h:mm:ss`` from an hour), ``ETA —`` while unknown."""
    return "ETA —" if eta is None else f"ETA {clock(eta)}"


def starved_text(results: Sequence[dict[str, Any]], below: float = 0.5) -> str:
    """A warning when the running trials get less than ``below`` of the CPU time their threads could
    use (the median of their last reports' ``cpu_share``), with their niceness: Ray runs workers
    at nice 15 by default, so beside any normal process a trial crawls; '' otherwise."""
    shares = sorted(float(r["cpu_share"]) for r in results if isinstance(r.get("cpu_share"), (int, float)))
    if not shares:
        return ""
    median = shares[len(shares) // 2]
    if median >= below:
        return ""
    nice = sorted({int(r["niceness"]) for r in results if isinstance(r.get("niceness"), (int, float))})
    why = (
        f"at nice {'/'.join(map(str, nice))}: sweep.worker_niceness=0 runs them at the driver's priority"
        if any(n > 0 for n in nice)
        else "other processes are using the cores"
    )
    return f"STARVED: trials get {median:.0%} of their CPU ({why})"


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
        self._started: dict[str, float] = {}  # trial id -> when this process saw it start
        self._took: dict[str, float] = {}  # trial id -> seconds from its start to its end
        self._peak_running = 0

    @staticmethod
    def _id(trial: Any) -> str:
        return str(getattr(trial, "trial_id", id(trial)))

    def trial_started(self, trial: Any, now: float | None = None) -> None:
        self._started.setdefault(self._id(trial), time.time() if now is None else now)

    def trial_ended(self, trial: Any, now: float | None = None) -> None:
        key = self._id(trial)
        if key in self._started and key not in self._took:
            self._took[key] = (time.time() if now is None else now) - self._started[key]

    def eta(self, trials: Sequence[Any], now: float | None = None) -> float | None:
        """:func:`estimate_eta` from what this callback can see: the finished trials' durations
        (as timed here, else Tune's ``time_total_s``), the running ones' elapsed time, the
        trials still to run, and as many slots as trials were ever seen running at once."""
        now = time.time() if now is None else now
        durations, running, pending = [], [], 0
        for t in trials:
            res = t.last_result or {}
            key = self._id(t)
            if t.status == "TERMINATED" and res.get("final_accuracy") is not None:
                took = self._took.get(key, res.get("time_total_s"))
                if took is not None:
                    durations.append(float(took))
            elif t.status == "RUNNING":
                running.append(
                    now - self._started[key] if key in self._started else float(res.get("time_total_s") or 0.0)
                )
            elif t.status != "ERROR":  # pending, paused, or stopped before its last round
                pending += 1
        pending += max(0, self.total - len(trials))  # trials Tune has not created yet
        self._peak_running = max(self._peak_running, len(running))
        return estimate_eta(durations, running, pending, max(1, self._peak_running))

    def line(self, trials: Sequence[Any], now: float | None = None) -> str:
        now = time.time() if now is None else now
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
        el = int(now - self.t0)
        parts = [
            f"[{self.sweep_id}] {counts['TERMINATED']}/{max(self.total, len(trials))} done",
            f"{counts['RUNNING']} running",
            f"{counts['PENDING'] + counts['PAUSED']} pending",
        ]
        if counts["ERROR"]:
            parts.append(f"{counts['ERROR']} failed")
        if retried:
            parts.append(f"{retried} retried")
        parts.append(f"best AUBC {best[0]:.4f} ({best[1]}, seed {best[2]})" if best else "best AUBC -")
        parts.append(f"{el // 60}:{el % 60:02d}")
        parts.append(eta_text(self.eta(trials, now)))
        starved = starved_text([t.last_result or {} for t in trials if t.status == "RUNNING"])
        if starved:
            parts.append(starved)
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
    best AUBC so far, the time since the start and the estimated time left (``ETA —`` until a
    trial has finished): on every finished or failed trial and every ``interval_s`` seconds."""
    Callback = _tune_callback_base()

    class SweepProgress(_ProgressMixin, Callback):
        def __init__(self) -> None:
            _ProgressMixin.__init__(self, sweep_id, total, interval_s, out)

        def on_step_end(self, iteration, trials, **info):
            self.emit(trials)

        def on_trial_start(self, iteration, trials, trial, **info):
            self.trial_started(trial)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.trial_ended(trial)
            self.emit(trials, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.emit(trials, force=True)

        def on_experiment_end(self, trials, **info):
            self.emit(trials, force=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.out(
                f"[{sweep_id}] trial {trial.config.get('arm')} seed {trial.config.get('seed')} failed; "
                f"retrying from its last round (attempt {getattr(trial, 'num_failures', 0) + 1})"
            )

    return SweepProgress()
