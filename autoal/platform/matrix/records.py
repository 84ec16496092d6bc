"""The quality matrix's run records (:class:`MatrixRun`): validated from dicts and read from
JSON-lines files of runs; a later run of one (setting, method, seed) replaces an earlier one."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from autoal.errors import DataError

#: the runtime split: record field ``seconds_<part>`` -> legend label (stacked in this order)
RUNTIME_PARTS = {
    "train": "training",
    "score": "scoring",
    "select": "selection",
    "search": "search",
    "overhead": "overhead",
}
#: settings of the legacy bench/quality.py files whose pool is long-tailed
LEGACY_LONG_TAILED = ("mnist_lt",)

_REQUIRED = ("setting", "method", "seed", "aubc", "final_accuracy")
_OPTIONAL = ("final_balanced_accuracy", "aubc_balanced", "long_tailed", "labels", "accuracy")


@dataclass(frozen=True)
class MatrixRun:
    """One finished AL run of the matrix. Optional metrics are None when absent (or NaN);
    ``seconds`` maps the parts of :data:`RUNTIME_PARTS` the record carries to seconds per run."""

    setting: str
    method: str
    seed: int
    aubc: float
    final_accuracy: float
    final_balanced_accuracy: float | None = None
    aubc_balanced: float | None = None
    long_tailed: bool = False
    labels: tuple[int, ...] = ()
    accuracy: tuple[float, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict, hash=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "run record") -> "MatrixRun":
        """Validate a record; a missing or bad field raises :class:`DataError` naming it and
        ``where`` (e.g. ``"runs.jsonl line 3"``). Unknown keys are ignored (records carry run
        ids, params, ...), except unknown ``seconds_*`` keys, which are a misspelt split."""
        if not isinstance(d, Mapping):
            raise DataError(f"{where}: expected a mapping of fields, got {type(d).__name__}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise DataError(f"{where}: missing field(s) {', '.join(missing)} (required: {', '.join(_REQUIRED)})")
        text = {k: d[k] for k in ("setting", "method")}
        for k, v in text.items():
            if not isinstance(v, str) or not v.strip():
                raise DataError(f"{where}: field {k!r} must be a non-empty string, got {v!r}")
        seconds: dict[str, float] = {}
        for k, v in d.items():
            if isinstance(k, str) and k.startswith("seconds_"):
                part = k[len("seconds_") :]
                if part not in RUNTIME_PARTS:
                    raise DataError(
                        f"{where}: unknown field {k!r}; the runtime split is "
                        f"{', '.join('seconds_' + p for p in RUNTIME_PARTS)}"
                    )
                if v is not None:
                    s = _number(v, k, where)
                    if not math.isfinite(s) or s < 0:
                        raise DataError(f"{where}: field {k!r} must be seconds >= 0, got {v!r}")
                    seconds[part] = s
        labels = _sequence(d.get("labels"), "labels", where, int)
        accuracy = _sequence(d.get("accuracy"), "accuracy", where, float)
        if labels and accuracy and len(labels) != len(accuracy):
            raise DataError(
                f"{where}: fields 'labels' and 'accuracy' differ in length ({len(labels)} and {len(accuracy)})"
            )
        lt = d.get("long_tailed", False)
        if not isinstance(lt, (bool, np.bool_)):
            raise DataError(f"{where}: field 'long_tailed' must be true or false, got {lt!r}")
        return cls(
            setting=text["setting"],
            method=text["method"],
            seed=_seed(d["seed"], where),
            aubc=_fraction(d["aubc"], "aubc", where),
            final_accuracy=_fraction(d["final_accuracy"], "final_accuracy", where),
            final_balanced_accuracy=_optional_fraction(
                d.get("final_balanced_accuracy"), "final_balanced_accuracy", where
            ),
            aubc_balanced=_optional_fraction(d.get("aubc_balanced"), "aubc_balanced", where),
            long_tailed=bool(lt),
            labels=tuple(labels),
            accuracy=tuple(accuracy),
            seconds=seconds,
        )


def _number(v: Any, name: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating, str)):
        raise DataError(f"{where}: field {name!r} must be a number, got {v!r}")
    try:
        return float(v)
    except ValueError:
        raise DataError(f"{where}: field {name!r} must be a number, got {v!r}") from None


def _fraction(v: Any, name: str, where: str) -> float:
    x = _number(v, name, where)
    if not (math.isfinite(x) and 0.0 <= x <= 1.0):
        raise DataError(f"{where}: field {name!r} must be a finite number in [0, 1], got {v!r}")
    return x


def _optional_fraction(v: Any, name: str, where: str) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return _fraction(v, name, where)


def _seed(v: Any, where: str) -> int:
    """An int, an integral float or a decimal string (MLflow keeps params as strings)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    raise DataError(f"{where}: field 'seed' must be an integer, got {v!r}")


