"""A report's input read back from MLflow: the sweeps of an experiment, a sweep's trial runs
(or any runs), and the long-form per-round table of them (:func:`runs_frame`), with one row per
trial (:func:`trial_table`)."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

from autoal.errors import TrackingError
from autoal.metrics import aubc
from autoal.tracking import mlflow_client

ROLE_TAG = "autoal_role"
SUMMARY_METRICS = ("aubc", "final_accuracy")
ID_COLUMNS = [
    "sweep",
    "trial",
    "run_id",
    "arm",
    "seed",
    "strategy",
    "dataset",
    "setting",
    "method",
    "long_tailed",
    "status",
    "round",
]
RUNTIME_PARTS = ("seconds_train", "seconds_score", "seconds_select", "seconds_candidates", "seconds_search")


def _experiment_id(client, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"tracking.experiment: no MLflow experiment {experiment!r} in the store")
    return exp.experiment_id


def _search_all(client, exp_id: str, filter_string: str, order_by: Sequence[str] | None = None) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [exp_id], filter_string=filter_string, max_results=1000, order_by=list(order_by or []), page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def list_sweeps(uri: str, experiment: str) -> list[dict[str, Any]]:
    """The sweeps (parent runs) of an experiment, newest first."""
    client = mlflow_client(uri)
    exp_id = _experiment_id(client, experiment)
    runs = _search_all(client, exp_id, f"tags.{ROLE_TAG} = 'sweep'", ["attributes.start_time DESC"])
    return [
        {
            "sweep_id": r.data.tags.get("sweep_id"),
            "run_id": r.info.run_id,
            "status": r.info.status,
            "start_time": r.info.start_time,
            "sweep": r.data.tags.get("sweep"),
        }
        for r in runs
    ]


def latest_sweep_id(uri: str, experiment: str) -> str:
    sweeps = list_sweeps(uri, experiment)
    if not sweeps:
        raise TrackingError(f"report: no sweep in MLflow experiment {experiment!r} at {uri}; run autoal sweep first")
    return sweeps[0]["sweep_id"]


def load_runs(uri: str, experiment: str, sweep_id: str | None = None, run_ids: Sequence[str] | None = None):
    """(parent run or None, runs): the trial runs of sweep ``sweep_id`` (one per trial, the
    latest when a trial has several), or the runs ``run_ids`` (any experiment), or, with neither,
    every AL run of ``experiment`` (single runs and sweep trials; not the sweeps' parent runs)."""
    client = mlflow_client(uri)
    if run_ids:
        runs = []
        for rid in run_ids:
            try:
                runs.append(client.get_run(str(rid)))
            except Exception as e:  # noqa: BLE001 - MLflow raises its own exception type for a bad id
                raise TrackingError(f"report.run_ids: no run {rid!r} at {uri} ({type(e).__name__})") from None
        return None, runs
    exp_id = _experiment_id(client, experiment)
    if sweep_id is None:
        runs = [
            r
            for r in _search_all(client, exp_id, "", ["attributes.start_time ASC"])
            if r.data.tags.get(ROLE_TAG) != "sweep"
            and "mlflow.parentRunId" not in r.data.tags
            or r.data.tags.get(ROLE_TAG) == "trial"
        ]
        if not runs:
            raise TrackingError(f"report: MLflow experiment {experiment!r} at {uri} has no runs")
        return None, runs
    parents = _search_all(client, exp_id, f"tags.sweep_id = '{sweep_id}' and tags.{ROLE_TAG} = 'sweep'")
    children = _search_all(
        client, exp_id, f"tags.sweep_id = '{sweep_id}' and tags.{ROLE_TAG} = 'trial'", ["attributes.start_time ASC"]
    )
    if not children:
        raise TrackingError(
            f"report: sweep {sweep_id!r} has no trial runs in MLflow experiment {experiment!r} at {uri}"
        )
    by_trial: dict[str, Any] = {}
    for r in children:
        key = r.data.tags.get("trial_id") or r.info.run_id
        prev = by_trial.get(key)
        if prev is None or (r.info.status == "FINISHED") >= (prev.info.status == "FINISHED"):
            by_trial[key] = r
    return (parents[0] if parents else None), list(by_trial.values())


def _histories(client, run, keys: Sequence[str]) -> dict[int, dict[str, float]]:
    per_round: dict[int, dict[str, float]] = {}
    for key in keys:
        for m in client.get_metric_history(run.info.run_id, key):
            per_round.setdefault(int(m.step), {})[key] = float(m.value)
    return per_round


def runs_frame(uri: str, runs: Sequence[Any], report_id: str, progress: Callable[[int, int], None] | None = None):
    """The long-form per-round table of ``runs`` (pandas DataFrame): identity columns, the
    run's params as ``param.<key>``, and every per-round metric. Metric histories are fetched
    by a few threads (one MLflow call per run and metric), ``progress(done, total)`` after each run."""
    import pandas as pd
    from concurrent.futures import ThreadPoolExecutor

    client = mlflow_client(uri)
    keys = {run.info.run_id: sorted(k for k in run.data.metrics if k not in SUMMARY_METRICS) for run in runs}
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(runs)))) as pool:
        futures = [pool.submit(_histories, client, run, keys[run.info.run_id]) for run in runs]
        for i, (run, fut) in enumerate(zip(runs, futures), 1):
            per_round = fut.result()
            tags, params = run.data.tags, run.data.params
            strategy = tags.get("strategy", params.get("strategy.name"))
            ident = {
                "sweep": tags.get("sweep_id", report_id),
                "trial": tags.get("trial_id", run.info.run_id),
                "run_id": run.info.run_id,
                "arm": tags.get("arm") or strategy or run.info.run_name,
                "seed": _int(tags.get("seed", params.get("al.seed"))),
                "strategy": strategy,
                "dataset": tags.get("dataset", params.get("dataset.name")),
                "status": run.info.status,
                # the quality matrix's axes: the named setting (conf/setting/) and the method
                "setting": tags.get("setting", params.get("setting.name")),
                "method": tags.get("method"),
                "long_tailed": tags.get("long_tailed") == "true",
                # the run's wall time in MLflow (start to end; the run-time split's overhead)
                "run_wall_s": (run.info.end_time - run.info.start_time) / 1000
                if run.info.end_time and run.info.start_time
                else None,
            }
            summary = {k: run.data.metrics.get(k) for k in SUMMARY_METRICS}
            p = {f"param.{k}": v for k, v in params.items()}
            for r in sorted(per_round):
                rows.append({**ident, "round": r, **per_round[r], **{f"run_{k}": v for k, v in summary.items()}, **p})
            if progress is not None:
                progress(i, len(runs))
    df = pd.DataFrame(rows)
    if df.empty:
        raise TrackingError(f"report: the runs of {report_id!r} have no per-round metrics")
    first = [c for c in ID_COLUMNS + ["labels", "accuracy", "balanced_accuracy"] if c in df.columns]
    rest = sorted(c for c in df.columns if c not in first)
    df = df[first + rest].sort_values(["arm", "seed", "round"], kind="stable").reset_index(drop=True)
    if "labels" in df.columns:
        df["labels"] = df["labels"].astype("int64")
    return df


