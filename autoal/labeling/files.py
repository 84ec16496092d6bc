"""The files of a labeling project: scanning an image folder, reading a filled-in CSV (every problem
listed with its row and field) and writing a batch CSV."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoal.containment import inside
from autoal.errors import DataError, LabelFileError
from autoal.labeling.config import CSV_COLUMNS, MAX_LISTED


@dataclass
class Row:
    line: int
    sample_id: int
    label: str


@dataclass
class Problems:
    source: Path
    items: list[str] = field(default_factory=list)

    def add(self, line: int | None, fld: str, msg: str) -> None:
        where = f"row {line}, " if line is not None else ""
        self.items.append(f"{where}field '{fld}': {msg}")

    def raise_if_any(self, what: str = "") -> None:
        if not self.items:
            return
        shown = self.items[:MAX_LISTED]
        more = len(self.items) - len(shown)
        head = f"{self.source}: {len(self.items)} problem(s){what}; nothing was imported"
        body = "\n  ".join(shown + ([f"... and {more} more"] if more else []))
        raise LabelFileError(f"{head}:\n  {body}")


#: what to do about an image that lies outside the images folder (autoal.containment)
IMAGE_LINK_FIX = (
    "a labeling project reads images only inside labeling.images: copy the file into the folder instead "
    "of linking it, or set labeling.images to a folder that holds it"
)


def scan_images(
    folder: Path, exts: set[str], exclude: Path | None = None, prefix: str | None = None, root: Path | None = None
) -> list[str]:
    """Sorted image files under ``folder`` (any depth, hidden skipped) as posix paths relative to
    ``folder`` (with ``prefix/`` in front when given), leaving out ``exclude`` (the project). A
    file (or a linked folder) whose link leads outside ``root`` (the images folder; default
    ``folder``) is a DataError naming it (:func:`~autoal.containment.inside`)."""
    out = []
    for f in folder.rglob("*"):
        if not f.is_file() or f.suffix.lower() not in exts:
            continue
        rel = f.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        inside(
            root if root is not None else folder,
            f,
            what="labeling.images: the image",
            fix=IMAGE_LINK_FIX,
            error=DataError,
        )
        if exclude is not None and f.resolve().is_relative_to(exclude):
            continue
        name = rel.as_posix()
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in the name (os.fsdecode's surrogates)
            raise LabelFileError(
                f"{f.parent}: the image file name {os.fsencode(f.name)!r} is not valid UTF-8; "
                "labeling state and batch CSVs are UTF-8: rename the file"
            ) from None
        out.append(f"{prefix}/{name}" if prefix else name)
    return sorted(out)


class CheckedRows:
    """A ``csv.DictReader`` whose iteration turns the csv module's own errors (a field over its
    size limit, a NUL byte, an unterminated quote) into a LabelFileError naming the file and the
    row; ``line_num`` as the reader's."""

    def __init__(self, reader: csv.DictReader, path: Path) -> None:
        self.reader = reader
        self.path = path

    @property
    def line_num(self) -> int:
        return self.reader.line_num

    def __iter__(self):
        while True:
            try:
                row = next(self.reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise LabelFileError(
                    f"{self.path}: row {self.reader.line_num + 1}: not a CSV row ({e}); a label "
                    "cell holds one class name"
                ) from None
            yield row


def read_csv(path: Path, raw: bytes, required: tuple[str, ...]) -> tuple[CheckedRows, list[str]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelFileError(f"{path}: not UTF-8 text ({e}); save the file as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise LabelFileError(f"{path}: row 1: not a CSV header ({e})") from None
    reader.fieldnames = header
    if not header:
        raise LabelFileError(f"{path}: the file is empty; expected a header row with columns {', '.join(required)}")
    if len(set(header)) != len(header):
        raise LabelFileError(f"{path}: row 1: duplicate column names in the header {header}")
    missing = [c for c in required if c not in header]
    if missing:
        raise LabelFileError(
            f"{path}: row 1: missing column(s) {', '.join(repr(m) for m in missing)} "
            f"(field {missing[0]!r}); the header is {header}, expected at least {', '.join(required)}"
        )
    return CheckedRows(reader, path), header


def batch_csv(ids: list[int], files: list[str], scores: Any) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for i, f, s in zip(ids, files, scores):
        w.writerow([i, f, f"{float(s):.6g}", ""])
    return buf.getvalue().encode("utf-8")


def same_file(given: str, exported: str, root: Path) -> bool:
    """Whether a CSV's ``file_path`` names the exported image ``exported`` (relative to the images
    folder ``root``): relative to ``root`` as exported, or absolute (the form older versions
    wrote), compared once ``.``/``..`` are applied."""
    if given == exported:
        return True
    p = Path(given)
    if not p.is_absolute():
        p = root / p
    return os.path.normpath(p) == os.path.normpath(root / exported)
