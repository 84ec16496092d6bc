"""Importing a filled-in batch CSV: every row checked against the batch waiting for labels (each
problem listed with its row and field), then the labels added to the labeled set as the round's
record (see :mod:`autoal.labeling`, "Import rules")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoal.labeling.config import MAX_LISTED
from autoal.labeling.files import Problems, Row, read_csv, same_file


@dataclass(frozen=True)
class _Batch:
    """What a row is checked against: the waiting batch of a state, its classes and images."""

    round: Any
    csv: str
    ids: list[int]
    labeled_round: dict[int, int]
    classes: list[str]
    exported_path: dict[int, str]  # relative to the images folder
    images: Path

    @classmethod
    def of(cls, st: dict[str, Any]) -> _Batch:
        pending = st["pending"]
        batch = list(pending["sample_ids"])
        return cls(
            round=pending["round"],
            csv=pending["csv"],
            ids=batch,
            labeled_round={e["sample_id"]: e["round"] for e in st["labeled"]},
            classes=list(st["classes"]),
            exported_path={i: st["pool"][i] for i in batch},
            images=Path(st["images"]),
        )


def validate_labels(csv_path: Path, raw: bytes, st: dict[str, Any], allow_partial: bool) -> list[Row]:
    """The rows of the filled-in CSV ``raw`` (read from ``csv_path``) for the batch waiting in
    ``st``; a LabelFileError listing every problem, and nothing changed, otherwise."""
    batch = _Batch.of(st)
    probs = Problems(csv_path)
    reader, header = read_csv(csv_path, raw, required=("sample_id", "label"))
    rows: list[Row] = []
    first_line: dict[int, int] = {}
    for rec in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
            continue  # blank line
        sid = _sample_id(rec, line, header, batch, first_line, probs)
        if sid is None:
            continue
        label = _label(rec, line, sid, batch, probs, allow_partial)
        if label is not None:
            rows.append(Row(line, sid, label))
    if not allow_partial:
        _check_no_row_missing(batch, first_line, probs)
    if not probs.items and not rows:
        probs.add(None, "label", "the file holds no labels")
    probs.raise_if_any()
    return rows


def _sample_id(
    rec: dict[Any, Any], line: int, header: list[str], batch: _Batch, first_line: dict[int, int], probs: Problems
) -> int | None:
    """The row's sample id when it is an id of the batch met for the first time (recorded in
    ``first_line``); else None, with the problem added to ``probs``."""
    if None in rec:
        probs.add(line, "sample_id", f"the row has more fields than the header ({len(header)} columns)")
        return None
    sid_txt = (rec.get("sample_id") or "").strip()
    try:
        sid = int(sid_txt)
    except ValueError:
        probs.add(line, "sample_id", f"{sid_txt!r} is not an integer sample id" if sid_txt else "empty")
        return None
    if sid in first_line:
        probs.add(line, "sample_id", f"{sid} appears again (first on row {first_line[sid]})")
        return None
    first_line[sid] = line
    if sid in batch.exported_path:
        return sid
    if sid in batch.labeled_round:
        probs.add(
            line,
            "sample_id",
            f"{sid} was already labeled in round {batch.labeled_round[sid]}; it is not "
            f"in the exported batch of round {batch.round}",
        )
    else:
        probs.add(
            line,
            "sample_id",
            f"{sid} is unknown: not in the exported batch of round {batch.round} ({batch.csv})",
        )
    return None


def _label(rec: dict[Any, Any], line: int, sid: int, batch: _Batch, probs: Problems, allow_partial: bool) -> str | None:
    """The row's label when its ``file_path`` (if any) is sample ``sid``'s and the label is a
    class; else None (an empty label under ``allow_partial``: no problem, the sample returns to
    the pool), with the problem added to ``probs``."""
    fp = (rec.get("file_path") or "").strip()
    if fp and not same_file(fp, batch.exported_path[sid], batch.images):
        probs.add(
            line,
            "file_path",
            f"{fp!r} is not the file of sample {sid} ({batch.exported_path[sid]}); were rows edited out of order?",
        )
        return None
    label = (rec.get("label") or "").strip()
    if not label:
        if not allow_partial:
            probs.add(
                line,
                "label",
                f"empty; fill in one of: {', '.join(batch.classes)} (or import with "
                "allow_partial, --allow-partial on the command line, to label the "
                "rest later)",
            )
        return None
    if label not in set(batch.classes):
        hint = [c for c in batch.classes if c.lower() == label.lower()]
        probs.add(
            line,
            "label",
            f"{label!r} is not a known class"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; known: {', '.join(batch.classes)}",
        )
        return None
    return label


def _check_no_row_missing(batch: _Batch, first_line: dict[int, int], probs: Problems) -> None:
    """A problem when samples of the batch have no row (not under ``allow_partial``)."""
    missing = [i for i in batch.ids if i not in first_line]
    if missing:
        shown = ", ".join(map(str, missing[:MAX_LISTED])) + (" ..." if len(missing) > MAX_LISTED else "")
        probs.add(
            None,
            "sample_id",
            f"{len(missing)} sample(s) of the exported batch of round "
            f"{batch.round} have no row: ids {shown} (import with allow_partial to "
            "label them later)",
        )


def add_labels(st: dict[str, Any], rows: list[Row], csv_path: Path) -> tuple[list[dict[str, Any]], float | None]:
    """Add the checked ``rows`` to the labeled set of ``st`` (in the batch's order, the score
    order), append the round's record and close the waiting batch; return (the entries added,
    how often the model's guess matched the label given, or None when none was added)."""
    pending = st["pending"]
    r = int(pending["round"])
    by_id = {e.sample_id: e for e in rows}
    predicted = dict(zip(pending["sample_ids"], pending["predicted"]))
    added = [
        {"sample_id": i, "file": st["pool"][i], "label": by_id[i].label, "round": r}
        for i in pending["sample_ids"]
        if i in by_id
    ]  # batch order = the score order
    agreement = float(np.mean([predicted[e["sample_id"]] == e["label"] for e in added])) if added else None
    st["labeled"].extend(added)
    st["rounds"].append(
        {
            "round": r,
            "labeled": len(st["labeled"]),
            "added": len(added),
            "returned_to_pool": len(pending["sample_ids"]) - len(added),
            "batch_agreement": agreement,
            "train_loss": pending.get("train_loss"),
            "strategy": pending.get("strategy"),
            "csv": str(csv_path),
        }
    )
    st["pending"] = None
    st["next_round"] = r + 1
    return added, agreement
