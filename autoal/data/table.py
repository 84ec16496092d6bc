"""Tables: a CSV or Parquet file (``table``) and scikit-learn's bundled tables (``sklearn``).

Both give feature data (:attr:`autoal.data.ALDataset.kind` ``features``): one row per sample, the
feature columns as a float32 (N, D) matrix, standardized per column with the pool's mean and std
when the model reads it (:meth:`~autoal.data.ALDataset.eval_transform`), never augmented. Class
names are the label column's distinct values (strings or numbers), sorted, mapped to 0..K-1.

``table`` (``dataset.path`` required: ``.csv``, ``.tsv``, ``.parquet`` or ``.pq``). Options:

- ``label`` (required): the label column's name;
- ``features``: the feature columns (a list; default every column but the label and split ones);
- ``split``: a column whose values are ``train`` (or ``pool``) and ``test``, a fixed split; without
  it, ``test_fraction`` (default 0.2) of each class goes to the test split, drawn with
  ``split_seed`` (default 0): the folder loader's stratified split.

Feature columns must be numeric (integers, floats, booleans as 0/1): a column of strings or
categories is refused, naming it (one-hot encode it first, e.g. ``pandas.get_dummies``, or leave
it out with ``features``). A missing value in a used column is refused, naming the column and how
many rows lack it (drop or impute those rows first).

``sklearn``: ``options.name`` one of :data:`SKLEARN_TABLES`, read from scikit-learn's bundled
copies (no download), split as above (``test_fraction`` default 0.25 here, as ``dataset=digits``).
``digits`` is the 64 pixel intensities of the 8x8 digits as a table (1,797 rows, 10 classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from autoal.data.base import ALDataset, to_labels
from autoal.data.checks import check_no_empty_classes, check_pool_classes, listing
from autoal.data.files import _stratified_split, int_option
from autoal.data.registry import DataSpec, register_dataset
from autoal.errors import ConfigError, DataError, DatasetNotFoundError
from autoal.paths import user_path

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
SPLIT_VALUES = {"train": "train", "pool": "train", "test": "test"}
#: scikit-learn's bundled tables: loader name -> load_* function name
SKLEARN_TABLES = {
    "breast_cancer": "load_breast_cancer",
    "wine": "load_wine",
    "iris": "load_iris",
    "digits": "load_digits",
}


def read_table(path: Path) -> Any:
    """A pandas DataFrame from a CSV / TSV / Parquet file; DataError when it cannot be read."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"dataset=table: {path} is not a table file; expected one of {', '.join(TABLE_SUFFIXES)}")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as exc:  # pandas raises many kinds (ParserError, ArrowInvalid, UnicodeDecodeError, ...)
        raise DataError(f"dataset=table: cannot read {path} as a {suffix[1:]} table: {exc}") from exc


