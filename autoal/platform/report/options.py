"""The ``report:`` section's options, checked before anything is read, and the folder name of
a report (:func:`report_id_for`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from autoal.errors import ConfigError, TrackingError
from autoal.writable import check_writable_folder
from autoal.paths import user_path


#: the ``report:`` section's keys and what each holds (conf/report.yaml)
REPORT_OPTIONS: dict[str, str] = {
    "sweep_id": "a sweep id, a list of sweep ids or null",
    "run_ids": "a list of MLflow run ids or null",
    "runs_files": "a list of JSON-lines files of matrix runs or null",
    "all_runs": "true or false",
    "out_dir": "a folder or null",
    "reference": "an arm name or null",
    "log_to_parent": "true or false",
    "list": "true or false",
}


def check_report_options(opts: Mapping[str, Any], uri: str) -> None:
    """The ``report:`` section's values (type of each key; ``out_dir`` writable) and the store:
    a report reads an existing MLflow store, it never creates one. Raises ConfigError or
    TrackingError naming the key, before anything is read or written."""
    for key, value in opts.items():
        want = REPORT_OPTIONS.get(key)
        if want is None:
            raise ConfigError(f"report.{key}: unknown key; valid keys: {', '.join(REPORT_OPTIONS)}")
        if want == "true or false":
            ok = isinstance(value, bool)
        elif key in ("run_ids", "runs_files") or (key == "sweep_id" and isinstance(value, list)):
            ok = value is None or (
                isinstance(value, list)
                and bool(value)
                and all(isinstance(r, str) and r.strip() and "\x00" not in r for r in value)
            )
        else:  # a name or a folder, or null
            ok = value is None or (isinstance(value, str) and bool(value.strip()) and "\x00" not in value)
        if not ok:
            raise ConfigError(f"report.{key}: expected {want}; got {value!r:.80}")
    if opts.get("out_dir"):
        check_writable_folder(opts["out_dir"], "report.out_dir")
    for f in opts.get("runs_files") or []:
        if not user_path(f).is_file():
            raise ConfigError(
                f"report.runs_files: {f} is not a file (expected a JSON-lines file of matrix runs, "
                "e.g. bench/reference/quality_runs_2026-11-30.jsonl or a report's matrix_runs.jsonl)"
            )
    if matrix_only(opts):
        return  # reads no store
    if uri.startswith("sqlite:///") and not user_path(uri[len("sqlite:///") :]).is_file():
        raise TrackingError(
            f"tracking.uri: no MLflow store at {uri[len('sqlite:///') :]} (nothing was tracked there "
            "yet); run autoal run or autoal sweep first, or point tracking.uri at the store"
        )


def matrix_only(opts: Mapping[str, Any]) -> bool:
    """A report of JSON-lines matrix runs alone (``report.runs_files`` without a sweep, run ids or
    all_runs): it reads no MLflow store."""
    return bool(opts.get("runs_files")) and not (opts.get("sweep_id") or opts.get("run_ids") or opts.get("all_runs"))


def _digest(items: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256(",".join(sorted(map(str, items))).encode()).hexdigest()[:8]


def report_id_for(
    sweep_id: str | Sequence[str] | None,
    run_ids: Sequence[str] | None,
    experiment: str,
    runs_files: Sequence[str] | None = None,
) -> str:
    """The folder name of a report: the sweep id, ``sweeps-<hash of the ids>`` for several sweeps,
    ``runs-<hash of the ids>``, ``experiment-<name>``, or ``matrix-<hash of the files>``."""
    if isinstance(sweep_id, (list, tuple)):
        for one in sweep_id:
            report_id_for(one, None, experiment)  # each a plain name
        return sweep_id[0] if len(sweep_id) == 1 else "sweeps-" + _digest(sweep_id)
    if runs_files and not sweep_id and not run_ids and experiment == "":
        return "matrix-" + _digest([str(Path(f).resolve()) for f in runs_files])
    if sweep_id:
        if "/" in sweep_id or "\\" in sweep_id or sweep_id in (".", "..") or "\x00" in sweep_id:
            raise TrackingError(
                f"report.sweep_id: expected a sweep id (a plain name: it names the report folder); got {sweep_id!r}"
            )
        return sweep_id
    if run_ids:
        return "runs-" + _digest(run_ids)
    return "experiment-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
