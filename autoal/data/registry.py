"""Registry of data sets, selected by name from config.

A loader is a function ``(spec: DataSpec) -> ALDataset``. Loaders read the official on-disk
formats from ``spec.root``; they download only when ``spec.download`` is true, and otherwise
raise :class:`~autoal.errors.DatasetNotFoundError` naming the data set, the expected path and
how to obtain it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoal.api_marker import public_api
from autoal.bounds import bounded, check_bounds
from autoal.data.base import ALDataset
from autoal.data.checks import check_pool_classes, warn_data
from autoal.data.subset import apply_subsets
from autoal.errors import ConfigError
from autoal.registry import Registry
from autoal.paths import user_path

Loader = Callable[["DataSpec"], ALDataset]
LOADERS: Registry[Loader] = Registry("data set", "dataset.name", "autoal.data")


@public_api
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
    train_size: int | None = bounded(None, 1, note="null = all samples")
    test_size: int | None = bounded(None, 1, note="null = all samples")
    imbalance_ratio: float = bounded(1.0, 1, note="largest / smallest class of the pool; 1 = off")
    subset_seed: int = bounded(0, 0)

    @property
    def root_path(self) -> Path:
        return user_path(self.root)

    def validate(self) -> None:
        """The subsampling fields, before any data is read (sizes against the data are checked
        when it is loaded): integers where they must be, then the fields' bounds."""
        for key in ("train_size", "test_size", "subset_seed"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise ConfigError(f"dataset.{key}: expected an integer; got {value!r}")
        check_bounds(self, "dataset.")


@public_api
def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register a loader ``(spec: DataSpec) -> ALDataset`` under ``name``."""
    return LOADERS.register(name)


@public_api
def dataset_names() -> list[str]:
    return LOADERS.names()


@public_api
def load_dataset(spec: DataSpec) -> ALDataset:
    """Load the data set ``spec.name``, then apply its long tail and subsamples; unknown names
    raise ConfigError listing the choices. A pool of fewer than two classes is a DataError; test
    classes the pool lacks, or pool classes the test split lacks, a
    :class:`~autoal.errors.DataWarning` (also in ``info["class_warnings"]``)."""
    loader = LOADERS.get(spec.name)
    spec.validate()
    ds = apply_subsets(loader(spec), spec)
    check_pool_classes(ds.y_train, ds.num_classes, f"dataset={spec.name}: {ds.source or ds.name}", ds.classes)
    warn_data(ds.name, ds.source, ds.info.get("class_warnings", []))
    return ds
