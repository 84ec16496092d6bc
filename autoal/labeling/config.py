"""What a labeling project is configured by (:class:`LabelingConfig`), its file names and the results
of its commands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoal.bounds import bounded, choice
from autoal.config import MAX_IMAGE_SIZE
from autoal.data.base import AUGMENTATIONS
from autoal.errors import ConfigError
from autoal.typed_config import build_typed, check_typed
from autoal.writable import file_in_the_way
from autoal.paths import user_path


STATE_NAME = "labels.json"
CSV_COLUMNS = ("sample_id", "file_path", "score", "label")
STATE_VERSION = 1
MAX_LISTED = 20


@dataclass
class LabelingConfig:
    """Where the images and the project are, how the seed is given, how images are read. Types and
    ranges are declared on the fields (:mod:`autoal.typed_config`); :meth:`validate` adds the
    rest (the project is required, paths are paths, class names distinct)."""

    images: str | None = None
    project: str | None = None
    seed_csv: str | None = None
    classes: list[str] | None = None
    image_size: int = bounded(32, 4, MAX_IMAGE_SIZE, note="pixels")
    channels: int = choice(3, (1, 3), note="1: grayscale, 3: RGB")
    augmentation: str = choice("crop_flip", AUGMENTATIONS)
    allow_partial: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "LabelingConfig":
        out = build_typed(cls, d, "labeling.")  # unknown keys, types, ranges and choices
        out.validate()
        return out

    def validate(self) -> None:
        check_typed(self, "labeling.")
        if not self.project:
            raise ConfigError("labeling.project: required (the folder where autoal keeps the labeling project)")
        for key in ("project", "images", "seed_csv"):
            v = getattr(self, key)
            if v is not None and (not v.strip() or "\x00" in v):
                raise ConfigError(f"labeling.{key}: expected a path; got {v!r:.80}")
        self._check_paths()
        if self.classes is not None:
            if not all(isinstance(c, str) and c.strip() for c in self.classes):
                raise ConfigError(f"labeling.classes: expected a list of non-empty names; got {self.classes!r:.80}")
            if len(set(self.classes)) != len(self.classes):
                raise ConfigError(f"labeling.classes: names must be distinct; got {list(self.classes)}")

    def _check_paths(self) -> None:
        """Folders where folders belong and a file where a file does (what does not exist yet is
        the project's to create or to report): nothing is created."""
        blocker = file_in_the_way(self.project)
        if blocker is not None:
            project = user_path(self.project)
            what = "is a file" if blocker == project.absolute() else f"cannot be created: {blocker} is a file"
            raise ConfigError(f"labeling.project: {project} {what}; expected the project folder (created if missing)")
        for key, want_dir, expected in (
            ("images", True, "the folder of images"),
            ("seed_csv", False, "a CSV file of file,label rows"),
        ):
            value = getattr(self, key)
            if value is None:
                continue
            path = user_path(value)
            if path.exists() and path.is_dir() != want_dir:
                raise ConfigError(
                    f"labeling.{key}: {path} is a {'file' if want_dir else 'folder'}; expected {expected}"
                )


@dataclass
class ExportResult:
    round: int
    csv: Path
    sample_ids: list[int]
    files: list[str]
    scores: list[float]
    already_pending: bool = False
    tracking_error: str | None = None
    thumbnails: Path | None = None  # a PNG grid of the batch's images, beside the CSV


@dataclass
class ImportResult:
    round: int
    added: int
    returned_to_pool: int
    labeled_total: int
    agreement: float | None
    tracking_error: str | None = None
