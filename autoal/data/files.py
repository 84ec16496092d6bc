"""A user's own data: an image folder (``folder``) or a NumPy archive (``npz``).

``folder`` (``dataset.path`` required)::

    <path>/<class_a>/*.png|jpg|...     one sub-folder per class; sorted folder names = classes
    <path>/<class_b>/...

or, with a fixed test split::

    <path>/train/<class_a>/...   <path>/test/<class_a>/...

Options: ``image_size`` (default 32; every image is resized to this square with bilinear
resampling, aspect ratio not kept), ``channels`` (3 = RGB, default; 1 = grayscale),
``test_fraction`` (default 0.2) and ``split_seed`` (default 0) for the stratified split when
there are no ``train``/``test`` folders, ``augmentation`` (default ``crop_flip``), ``workers``
(threads decoding images, default min(8, CPUs)). Files whose extension PIL cannot read and
hidden files are skipped; a file with an image extension that fails to decode is a DataError,
and so is one whose pixels an 8-bit conversion would not keep (16-bit, 32-bit integer or float
images: PIL modes ``I;16*``, ``I``, ``F``, and any mode not in :data:`FAITHFUL_MODES`). At
least two class folders.

``npz`` (``dataset.path`` required): keys ``x_train, y_train, x_test, y_test``; images
(N,H,W), (N,H,W,C) or (N,C,H,W) (any channel count; uint8 pixels, or floats kept as float32),
or features (N, D) (kept as float32); integer labels (:func:`~autoal.data.base.to_samples`;
standardized per channel / feature with the pool's mean and std). Options:
``num_classes`` (default max label + 1 over both splits), ``classes`` (list of names),
``augmentation`` (default ``none``). Labels must be 0..K-1 with every class holding an image
in one split or the other, and the pool must hold at least two classes
(:mod:`autoal.data.checks`).
"""

from __future__ import annotations

import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from autoal.api_marker import public_api
from autoal.data.base import AUGMENTATIONS, ALDataset, to_labels, to_samples
from autoal.data.checks import check_no_empty_classes, check_pool_classes
from autoal.data.registry import DataSpec, register_dataset
from autoal.errors import ConfigError, DataError, DatasetNotFoundError
from autoal.progress import track
from autoal.paths import user_path

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: the largest image (width x height) the loaders decode: checked from the file's header, so a
#: decompression bomb is refused before it allocates anything (PIL's own limit is a warning)
MAX_IMAGE_PIXELS = 50_000_000
#: the most classes a data set may have (a stray label of 10**9 would size (N, C) arrays)
MAX_CLASSES = 100_000
#: PIL modes whose conversion to 8-bit RGB or grayscale keeps every pixel's value (8-bit channels,
#: bilevel, palette; an alpha channel is dropped). Others (16-bit ``I;16*``, 32-bit ``I``, float
#: ``F``, ...) would be clipped to 0..255 by PIL's conversion, so they are refused.
FAITHFUL_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})


# ---------------------------------------------------------------------------------------------
# helpers shared with autoal.data.vision
# ---------------------------------------------------------------------------------------------


def augmentation_option(spec: DataSpec, default: str) -> str:
    """``options.augmentation`` if given (validated), else the loader's default."""
    aug = spec.options.get("augmentation", default)
    if aug not in AUGMENTATIONS:
        raise ConfigError(f"dataset.options.augmentation: {aug!r} is not one of {', '.join(AUGMENTATIONS)}")
    return str(aug)


def int_option(spec: DataSpec, key: str, default: int, minimum: int | None = None) -> int:
    value = spec.options.get(key, default)
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"dataset.options.{key}: expected an integer, got {value!r}") from None
    if isinstance(value, float) and value != out:
        raise ConfigError(f"dataset.options.{key}: expected an integer, got {value!r}")
    if minimum is not None and out < minimum:
        raise ConfigError(f"dataset.options.{key}: must be >= {minimum}, got {out}")
    return out


def image_extensions() -> set[str]:
    """Lower-case file extensions (with dot) that PIL can open."""
    from PIL import Image

    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _progress(iterable, total: int, desc: str):
    """Decoding progress for 500 images or more, by :mod:`autoal.progress`'s rule: a bar on a
    terminal, in a log a line a minute at most while decoding runs that long."""
    return track(iterable, total, desc, enabled=total >= 500, unit="img")


