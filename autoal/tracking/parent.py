"""A sweep's parent run (:func:`start_parent_run`, :func:`end_parent_run`) and the ending of
its stopped trials' runs (:func:`stop_runs`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from autoal.tracking.serialized import call_serialized, sqlite_lock_path
from autoal.tracking.store import ensure_experiment, mlflow_client


def start_parent_run(
    uri: str,
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    reopen: str | None = None,
    json_artifacts: dict[str, Any] | None = None,
) -> str:
    """Create a sweep's parent run (or reopen the run ``reopen`` when the store still has it),
    with ``tags``, ``params`` (values cut to MLflow's 6,000 characters) and ``json_artifacts``
    (file name -> JSON-able object); return its id."""
    from mlflow.entities import Param

    def go() -> str:
        exp_id = ensure_experiment(uri, experiment)
        client = mlflow_client(uri)
        if reopen:
            try:
                client.update_run(reopen, status="RUNNING")
                return reopen
            except Exception:  # noqa: BLE001 - the store was reset: start a new parent run
                pass
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(run.info.run_id, params=items[i : i + 100])
        for name, obj in (json_artifacts or {}).items():
            client.log_dict(run.info.run_id, obj, name)
        return run.info.run_id

    return call_serialized(sqlite_lock_path(uri), go)


def end_parent_run(
    uri: str,
    run_id: str,
    status: str,
    *,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    json_artifacts: dict[str, Any] | None = None,
) -> None:
    """Log the sweep's final ``metrics`` (step 0), ``tags`` and JSON artifacts (file name ->
    content) on its parent run, then end it with ``status``."""
    import json

    from mlflow.entities import Metric

    def go() -> None:
        client = mlflow_client(uri)
        ts = int(time.time() * 1000)
        if metrics:
            client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()])
        for k, v in (tags or {}).items():
            client.set_tag(run_id, k, v)
        if json_artifacts:
            with tempfile.TemporaryDirectory() as d:
                for name, content in json_artifacts.items():
                    path = Path(d) / name
                    path.write_text(json.dumps(content, indent=1, default=str))
                    client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, status=status)

    call_serialized(sqlite_lock_path(uri), go)


def stop_runs(uri: str, experiment: str, sweep_id: str, trial_ids: list[str], reason: str) -> int:
    """End the child runs of ``sweep_id`` whose trial was stopped early (``trial_ids``) as
    KILLED, tagged ``autoal.stopped`` = ``reason`` (a stopped trial's process never ends its
    run); returns how many runs were ended."""
    wanted = {str(t) for t in trial_ids if t}

    def go() -> int:
        client = mlflow_client(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None or not wanted:
            return 0
        n = 0
        for run in client.search_runs([exp.experiment_id], f"tags.sweep_id = '{sweep_id}'", max_results=10000):
            if run.data.tags.get("trial_id") in wanted:
                client.set_tag(run.info.run_id, "autoal.stopped", reason)
                # still RUNNING, or FAILED by the loop when Tune ended the trial: stopped, not failed
                client.set_terminated(run.info.run_id, status="KILLED")
                n += 1
        return n

    return call_serialized(sqlite_lock_path(uri), go)