def encode_labels(values: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Class ids 0..K-1 and names: the distinct values sorted (numbers numerically, otherwise as
    strings), named by their text (``1.0`` of a float column reads ``1``)."""
    arr = np.asarray(values, dtype=object)
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in arr)
    keys = arr.astype(np.float64) if numeric else arr.astype(str)
    distinct, ids = np.unique(keys, return_inverse=True)
    names = [(str(int(v)) if float(v).is_integer() else str(v)) if numeric else str(v) for v in distinct]
    return ids.astype(np.int64), names


def _table_columns(
    columns: list[str], where: str, label: Any, features: Sequence[str] | None, split: str | None
) -> tuple[str, list[str], str | None]:
    """The label, feature and split column names, each checked to be a column of the table."""

    def need(col: Any, what: str) -> str:
        if not isinstance(col, str) or col not in columns:
            raise DataError(f"{where}: {what} {col!r} is not a column of the table; columns: {listing(columns)}")
        return col

    label = need(label, "label column (dataset.options.label)")
    if split is not None:
        split = need(split, "split column (dataset.options.split)")
    if features is None:
        features = [c for c in columns if c not in (label, split)]
    else:
        if isinstance(features, str) or not all(isinstance(c, str) for c in features):
            raise ConfigError(f"dataset.options.features: expected a list of column names; got {features!r}")
        features = [need(c, "feature column (dataset.options.features)") for c in features]
        if label in features or (split is not None and split in features):
            raise ConfigError(f"dataset.options.features: lists the label or split column ({label!r})")
    if not features:
        raise DataError(f"{where}: no feature column besides the label {label!r}; columns: {listing(columns)}")
    return label, features, split


def _table_features(frame: Any, where: str, label: str, features: list[str], split: str | None) -> np.ndarray:
    """The feature columns as a float64 (N, D) matrix; an error on no rows, missing values,
    non-numeric or infinite features."""
    import pandas as pd

    if len(frame) == 0:
        raise DataError(f"{where}: the table has no rows")
    used = [label, *features] + ([split] if split is not None else [])
    missing = {c: int(frame[c].isna().sum()) for c in used}
    missing = {c: n for c, n in missing.items() if n}
    if missing:
        raise DataError(
            f"{where}: missing values in column(s) "
            + ", ".join(f"{c!r} ({n:,} of {len(frame):,} rows)" for c, n in missing.items())
            + "; drop or impute those rows first"
        )
    non_numeric = [
        c for c in features if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    if non_numeric:
        examples = ", ".join(f"{c!r} (e.g. {frame[c].iloc[0]!r})" for c in non_numeric[:5])
        raise DataError(
            f"{where}: feature column(s) {examples}{' and more' if len(non_numeric) > 5 else ''} are not "
            "numeric; one-hot encode them first (pandas.get_dummies) or list the numeric columns in "
            "dataset.options.features"
        )
    x = frame[features].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        bad = [c for c in features if not np.isfinite(frame[c].to_numpy(dtype=np.float64)).all()]
        raise DataError(f"{where}: infinite values in feature column(s) {listing(bad)}")
    return x


def _column_split(frame: Any, where: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Pool and test row indices from the ``split`` column (train / pool / test)."""
    raw = frame[split].astype(str).str.strip().str.lower()
    unknown = sorted(set(raw) - set(SPLIT_VALUES))
    if unknown:
        raise DataError(f"{where}: split column {split!r} holds {listing(unknown)}; expected train (or pool) and test")
    side = raw.map(SPLIT_VALUES).to_numpy()
    tr, te = np.flatnonzero(side == "train"), np.flatnonzero(side == "test")
    if not len(tr) or not len(te):
        raise DataError(f"{where}: split column {split!r} puts no row in the {'pool' if not len(tr) else 'test'} split")
    return tr, te


def table_dataset(
    frame: Any,
    *,
    name: str,
    where: str,
    source: str,
    label: Any,
    features: Sequence[str] | None = None,
    split: str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> ALDataset:
    """An :class:`ALDataset` of features from a DataFrame (the module docstring's rules):
    ``label`` column -> classes, ``features`` (default: the other columns) -> float32 (N, D), a
    ``split`` column or a stratified ``test_fraction`` split seeded by ``split_seed``."""
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    label, features, split = _table_columns(columns, where, label, features, split)
    x = _table_features(frame, where, label, features, split)
    y, classes = encode_labels(frame[label].tolist())
    if split is not None:
        tr, te = _column_split(frame, where, split)
    else:
        tr, te = _stratified_split(y, test_fraction, split_seed)
    y_tr, y_te = to_labels(y[tr], where), to_labels(y[te], where)
    check_pool_classes(y_tr, len(classes), where, classes)
    check_no_empty_classes(y_tr, y_te, len(classes), where)
    xf = x.astype(np.float32)
    return ALDataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(xf[tr])),
        y_train=y_tr,
        x_test=torch.from_numpy(np.ascontiguousarray(xf[te])),
        y_test=y_te,
        num_classes=len(classes),
        classes=classes,
        augmentation="none",
        source=source,
        info={"features": list(features), "label": label},
    )


def _split_options(spec: DataSpec, default_fraction: float) -> dict[str, Any]:
    fraction = spec.options.get("test_fraction", default_fraction)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < float(fraction) < 1:
        raise ConfigError(f"dataset.options.test_fraction: must lie in (0, 1); got {fraction!r}")
    return {"test_fraction": float(fraction), "split_seed": int_option(spec, "split_seed", 0, minimum=0)}


@register_dataset("table")
def load_table(spec: DataSpec) -> ALDataset:
    """A CSV / Parquet table (see the module docstring)."""
    if spec.path is None:
        raise ConfigError("dataset.path is required for dataset=table (a .csv or .parquet file)")
    label = spec.options.get("label")
    if label is None:
        raise ConfigError("dataset.options.label is required for dataset=table: the name of the label column")
    path = user_path(spec.path).resolve()
    if not path.is_file():
        raise DatasetNotFoundError(
            f"dataset=table: file {path} not found; set dataset.path to a .csv or .parquet file with one row per sample"
        )
    frame = read_table(path)
    return table_dataset(
        frame,
        name=spec.name,
        where=f"dataset=table: {path}",
        source=str(path),
        label=label,
        features=spec.options.get("features"),
        split=spec.options.get("split"),
        **_split_options(spec, 0.2),
    )


@register_dataset("sklearn")
def load_sklearn_table(spec: DataSpec) -> ALDataset:
    """One of scikit-learn's bundled tables, ``options.name`` (see the module docstring)."""
    import pandas as pd
    import sklearn
    import sklearn.datasets

    which = spec.options.get("name")
    if which not in SKLEARN_TABLES:
        raise ConfigError(
            f"dataset.options.name: expected one of {', '.join(SKLEARN_TABLES)} (scikit-learn's "
            f"bundled tables); got {which!r}"
        )
    bunch = getattr(sklearn.datasets, SKLEARN_TABLES[which])()
    names = [str(c) for c in getattr(bunch, "feature_names", range(bunch.data.shape[1]))]
    frame = pd.DataFrame(bunch.data, columns=names)
    target_names = list(getattr(bunch, "target_names", []))
    frame["label"] = [
        str(target_names[t]) if len(target_names) == int(bunch.target.max()) + 1 and which != "digits" else int(t)
        for t in bunch.target
    ]
    return table_dataset(
        frame,
        name=f"sklearn_{which}",
        where=f"dataset=sklearn ({which})",
        source=f"scikit-learn {sklearn.__version__} bundled {which}",
        label="label",
        **_split_options(spec, 0.25),
    )
