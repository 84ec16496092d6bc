"""The report's quality-matrix section (:func:`write_matrix_section`): for runs that carry a
named setting (the trials of a sweep with a setting axis, ``sweep=quality``) and, optionally,
runs kept in JSON-lines files (``bench/reference/``), the tables and figures of
:mod:`autoal.platform.matrix`, written beside the rest of the report."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

from autoal.platform.matrix import (
    LEGACY_METHOD_NAMES,
    MatrixRun,
    build_matrix,
    heat_map,
    matrix_markdown,
    merge_runs,
    method_name,
    read_jsonl_runs,
    runtime_split,
)

#: the loop's per-round timings summed per run (autoal.loop; AutoAL's candidates and search are
#: parts of seconds_select)
_LOOP_SECONDS = ("seconds_train", "seconds_score", "seconds_select", "seconds_candidates", "seconds_search")


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(f) else f


def _learning_curves(rounds) -> dict[str, tuple[list[int], list[float]]]:
    """run id -> (labels, accuracy) per round, in round order, from the report's long-form
    per-round table (``rounds.parquet``'s rows); rounds without both numbers are left out."""
    if rounds is None or not {"run_id", "round", "labels", "accuracy"} <= set(rounds.columns):
        return {}
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for run_id, part in rounds.sort_values(["run_id", "round"]).groupby("run_id", sort=False):
        part = part.dropna(subset=["labels", "accuracy"])
        curves[str(run_id)] = ([int(v) for v in part["labels"]], [float(v) for v in part["accuracy"]])
    return curves


def matrix_records(trials, rounds=None) -> list[dict[str, Any]]:
    """One matrix record per finished trial that names its setting (``trials``: the report's
    trial table), with the run-time split as disjoint parts: training, scoring (the pool cache and
    AutoAL's candidate indicators), selection (the rest of the query), search (AutoAL's) and
    overhead (the run's wall time in MLflow minus the rest: data loading, evaluation, checkpoints,
    tracking). With ``rounds`` (the long-form per-round table) each record carries its learning
    curve, ``labels`` and ``accuracy`` per round."""
    if "setting" not in trials.columns:
        return []
    curves = _learning_curves(rounds)
    out = []
    for row in trials.to_dict("records"):
        setting = row.get("setting")
        if row.get("status") != "FINISHED" or not isinstance(setting, str) or not setting:
            continue
        method = (
            row.get("method")
            if isinstance(row.get("method"), str) and row.get("method")
            else method_name(row["arm"], setting)
        )
        s = {k: _num(row.get(k)) for k in _LOOP_SECONDS}
        rec: dict[str, Any] = {
            "setting": setting,
            "method": method,
            "seed": int(row["seed"]),
            "aubc": float(row["aubc"]),
            "final_accuracy": float(row["final_accuracy"]),
            "long_tailed": bool(row.get("long_tailed") is True),
            "seconds_train": s["seconds_train"],
            "seconds_score": s["seconds_score"] + s["seconds_candidates"],
            "seconds_select": max(s["seconds_select"] - s["seconds_candidates"] - s["seconds_search"], 0.0),
            "seconds_search": s["seconds_search"],
        }
        for key in ("final_balanced_accuracy", "aubc_balanced"):
            v = row.get(key)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                rec[key] = float(v)
        if str(row.get("run_id")) in curves:
            rec["labels"], rec["accuracy"] = curves[str(row.get("run_id"))]
        wall = row.get("seconds_wall")
        if wall is not None and not (isinstance(wall, float) and math.isnan(wall)):
            parts = rec["seconds_train"] + rec["seconds_score"] + rec["seconds_select"] + rec["seconds_search"]
            rec["seconds_overhead"] = max(float(wall) - parts, 0.0)
        out.append(rec)
    return out


def load_runs_files(paths: Sequence[str | Path]) -> list[MatrixRun]:
    """The runs of JSON-lines files: the legacy ``bench/quality.py`` files (methods renamed as the
    sweeps name them) and the ``matrix_runs.jsonl`` that every matrix report writes."""
    return merge_runs(*(read_jsonl_runs(p, rename=LEGACY_METHOD_NAMES) for p in paths))


def write_matrix_section(
    runs: Sequence[MatrixRun | dict[str, Any]], out: Path, files: dict[str, Path], title: str = "Quality matrix"
) -> list[str]:
    """Write ``matrix.md``, ``matrix_runs.jsonl`` (the records, readable by ``report.runs_files``),
    ``quality_matrix.png`` (AUBC above Random per setting and method, with ranks) and
    ``runtime_split.png`` into ``out``; return the report's Markdown lines ([] without runs)."""
    runs = merge_runs(runs)
    if not runs:
        return []
    report = build_matrix(runs)
    text = matrix_markdown(report, title=title)
    files["matrix_md"] = out / "matrix.md"
    files["matrix_md"].write_text(text + "\n")
    files["matrix_runs"] = out / "matrix_runs.jsonl"
    with files["matrix_runs"].open("w") as f:
        for r in runs:
            d = dataclasses.asdict(r)
            d.update({f"seconds_{k}": v for k, v in d.pop("seconds").items()})
            f.write(json.dumps(d) + "\n")
    lines = ["#" + line if line.startswith("#") else line for line in text.splitlines()] + [""]
    hm = heat_map(report, out / "quality_matrix.png")
    if hm is not None:
        files["quality_matrix"] = hm
        lines += ["![AUBC above Random per setting and method, with ranks](quality_matrix.png)", ""]
    rt = runtime_split(report, out / "runtime_split.png")
    if rt is not None:
        files["runtime_split"] = rt
        lines += [
            "Seconds per run, by part (overhead: the run's wall time in MLflow minus the parts):",
            "",
            "![run-time split per setting and method](runtime_split.png)",
            "",
        ]
    return lines
