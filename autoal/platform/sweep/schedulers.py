"""Tune trial schedulers over AL rounds (``sweep.scheduler``). Imported only when a sweep uses
one (it imports Ray Tune at module level, so the class pickles by reference on ``Tuner.restore``)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

#: trial ids stopped by a scheduler, per sweep id (the Tune controller runs in the driver process)
STOPPED: dict[str, set[str]] = {}


class RecordingASHA(ASHAScheduler):
    """ASHA (Li et al., 2020) that records which trials it stopped, so that the driver tells them
    from trials a Ctrl-C interrupted. One Tune iteration is one AL round; the metric is the AUBC
    of the learning curve so far (comparable between trials at the same round)."""

    def __init__(self, sweep_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep_id = sweep_id

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            STOPPED.setdefault(self.sweep_id, set()).add(str(trial.trial_id))
        return decision
