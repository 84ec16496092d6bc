"""Pool subsampling and long-tailed pools for any data set, applied after its loader.

``dataset.imbalance_ratio`` R (1 = off) turns the pool (train split only) into a long-tailed
one by the CIFAR-10-LT construction (Cui et al., CVPR 2019; Cao et al., NeurIPS 2019): with the
C classes in a seeded order, the class at rank r = 0..C-1 keeps
``floor(n_max * R ** (-r / (C - 1)))`` of its samples, drawn at random, where ``n_max`` is the
smallest class count of the pool (so that every class can supply its quota). The largest class
then holds about R times as many samples as the smallest.

``dataset.train_size`` / ``dataset.test_size`` (null = all) then draw a stratified subsample of
the pool / the test split: per class a share proportional to its count (largest remainders
rounded up), at least one sample per class, drawn at random. The long tail comes first, so the
subsample keeps its profile.

Every draw comes from ``dataset.subset_seed``, a property of the data set and not the AL seed:
every AL seed sees the same pool. The class order, the long-tail draws, the pool subsample and
the test subsample use separate streams of that seed, so that setting ``train_size`` changes
neither the class order nor the long tail.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from autoal.data.base import ALDataset
from autoal.errors import ConfigError

if TYPE_CHECKING:
    from autoal.data.registry import DataSpec

_ORDER, _TAIL, _POOL, _TEST = range(4)  # independent streams of subset_seed


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def class_order(num_classes: int, seed: int) -> np.ndarray:
    """The long tail's class order for ``subset_seed=seed``: element r is the class at rank r
    (rank 0 keeps the most samples)."""
    return _rng(seed, _ORDER).permutation(num_classes)


def long_tail_quotas(n_max: int, ratio: float, num_classes: int) -> list[int]:
    """Samples kept at rank r = 0..C-1: floor(n_max * ratio ** (-r / (C - 1)))."""
    steps = max(num_classes - 1, 1)
    # the small epsilon keeps an exact product (e.g. 100 * 10 ** -1) from flooring one below
    return [math.floor(n_max * ratio ** (-r / steps) + 1e-9) for r in range(num_classes)]


def long_tail_indices(y: np.ndarray, num_classes: int, ratio: float, seed: int, name: str) -> np.ndarray:
    """Sorted indices of ``y`` kept by the long-tailed profile of ``ratio``."""
    counts = np.bincount(y, minlength=num_classes)
    n_max = int(counts.min())
    if n_max == 0:
        raise ConfigError(
            f"dataset.imbalance_ratio: the {name} pool has no sample of class {int(counts.argmin())}; "
            "a long-tailed profile needs every class in the pool"
        )
    if n_max / ratio < 1:
        raise ConfigError(
            f"dataset.imbalance_ratio: {ratio:g} would leave a class of the {name} pool empty: its "
            f"smallest class (class {int(counts.argmin())}) has n_max = {n_max} samples and "
            f"n_max / R = {n_max / ratio:.3g} < 1; use a ratio <= {n_max}"
        )
    rng = _rng(seed, _TAIL)
    quotas = long_tail_quotas(n_max, ratio, num_classes)
    order = class_order(num_classes, seed)
    keep = [rng.choice(np.flatnonzero(y == c), q, replace=False) for c, q in zip(order, quotas)]
    return np.sort(np.concatenate(keep))


def stratified_quotas(counts: np.ndarray, size: int) -> np.ndarray:
    """Per-class sample counts summing to ``size``, proportional to ``counts`` (floors, then +1
    for the largest remainders), with at least one for every class present."""
    counts = np.asarray(counts, dtype=np.int64)
    exact = counts * (size / counts.sum())
    quotas = np.floor(exact).astype(np.int64)
    short = size - int(quotas.sum())
    quotas[np.argsort(-(exact - quotas), kind="stable")[:short]] += 1
    for c in np.flatnonzero((quotas == 0) & (counts > 0)):
        quotas[int(np.argmax(quotas))] -= 1  # size >= classes present: the largest quota is >= 2
        quotas[c] = 1
    return quotas


def stratified_indices(y: np.ndarray, num_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a stratified random subsample of ``size`` from ``y``."""
    quotas = stratified_quotas(np.bincount(y, minlength=num_classes), size)
    keep = [rng.choice(np.flatnonzero(y == c), q, replace=False) for c, q in enumerate(quotas) if q]
    return np.sort(np.concatenate(keep))


def _check_size(key: str, size: int, available: int, num_classes: int, what: str) -> None:
    if size > available:
        raise ConfigError(f"dataset.{key}: {size} is larger than {what} ({available} samples)")
    if size < num_classes:
        raise ConfigError(
            f"dataset.{key}: {size} is smaller than the number of classes ({num_classes}); "
            "a stratified subsample keeps at least one sample per class"
        )


def apply_subsets(ds: ALDataset, spec: DataSpec) -> ALDataset:
    """The data set with its pool long-tailed and/or subsampled and its test split subsampled
    as ``spec`` asks; ``ds`` itself when it asks for nothing."""
    ratio = float(spec.imbalance_ratio)
    if ratio == 1.0 and spec.train_size is None and spec.test_size is None:
        return ds
    y_pool, y_test = ds.y_train.numpy(), ds.y_test.numpy()
    pool, test = np.arange(len(y_pool)), np.arange(len(y_test))
    what = f"the pool of {ds.name}"
    if ratio != 1.0:
        pool = long_tail_indices(y_pool, ds.num_classes, ratio, spec.subset_seed, ds.name)
        what += f" after dataset.imbalance_ratio={ratio:g}"
    if spec.train_size is not None:
        _check_size("train_size", spec.train_size, len(pool), ds.num_classes, what)
        pool = pool[stratified_indices(y_pool[pool], ds.num_classes, spec.train_size, _rng(spec.subset_seed, _POOL))]
    if spec.test_size is not None:
        _check_size("test_size", spec.test_size, len(test), ds.num_classes, f"the test split of {ds.name}")
        test = stratified_indices(y_test, ds.num_classes, spec.test_size, _rng(spec.subset_seed, _TEST))
    return take(ds, pool, test)


def take(ds: ALDataset, pool: np.ndarray, test: np.ndarray) -> ALDataset:
    """A new data set of the given pool and test rows (normalization statistics and ``info``
    recomputed from the new pool)."""
    p, t = torch.from_numpy(pool), torch.from_numpy(test)
    return dataclasses.replace(
        ds,
        x_train=ds.x_train[p],
        y_train=ds.y_train[p],
        x_test=ds.x_test[t],
        y_test=ds.y_test[t],
        paths=None if ds.paths is None else [ds.paths[i] for i in pool],
    )
