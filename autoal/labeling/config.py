"""What a labeling project is configured by (:class:`LabelingConfig`), its file names and the results
of its commands."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoal.config import MAX_IMAGE_SIZE
from autoal.data.base import AUGMENTATIONS
from autoal.errors import ConfigError
from autoal.writable import file_in_the_way


STATE_NAME = "labels.json"
CSV_COLUMNS = ("sample_id", "file_path", "score", "label")
STATE_VERSION = 1
MAX_LISTED = 20


@dataclass
class LabelingConfig:
    """Where the images and the project are, how the seed is given, how images are read."""

    images: str | None = None
    project: str | None = None
    seed_csv: str | None = None
    classes: list[str] | None = None
    image_size: int = 32
    channels: int = 3
    augmentation: str = "crop_flip"
    allow_partial: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "LabelingConfig":
        d = dict(d or {})
        known = set(cls.__dataclass_fields__)
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ConfigError(f"labeling.{unknown[0]}: unknown config key; valid keys under labeling: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        out = cls(**d)
        out.validate()
        return out

    def validate(self) -> None:
        if not self.project:
            raise ConfigError("labeling.project: required (the folder where autoal keeps the labeling project)")
        for key in ("project", "images", "seed_csv"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, str) or not v.strip() or "\x00" in v):
                raise ConfigError(f"labeling.{key}: expected a path; got {v!r:.80}")
        self._check_paths()
        for key in ("image_size", "channels"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"labeling.{key}: expected an integer; got {v!r:.80}")
        if not 4 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ConfigError(f"labeling.image_size: must lie in [4, {MAX_IMAGE_SIZE}] pixels; got {self.image_size}")
        if self.channels not in (1, 3):
            raise ConfigError(f"labeling.channels: must be 1 (grayscale) or 3 (RGB); got {self.channels}")
        if not isinstance(self.augmentation, str) or self.augmentation not in AUGMENTATIONS:
            raise ConfigError(f"labeling.augmentation: {self.augmentation!r:.80} is not one of {', '.join(AUGMENTATIONS)}")
        if not isinstance(self.allow_partial, bool):
            raise ConfigError(f"labeling.allow_partial: expected true or false; got {self.allow_partial!r:.80}")
        if self.classes is not None:
            if not isinstance(self.classes, (list, tuple)) or not all(isinstance(c, str) and c.strip()
                                                                       for c in self.classes):
                raise ConfigError(f"labeling.classes: expected a list of non-empty names; got {self.classes!r:.80}")
            if len(set(self.classes)) != len(self.classes):
                raise ConfigError(f"labeling.classes: names must be distinct; got {list(self.classes)}")


    def _check_paths(self) -> None:
        """Folders where folders belong and a file where a file does (what does not exist yet is
        the project's to create or to report): nothing is created."""
        blocker = file_in_the_way(self.project)
        if blocker is not None:
            project = Path(self.project).expanduser()
            what = "is a file" if blocker == project.absolute() else f"cannot be created: {blocker} is a file"
            raise ConfigError(f"labeling.project: {project} {what}; expected the project folder (created if missing)")
        for key, want_dir, expected in (("images", True, "the folder of images"),
                                        ("seed_csv", False, "a CSV file of file,label rows")):
            value = getattr(self, key)
            if value is None:
                continue
            path = Path(value).expanduser()
            if path.exists() and path.is_dir() != want_dir:
                raise ConfigError(f"labeling.{key}: {path} is a {'file' if want_dir else 'folder'}; expected {expected}")


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
