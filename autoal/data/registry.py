"""Registry of data sets, selected by name from config.

A loader is a function ``(spec: DataSpec) -> ALDataset``. Loaders read the official on-disk
formats from ``spec.root``; they download only when ``spec.download`` is true, and otherwise
raise :class:`~autoal.errors.DatasetNotFoundError` naming the data set, the expected path and
how to obtain it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoal.data.base import ALDataset
from autoal.errors import ConfigError

Loader = Callable[["DataSpec"], ALDataset]
_LOADERS: dict[str, Loader] = {}


@dataclass
class DataSpec:
    """What to load: ``name`` from :func:`dataset_names`, the data ``root`` folder, whether a
    download is allowed, and loader-specific options (e.g. ``path`` for ``folder``/``npz``)."""

    name: str = "digits"
    root: str = "data"
    download: bool = False
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser()


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn
    return deco


def dataset_names() -> list[str]:
    _import_loaders()
    return sorted(_LOADERS)


def load_dataset(spec: DataSpec) -> ALDataset:
    """Load the data set ``spec.name``; unknown names raise ConfigError listing the choices."""
    _import_loaders()
    if spec.name not in _LOADERS:
        raise ConfigError(f"dataset.name: unknown data set {spec.name!r}; valid choices: {', '.join(sorted(_LOADERS))}")
    return _LOADERS[spec.name](spec)


def _import_loaders() -> None:
    # Each module registers its loaders on import.
    from autoal.data import digits  # noqa: F401
    try:
        from autoal.data import files  # noqa: F401
    except ImportError:  # pragma: no cover - modules added incrementally
        pass
    try:
        from autoal.data import vision  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    from autoal.data import mnist  # noqa: F401
