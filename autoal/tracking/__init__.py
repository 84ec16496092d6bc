"""Experiment tracking, the only package that imports MLflow (and only when it is used, so the
core runs where MLflow is not installed). One module per concept:

- :mod:`~autoal.tracking.mlflow_run`: one tracking run (:class:`MLflowTracker`, :class:`NullTracker`);
- :mod:`~autoal.tracking.store`: checking a store before any work, its experiment, read access;
- :mod:`~autoal.tracking.sqlite_store`: a SQLite store file inspected read-only, created atomically;
- :mod:`~autoal.tracking.serialized`: one writer at a time on a SQLite store (concurrent trials);
- :mod:`~autoal.tracking.parent`: a sweep's parent run;
- :mod:`~autoal.tracking.params`: a config as MLflow params, the code's version.

What a run logs (tags, params, rounds, artifacts) is :mod:`autoal.recorder`'s."""

from __future__ import annotations

from autoal.tracking.mlflow_run import TRACKING_OFF, MLflowTracker, NullTracker, Tracker
from autoal.tracking.params import config_params, flatten, git_sha
from autoal.tracking.parent import end_parent_run, start_parent_run, stop_runs
from autoal.tracking.serialized import SerializedTracker, call_serialized, sqlite_lock_path
from autoal.tracking.sqlite_store import StoreState, one_line_error, prepare_sqlite_store, sqlite_store_state
from autoal.tracking.store import (
    absolute_tracking_uri,
    artifacts_beside_store,
    check_tracking_uri,
    ensure_experiment,
    mlflow_client,
    quiet_artifact_progress,
    store_path,
)

__all__ = [
    "TRACKING_OFF",
    "MLflowTracker",
    "NullTracker",
    "SerializedTracker",
    "StoreState",
    "Tracker",
    "absolute_tracking_uri",
    "artifacts_beside_store",
    "call_serialized",
    "check_tracking_uri",
    "config_params",
    "end_parent_run",
    "ensure_experiment",
    "flatten",
    "git_sha",
    "mlflow_client",
    "one_line_error",
    "prepare_sqlite_store",
    "quiet_artifact_progress",
    "sqlite_lock_path",
    "sqlite_store_state",
    "start_parent_run",
    "stop_runs",
    "store_path",
]