def load_image_files(
    paths: Sequence[str | os.PathLike], size: int, channels: int, desc: str = "images", workers: int | None = None
) -> np.ndarray:
    """Decode image files into one uint8 array (N, C, size, size); RGB (channels=3) or
    grayscale (channels=1); resized (bilinear) when not already ``size`` x ``size``.
    Raises DataError naming the first file that cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ConfigError(f"dataset.options.channels: must be 1 or 3, got {channels}")
    mode = "RGB" if channels == 3 else "L"
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)

    def read(i: int) -> None:
        p = paths[i]
        try:
            with Image.open(p) as im:  # reads the header only: the size is known before any decoding
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"image file {p} is {w}x{h} = {w * h:,} pixels; autoal decodes at most "
                        f"{MAX_IMAGE_PIXELS:,} pixels per image (downscale it first)"
                    )
                if im.mode not in FAITHFUL_MODES:
                    raise DataError(
                        f"image file {p} has PIL mode {im.mode!r} ({_mode_words(im.mode)}); autoal reads "
                        "8-bit images only and would flatten its values: convert it to 8-bit (mode L or "
                        "RGB, scaled to 0..255) first"
                    )
                im = im.convert(mode)
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except Image.DecompressionBombError as exc:  # PIL refuses at open beyond twice its own limit
            raise DataError(
                f"image file {p} is too large to decode (more than {MAX_IMAGE_PIXELS:,} pixels: {exc})"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"cannot read image file {p}: {exc}") from exc
        out[i] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 64:
        for i in _progress(range(len(paths)), len(paths), desc):
            read(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in _progress(pool.map(read, range(len(paths))), len(paths), desc):
                pass
    return out


def _mode_words(mode: str) -> str:
    if mode.startswith("I;16"):
        return "16-bit integer pixels"
    if mode == "I":
        return "32-bit integer pixels"
    if mode == "F":
        return "32-bit float pixels"
    return "a mode without a faithful 8-bit RGB or grayscale conversion"


def check_same_geometry(name: str, x_train: torch.Tensor, x_test: torch.Tensor) -> None:
    if tuple(x_train.shape[1:]) != tuple(x_test.shape[1:]):
        what = {2: "features (D)", 4: "images (C,H,W)"}
        raise DataError(
            f"{name}: x_train holds {what.get(x_train.ndim, 'samples')} of shape {tuple(x_train.shape[1:])} "
            f"but x_test {what.get(x_test.ndim, 'samples')} of shape {tuple(x_test.shape[1:])}; both splits "
            "must match"
        )


# ---------------------------------------------------------------------------------------------
# folder
# ---------------------------------------------------------------------------------------------


def _list_class_images(root: Path, exts: set[str]) -> dict[str, list[Path]]:
    """{class folder name: sorted image files} for each sub-folder of ``root``."""
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            f for f in d.rglob("*") if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in exts
        )
        out[d.name] = files
    return out


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, ``round(n * fraction)`` samples go to test (at least 1 when the class has 2+
    samples, never all of them). Returns sorted (pool, test) index arrays."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = len(idx)
        k = int(round(n * fraction))
        k = min(max(k, 1 if n >= 2 else 0), n - 1)
        test.append(idx[:k])
        pool.append(idx[k:])
    return np.sort(np.concatenate(pool)), np.sort(np.concatenate(test))


def _folder_root(spec: DataSpec) -> Path:
    """dataset.path, resolved; an error unless it names an existing folder."""
    if spec.path is None:
        raise ConfigError("dataset.path is required for dataset=folder")
    root = user_path(spec.path).resolve()
    if not root.exists():
        raise DatasetNotFoundError(
            f"dataset=folder: folder {root} does not exist; set dataset.path to a folder "
            "with one sub-folder of images per class"
        )
    if not root.is_dir():
        raise DataError(f"dataset=folder: {root} is not a folder")
    return root


def _folder_classes(train_root: Path, exts: set[str]) -> tuple[list[str], dict[str, list[Path]]]:
    """The class sub-folders of ``train_root`` (at least 2, each holding images) and their files."""
    per_class = _list_class_images(train_root, exts)
    if not per_class:
        raise DataError(
            f"dataset=folder: {train_root} has no class sub-folders; expected one sub-folder of images per class"
        )
    for cls, files in per_class.items():
        if not files:
            raise DataError(
                f"dataset=folder: class folder {train_root / cls} holds no image files "
                f"(readable extensions include .png, .jpg, .jpeg, .bmp, .tif)"
            )
    classes = list(per_class)
    if len(classes) < 2:
        raise DataError(
            f"dataset=folder: {train_root} has a single class folder ({classes[0]!r}); need at least 2 "
            "class sub-folders of images"
        )
    return classes, per_class


def _folder_test_files(
    root: Path, train_root: Path, classes: list[str], exts: set[str]
) -> tuple[list[Path], np.ndarray]:
    """The files and labels of ``root/test``, whose class folders must be among ``classes``."""
    class_idx = {c: i for i, c in enumerate(classes)}
    test_classes = _list_class_images(root / "test", exts)
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise DataError(
            f"dataset=folder: {root / 'test'} has class folders {unknown} that are not in "
            f"{train_root} (classes: {classes})"
        )
    test_files = [f for c in classes for f in test_classes.get(c, [])]
    test_labels = np.array([class_idx[c] for c in classes for _ in test_classes.get(c, [])], dtype=np.int64)
    if not test_files:
        raise DataError(f"dataset=folder: {root / 'test'} holds no image files")
    return test_files, test_labels


@register_dataset("folder")
def load_folder(spec: DataSpec) -> ALDataset:
    """A folder of images, one sub-folder per class (see the module docstring)."""
    root = _folder_root(spec)
    size = int_option(spec, "image_size", 32, minimum=1)
    channels = int_option(spec, "channels", 3)
    if channels not in (1, 3):
        raise ConfigError(f"dataset.options.channels: must be 1 or 3, got {channels}")
    workers = spec.options.get("workers")
    exts = image_extensions()

    fixed_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if fixed_split else root
    classes, per_class = _folder_classes(train_root, exts)
    class_idx = {c: i for i, c in enumerate(classes)}
    train_files = [f for c in classes for f in per_class[c]]
    train_labels = np.array([class_idx[c] for c in classes for _ in per_class[c]], dtype=np.int64)

    if fixed_split:
        test_files, test_labels = _folder_test_files(root, train_root, classes, exts)
        x_tr = load_image_files(train_files, size, channels, "folder train", workers)
        x_te = load_image_files(test_files, size, channels, "folder test", workers)
        y_tr, y_te = train_labels, test_labels
        pool_files = train_files
    else:
        fraction = float(spec.options.get("test_fraction", 0.2))
        if not 0.0 < fraction < 1.0:
            raise ConfigError(f"dataset.options.test_fraction: must lie in (0, 1), got {fraction}")
        x_all = load_image_files(train_files, size, channels, "folder", workers)
        tr, te = _stratified_split(train_labels, fraction, int_option(spec, "split_seed", 0))
        if len(te) == 0:
            raise DataError(
                f"dataset=folder: too few images in {root} to hold out a test split (every class has a single image)"
            )
        x_tr, x_te = x_all[tr], x_all[te]
        y_tr, y_te = train_labels[tr], train_labels[te]
        pool_files = [train_files[i] for i in tr]

    return ALDataset(
        name=spec.name,
        x_train=torch.from_numpy(x_tr),
        y_train=torch.from_numpy(y_tr),
        x_test=torch.from_numpy(x_te),
        y_test=torch.from_numpy(y_te),
        num_classes=len(classes),
        classes=classes,
        augmentation=augmentation_option(spec, "crop_flip"),
        paths=[str(p) for p in pool_files],
        source=f"image folder {root}",
    )


# ---------------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------------


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith(b"PK"):  # an .npz is a zip archive; np.load would return a lone array
        what = "a single NumPy array (.npy)" if magic == b"\x93NUMPY" else "not a zip archive"
        raise DataError(
            f"dataset=npz: {path} is {what}; expected an .npz archive with the arrays "
            f"{', '.join(NPZ_KEYS)} (numpy.savez)"
        )
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            present = set(f.files)
            missing = [k for k in NPZ_KEYS if k not in present]
            if missing:
                raise DataError(
                    f"dataset=npz: {path} lacks key(s) {', '.join(missing)}; expected keys "
                    f"{', '.join(NPZ_KEYS)} (found: {', '.join(sorted(present)) or 'none'})"
                )
            return {k: f[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise DataError(
            f"dataset=npz: cannot read {path} as a NumPy .npz archive (keys {', '.join(NPZ_KEYS)}): {exc}"
        ) from exc


@register_dataset("npz")
def load_npz(spec: DataSpec) -> ALDataset:
    """A user's ``.npz`` with ``x_train, y_train, x_test, y_test`` (see the module docstring)."""
    if spec.path is None:
        raise ConfigError("dataset.path is required for dataset=npz")
    path = user_path(spec.path).resolve()
    if not path.is_file():
        raise DatasetNotFoundError(
            f"dataset=npz: file {path} not found; set dataset.path to a .npz file with arrays {', '.join(NPZ_KEYS)}"
        )
    arrays = _read_npz(path)
    num_classes: Any = spec.options.get("num_classes")
    if num_classes is not None:
        num_classes = int_option(spec, "num_classes", 0, minimum=2)
    classes = spec.options.get("classes")
    return dataset_from_arrays(
        spec.name,
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        where=f"dataset=npz: {path}",
        source=str(path),
        num_classes=num_classes,
        classes=None if classes is None else [str(c) for c in classes],
        augmentation=augmentation_option(spec, "none"),
    )


