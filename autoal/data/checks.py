"""Whether a data set's classes can give a meaningful active-learning result.

Refused (:class:`~autoal.errors.DataError`): a pool with fewer than two classes (nothing to
tell apart: margin, entropy and every other score are undefined), and class ids with no image in
either split (empty slots of the model's head: labels must be 0..K-1). Warned
(:class:`~autoal.errors.DataWarning`): a test class the pool lacks (the model can never predict
it, so accuracy has a ceiling below 1) and a pool class the test split lacks (its learning is
never measured). Pure functions of the label vectors; the loaders call them while the data is
loaded, before a run writes anything.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch

from autoal.errors import DataError, DataWarning

#: how many class ids or names a message lists before it counts the rest
LISTED = 10


def listing(items: Sequence[Any], limit: int = LISTED) -> str:
    """``a, b, c`` — the first ``limit`` items, then ``and N more``."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit:,} more" if len(items) > limit else "")


def present_classes(y: torch.Tensor, num_classes: int) -> list[int]:
    """The class ids that hold at least one label of ``y``, sorted."""
    if not len(y):
        return []
    return torch.nonzero(torch.bincount(y, minlength=num_classes)).flatten().tolist()


def check_pool_classes(
    y_train: torch.Tensor, num_classes: int, where: str, classes: Sequence[str] | None = None
) -> None:
    """DataError unless the pool holds at least two classes."""
    pool = present_classes(y_train, num_classes)
    if len(pool) >= 2:
        return
    if not pool:
        raise DataError(f"{where}: the pool holds no labeled image; need images of at least 2 classes")
    name = classes[pool[0]] if classes and pool[0] < len(classes) else None
    which = f"class {pool[0]}" + (f" ({name!r})" if name is not None and name != str(pool[0]) else "")
    raise DataError(
        f"{where}: the pool holds a single class (every label is {which}); need images of at least "
        f"2 classes to learn and to query"
    )


def check_no_empty_classes(
    y_train: torch.Tensor, y_test: torch.Tensor, num_classes: int, where: str, explicit: bool = False
) -> None:
    """DataError naming the class ids in 0..num_classes-1 that no image of either split holds
    (labels must be 0..K-1: an empty id is an output of the model that nothing trains or tests).
    ``explicit``: ``num_classes`` was given by the user (``dataset.options.num_classes``)."""
    seen = set(present_classes(y_train, num_classes)) | set(present_classes(y_test, num_classes))
    missing = [c for c in range(num_classes) if c not in seen]
    if not missing:
        return
    k = len(seen)
    origin = (
        f"dataset.options.num_classes={num_classes}"
        if explicit
        else f"the largest label {num_classes - 1} (classes are inferred as 0..max label)"
    )
    raise DataError(
        f"{where}: class id(s) {listing(missing)} have no image in either split ({len(missing):,} of "
        f"{num_classes:,} ids from {origin}; labels found: {listing(sorted(seen))}); labels must be "
        f"0..K-1 with every class present: relabel them to 0..{k - 1}"
    )


def coverage_warnings(
    y_train: torch.Tensor, y_test: torch.Tensor, num_classes: int, classes: Sequence[str]
) -> list[str]:
    """One sentence per problem: test classes absent from the pool, pool classes absent from the
    test split (named ``name (id)``). None when the test split is empty (no test split to compare:
    a labeling project)."""
    if not len(y_test) or not len(y_train):
        return []
    pool, test = set(present_classes(y_train, num_classes)), set(present_classes(y_test, num_classes))

    def names(ids: list[int]) -> str:
        return listing(
            [f"{classes[c]!r} (id {c})" if c < len(classes) and classes[c] != str(c) else f"id {c}" for c in ids]
        )

    out = []
    only_test = sorted(test - pool)
    if only_test:
        out.append(
            f"test class(es) {names(only_test)} have no image in the pool: the model can never learn "
            f"them, so test accuracy cannot exceed {1 - _share(y_test, only_test):.3f}"
        )
    only_pool = sorted(pool - test)
    if only_pool:
        out.append(
            f"pool class(es) {names(only_pool)} have no image in the test split: how well the model "
            "learns them is never measured"
        )
    return out


def _share(y: torch.Tensor, ids: list[int]) -> float:
    return float(torch.isin(y, torch.tensor(ids, dtype=y.dtype)).float().mean())


def warn_data(name: str, source: str, messages: Sequence[str], stacklevel: int = 3) -> None:
    """Each message as a :class:`DataWarning` naming the data set (and what was read)."""
    where = f"{name} ({source})" if source else name
    for m in messages:
        warnings.warn(f"{where}: {m}", DataWarning, stacklevel=stacklevel)
