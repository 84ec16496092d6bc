"""Registry of data sets, selected by name from config.

A loader is a function ``(spec: DataSpec) -> ALDataset``. Loaders read the official on-disk
formats from ``spec.root``; they download only when ``spec.download`` is true, and otherwise
raise :class:`~autoal.errors.DatasetNotFoundError` naming the data set, the expected path and
how to obtain it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoal.data.base import ALDataset
from autoal.data.subset import apply_subsets
from autoal.errors import ConfigError

Loader = Callable[["DataSpec"], ALDataset]
_LOADERS: dict[str, Loader] = {}


@dataclass
class DataSpec:
    """What to load: ``name`` from :func:`dataset_names`, the data ``root`` folder, whether a
    download is allowed, and loader-specific options (e.g. ``path`` for ``folder``/``npz``).

    Applied to any data set after its loader (:mod:`autoal.data.subset`): ``imbalance_ratio``
    (1 = off) makes the pool long-tailed, ``train_size`` / ``test_size`` (None = all) draw
    stratified subsamples of the pool / the test split, all seeded by ``subset_seed`` (a
    property of the data set, not the AL seed)."""

    name: str = "digits"
    root: str = "data"
    download: bool = False
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    train_size: int | None = None
    test_size: int | None = None
    imbalance_ratio: float = 1.0
    subset_seed: int = 0

    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser()

    def validate(self) -> None:
        """The subsampling fields, before any data is read (sizes against the data are checked
        when it is loaded)."""
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
                raise ConfigError(f"dataset.{key}: expected a positive integer or null (all samples); got {value!r}")
        ratio = self.imbalance_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not math.isfinite(ratio) or ratio < 1:
            raise ConfigError(f"dataset.imbalance_ratio: expected a finite number >= 1 (largest / smallest class of "
                              f"the pool; 1 = off); got {ratio!r}")
        seed = self.subset_seed
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ConfigError(f"dataset.subset_seed: expected an integer >= 0; got {seed!r}")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn
    return deco


def dataset_names() -> list[str]:
    _import_loaders()
    return sorted(_LOADERS)


def load_dataset(spec: DataSpec) -> ALDataset:
    """Load the data set ``spec.name``, then apply its long tail and subsamples; unknown names
    raise ConfigError listing the choices."""
    _import_loaders()
    if spec.name not in _LOADERS:
        raise ConfigError(f"dataset.name: unknown data set {spec.name!r}; valid choices: {', '.join(sorted(_LOADERS))}")
    spec.validate()
    return apply_subsets(_LOADERS[spec.name](spec), spec)


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