@public_api
def dataset_from_arrays(
    name: str,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    where: str,
    source: str,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    augmentation: str = "none",
) -> ALDataset:
    """An :class:`ALDataset` from images ((N,H,W), (N,H,W,C) or (N,C,H,W), any channel count;
    uint8 pixels, or floats kept as float32, any range) or features ((N, D), kept as float32):
    :func:`~autoal.data.base.to_samples`; every kind is standardized per channel / feature with
    the pool's mean and std (:meth:`ALDataset.eval_transform`), features are never augmented.
    Labels are integers 0..C-1. Checked: non-empty splits, as many labels as samples, one kind,
    dtype and geometry in both splits, labels in range, at least two classes in the pool, every
    class id holding an image (:mod:`autoal.data.checks`). ``where`` names the
    input in every error (a file, or the API call); ``num_classes`` defaults to the largest
    label + 1."""
    x_tr = to_samples(np.asarray(x_train), f"{where} [x_train]")
    x_te = to_samples(np.asarray(x_test), f"{where} [x_test]")
    y_tr = to_labels(np.asarray(y_train), f"{where} [y_train]")
    y_te = to_labels(np.asarray(y_test), f"{where} [y_test]")
    for key, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        noun = "images" if x.ndim == 4 else "feature rows"
        if len(x) == 0:
            raise DataError(f"{where} [x_{key}] holds no {noun}")
        if len(x) != len(y):
            raise DataError(f"{where} has {len(x)} {noun} in x_{key} but {len(y)} labels in y_{key}")
    check_same_geometry(where, x_tr, x_te)
    if x_tr.dtype != x_te.dtype:  # one split of 8-bit pixels, the other of floats: scales differ
        raise DataError(
            f"{where}: x_train holds {x_tr.dtype} pixels but x_test {x_te.dtype}; both splits must be "
            "8-bit (uint8, or integers in 0..255) or both float"
        )
    lo = min(int(y_tr.min()), int(y_te.min()))
    hi = max(int(y_tr.max()), int(y_te.max()))
    if lo < 0:
        raise DataError(f"{where} has negative labels (min {lo}); labels must be 0..num_classes-1")
    explicit = num_classes is not None
    if num_classes is None:
        if hi + 1 > MAX_CLASSES:  # the class count sizes every (N, C) array a run allocates
            raise DataError(
                f"{where} has label {hi}: without dataset.options.num_classes the classes are 0..{hi}, "
                f"more than {MAX_CLASSES:,}; labels must be class indices 0..C-1"
            )
        num_classes = hi + 1
    elif hi >= num_classes:
        raise DataError(
            f"{where} has label {hi}, out of range for num_classes={num_classes} "
            f"(dataset.options.num_classes; labels must lie in 0..{num_classes - 1})"
        )
    check_pool_classes(y_tr, num_classes, f"{where} [y_train]", classes)
    check_no_empty_classes(y_tr, y_te, num_classes, where, explicit=explicit)
    if classes is not None and len(classes) != num_classes:
        raise ConfigError(f"dataset.options.classes: {len(classes)} names given for {num_classes} classes")
    return ALDataset(
        name=name,
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        num_classes=num_classes,
        classes=list(classes or []),
        augmentation=augmentation,
        source=source,
    )