def _sequence(v: Any, name: str, where: str, kind: type) -> list:
    if v is None:
        return []
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        raise DataError(f"{where}: field {name!r} must be a list of numbers, got {v!r}")
    out = []
    for i, x in enumerate(v):
        num = _number(x, f"{name}[{i}]", where)
        if kind is int and not num.is_integer():
            raise DataError(f"{where}: field '{name}[{i}]' must be an integer, got {x!r}")
        out.append(kind(num))
    return out


def method_name(arm: str, setting: str | None) -> str:
    """The method an arm stands for across settings: the arm's label without its setting part
    (``setting=digits,strategy=margin`` → ``margin``)."""
    parts = [
        p
        for p in str(arm).split(",")
        if not (p.startswith("setting=") and (setting is None or p == f"setting={setting}"))
    ]
    if len(parts) == 1 and parts[0].startswith("strategy="):
        return parts[0].split("=", 1)[1]
    return ",".join(parts) or str(arm)


def as_runs(runs: Iterable[MatrixRun | Mapping[str, Any]]) -> list[MatrixRun]:
    """Records as :class:`MatrixRun` (dicts validated, named by their position)."""
    return [r if isinstance(r, MatrixRun) else MatrixRun.from_dict(r, f"run record {i}") for i, r in enumerate(runs)]


def merge_runs(*groups: Iterable[MatrixRun | Mapping[str, Any]]) -> list[MatrixRun]:
    """Concatenate groups of runs; a later run of the same (setting, method, seed) replaces an
    earlier one (a re-run supersedes the original)."""
    out: dict[tuple[str, str, int], MatrixRun] = {}
    for g in groups:
        for r in as_runs(g):
            out.pop((r.setting, r.method, r.seed), None)
            out[(r.setting, r.method, r.seed)] = r
    return list(out.values())


#: the legacy files' method names that the sweeps name otherwise (the paper formulation is the
#: sweep's strategy option ``autoal_paper``)
LEGACY_METHOD_NAMES = {"autoal[paper]": "autoal_paper"}


def read_jsonl_runs(
    path: str | Path, long_tailed: Sequence[str] = LEGACY_LONG_TAILED, rename: Mapping[str, str] | None = None
) -> list[MatrixRun]:
    """The runs of a JSON-lines file of ``bench/gpu_quality.py`` or the legacy ``bench/quality.py``
    (one run a line, e.g. ``bench/reference/quality_runs_2026-11-30.jsonl``) as records, each
    read by :func:`run_from_record`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"{path}: cannot read the runs file ({e.strerror or e})") from None
    runs = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {no}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        runs.append(run_from_record(rec, where, long_tailed, rename))
    return runs


def run_from_record(
    rec: Mapping[str, Any],
    where: str = "run record",
    long_tailed: Sequence[str] = LEGACY_LONG_TAILED,
    rename: Mapping[str, str] | None = None,
) -> MatrixRun:
    """One JSON-lines record as :func:`read_jsonl_runs` reads it: long-tailed by its own
    ``long_tailed`` field where it has one, else when its setting is named in ``long_tailed``;
    methods renamed by ``rename`` (e.g. :data:`LEGACY_METHOD_NAMES`). The runtime fields (per-round
    means, overlapping parts) are not a disjoint split and are left out."""
    keep = {k: rec[k] for k in (*_REQUIRED, *_OPTIONAL) if k in rec}
    if "setting" in keep and "long_tailed" not in keep:
        keep["long_tailed"] = keep["setting"] in long_tailed
    if rename and keep.get("method") in rename:
        keep["method"] = rename[keep["method"]]
    return MatrixRun.from_dict(keep, where)