def sweep_frame(uri: str, experiment: str, sweep_id: str, progress: Callable[[int, int], None] | None = None):
    """The long-form per-round table of a sweep (pandas DataFrame), and the parent run."""
    parent, runs = load_runs(uri, experiment, sweep_id)
    return runs_frame(uri, runs, sweep_id, progress), parent


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def arm_order(df, parent=None) -> list[str]:
    if parent is not None and parent.data.tags.get("arms"):
        try:
            order = [a for a in json.loads(parent.data.tags["arms"]) if a in set(df["arm"])]
            return order + sorted(set(df["arm"]) - set(order))
        except ValueError:
            pass
    return list(dict.fromkeys(df["arm"]))


def trial_table(df):
    """One row per trial: arm, seed, status, rounds, AUBC (the run's logged value, else computed
    from its curve), final accuracy, and total seconds per phase."""
    import pandas as pd

    rows = []
    for (trial, run_id), g in df.groupby(["trial", "run_id"], sort=False):
        g = g.sort_values("round")
        first = g.iloc[0]
        logged = first.get("run_aubc")
        value = (
            float(logged)
            if logged is not None and not is_missing(logged)
            else aubc(g["labels"].tolist(), g["accuracy"].tolist())
        )
        final = first.get("run_final_accuracy")
        row = {
            "trial": trial,
            "run_id": run_id,
            "arm": first["arm"],
            "seed": first["seed"],
            "strategy": first["strategy"],
            "status": first["status"],
            "rounds": int(g["round"].max()) + 1,
            "labels": int(g["labels"].iloc[-1]),
            "aubc": value,
            "final_accuracy": float(final)
            if final is not None and not is_missing(final)
            else float(g["accuracy"].iloc[-1]),
        }
        for key in ("setting", "method", "long_tailed"):
            if key in g.columns:
                row[key] = first[key]
        if "balanced_accuracy" in g.columns and not is_missing(g["balanced_accuracy"].iloc[-1]):
            row["final_balanced_accuracy"] = float(g["balanced_accuracy"].iloc[-1])
            if not g["balanced_accuracy"].isna().any():
                row["aubc_balanced"] = aubc(g["labels"].tolist(), g["balanced_accuracy"].tolist())
        wall = first.get("run_wall_s")
        if wall is not None and not is_missing(wall):
            row["seconds_wall"] = float(wall)
        for part in RUNTIME_PARTS:
            if part in g.columns:
                row[part] = float(g[part].fillna(0.0).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def is_missing(v: Any) -> bool:
    """True for None, NaN and anything that is not a number."""
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True
