"""Public image benchmarks read from their official on-disk formats under ``dataset.root``.

==============  ===========================================================  ==============
name            expected files (under ``root``)                              augmentation
==============  ===========================================================  ==============
cifar10         ``cifar-10-batches-py/data_batch_1..5, test_batch,           crop_flip
                batches.meta`` (the python-pickle batches)
cifar100        ``cifar-100-python/train, test, meta``                       crop_flip
svhn            ``train_32x32.mat, test_32x32.mat`` (MATLAB v5)              crop
tinyimagenet    ``tiny-imagenet-200/`` (wnids.txt, train/<wnid>/images,      crop_flip
                val/images + val/val_annotations.txt; val = test split)
organcmnist     ``organcmnist.npz`` (``organcmnist_<size>.npz`` for size     crop
                other than 28)
pathmnist       ``pathmnist.npz``                                            crop_flip
tissuemnist     ``tissuemnist.npz``                                          crop
==============  ===========================================================  ==============

Checksums and sample counts
---------------------------
torchvision's CIFAR/SVHN classes refuse any file whose MD5 differs from the official archive's,
and medmnist's classes assert the official sample counts. Those checks make a correct file in
the official *format* (a subset, a re-export, a small test fixture) unreadable, and they give
messages that do not name the file. So these loaders use torchvision/medmnist only to
**download** (``dataset.download=true``; MD5-verified by torchvision) and read the official
formats themselves, validating structure (keys, dtypes, shapes, label ranges) and naming the
file at fault. Files already present are never re-downloaded. Sample counts are not compared
with the official ones unless ``options.strict_counts: true`` (MedMNIST, CIFAR, SVHN).

The CIFAR batches are Python pickles; they are read with a restricted unpickler that only
rebuilds NumPy arrays and plain containers, so a tampered file cannot run code.

Every loader accepts ``options.augmentation`` to override the default above.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from autoal.data.base import ALDataset, to_labels, to_uint8_nchw
from autoal.data.files import augmentation_option, check_same_geometry, int_option, load_image_files
from autoal.data.registry import DataSpec, register_dataset
from autoal.errors import ConfigError, DataError, DatasetNotFoundError
from autoal.extras import require

# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


def _missing(name: str, expected: str, how: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"dataset={name}: data not found; expected {expected}. {how} or set dataset.download=true "
        f"(needs network access) to fetch it into dataset.root."
    )


def _download(name: str, what: str, fn, *args, **kwargs) -> None:
    """Run a torchvision download helper, turning its failures into DataError."""
    require(f"dataset={name} with dataset.download=true", "torchvision")
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # URLError, RuntimeError (checksum), OSError, ...
        raise DataError(
            f"dataset={name}: download of {what} failed ({type(exc).__name__}: {exc}); "
            f"fetch {what} manually and put it (extracted, if an archive) under dataset.root"
        ) from exc


def _strict_counts(spec: DataSpec) -> bool:
    value = spec.options.get("strict_counts", False)
    if not isinstance(value, bool):
        raise ConfigError(f"dataset.options.strict_counts: expected true or false, got {value!r}")
    return value


def _check_count(name: str, split: str, got: int, expected: int, source: str) -> None:
    if got != expected:
        raise DataError(
            f"dataset={name}: {source} holds {got} {split} samples but the official data set has "
            f"{expected} (options.strict_counts is true)"
        )


def _labels_in_range(name: str, y: torch.Tensor, num_classes: int, source: str) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"dataset={name}: {source} has labels in [{int(y.min())}, {int(y.max())}]; expected 0..{num_classes - 1}"
        )


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python-pickle batches)
# ---------------------------------------------------------------------------------------------

CIFAR_COUNTS = {"cifar10": (50000, 10000), "cifar100": (50000, 10000)}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays, dtypes and builtin containers."""

    _NUMPY_NAMES = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer", "frombuffer"}
    _OTHER = {
        ("_codecs", "encode"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module == "numpy" or module.startswith("numpy.")) and name in self._NUMPY_NAMES:
            return super().find_class(module, name)
        if (module, name) in self._OTHER:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch file")


def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... on a corrupt file
        raise DataError(
            f"cannot read {path} as a CIFAR python-pickle batch ({type(exc).__name__}: {exc}); "
            "the file is corrupt or not from the official python version of the archive"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict (official CIFAR python format), got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    entry = _load_pickle(path)
    if "data" not in entry or label_key not in entry:
        raise DataError(f"{path}: CIFAR batch must hold keys 'data' and '{label_key}'; found {sorted(entry)}")
    data = np.asarray(entry["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: 'data' must be a uint8 array of shape (N, 3072); got {data.dtype} with shape {data.shape}"
        )
    labels = np.asarray(entry[label_key])
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: '{label_key}' must hold {len(data)} integer labels; got {labels.dtype} with shape {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _load_cifar(spec: DataSpec, name: str) -> ALDataset:
    require(f"dataset={name}", "torchvision")
    from torchvision.datasets import CIFAR10, CIFAR100

    tv = CIFAR10 if name == "cifar10" else CIFAR100
    num_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"
    folder = spec.root_path / tv.base_folder
    train_files = [f for f, _ in tv.train_list]
    test_files = [f for f, _ in tv.test_list]
    meta_file = tv.meta["filename"]
    expected = train_files + test_files

    def missing_files() -> list[str]:
        return [f for f in expected if not (folder / f).is_file()]

    if missing_files() and spec.download:
        spec.root_path.mkdir(parents=True, exist_ok=True)
        _download(
            name, tv.url, _tv_download_and_extract, tv.url, str(spec.root_path), filename=tv.filename, md5=tv.tgz_md5
        )
    lacking = missing_files()
    if lacking:
        raise _missing(
            name,
            f"the folder {folder} with files {', '.join(expected + [meta_file])} (missing: {', '.join(lacking)})",
            f"Download {tv.url} and extract it into {spec.root_path}",
        )

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_read_cifar_batch(folder / f, label_key) for f in files]
        for f, (_, y) in zip(files, parts):
            if len(y) and (y.min() < 0 or y.max() >= num_classes):
                raise DataError(f"{folder / f}: labels must lie in 0..{num_classes - 1}; found [{y.min()}, {y.max()}]")
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    x_tr, y_tr = read(train_files)
    x_te, y_te = read(test_files)
    if _strict_counts(spec):
        _check_count(name, "train", len(y_tr), CIFAR_COUNTS[name][0], str(folder))
        _check_count(name, "test", len(y_te), CIFAR_COUNTS[name][1], str(folder))

    classes: list[str] = []
    if (folder / meta_file).is_file():
        meta = _load_pickle(folder / meta_file)
        names = meta.get(tv.meta["key"])
        if names is None or len(names) != num_classes:
            raise DataError(f"{folder / meta_file}: expected key '{tv.meta['key']}' with {num_classes} class names")
        classes = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    return ALDataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr)),
        y_train=torch.from_numpy(y_tr),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te)),
        y_test=torch.from_numpy(y_te),
        num_classes=num_classes,
        classes=classes,
        augmentation=augmentation_option(spec, "crop_flip"),
        source=str(folder),
    )


def _tv_download_and_extract(url: str, root: str, filename: str, md5: str) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(url, root, filename=filename, md5=md5)


@register_dataset("cifar10")
def load_cifar10(spec: DataSpec) -> ALDataset:
    """CIFAR-10: 50,000 pool / 10,000 test 32x32 RGB images, 10 classes."""
    return _load_cifar(spec, "cifar10")


@register_dataset("cifar100")
def load_cifar100(spec: DataSpec) -> ALDataset:
    """CIFAR-100 (fine labels): 50,000 pool / 10,000 test 32x32 RGB images, 100 classes."""
    return _load_cifar(spec, "cifar100")


# ---------------------------------------------------------------------------------------------
# SVHN (MATLAB v5 files, cropped digits)
# ---------------------------------------------------------------------------------------------

SVHN_COUNTS = {"train": 73257, "test": 26032}


def _read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except Exception as exc:  # MatReadError, ValueError, OSError, NotImplementedError (v7.3/HDF5)
        raise DataError(
            f"cannot read {path} as an SVHN MATLAB file ({type(exc).__name__}: {exc}); "
            "expected the official cropped-digits file (MATLAB v5 with variables X and y)"
        ) from exc
    for key in ("X", "y"):
        if key not in mat:
            raise DataError(f"{path}: variable '{key}' missing; SVHN files hold X (32,32,3,N) and y (N,1)")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if x.ndim != 4 or x.shape[2] != 3:
        raise DataError(f"{path}: X must have shape (H, W, 3, N); got {x.shape}")
    x = to_uint8_nchw(np.transpose(x, (3, 2, 0, 1)), f"{path} [X]")
    labels = to_labels(y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y, f"{path} [y]").clone()
    if len(labels) != len(x):
        raise DataError(f"{path}: {len(x)} images in X but {len(labels)} labels in y")
    labels[labels == 10] = 0  # SVHN stores digit 0 as label 10
    _labels_in_range("svhn", labels, 10, f"{path} [y] (after mapping 10 -> 0)")
    return x, labels


@register_dataset("svhn")
def load_svhn(spec: DataSpec) -> ALDataset:
    """SVHN cropped digits: 73,257 pool / 26,032 test 32x32 RGB images, 10 classes (the
    ``extra`` split is not used)."""
    require("dataset=svhn", "torchvision")
    from torchvision.datasets import SVHN

    root = spec.root_path
    files = {split: root / SVHN.split_list[split][1] for split in ("train", "test")}
    for split, path in files.items():
        if not path.is_file() and spec.download:
            url, filename, md5 = SVHN.split_list[split]
            root.mkdir(parents=True, exist_ok=True)
            _download("svhn", url, _tv_download_url, url, str(root), filename, md5)
    lacking = [p.name for p in files.values() if not p.is_file()]
    if lacking:
        raise _missing(
            "svhn",
            f"the files {files['train']} and {files['test']} (missing: {', '.join(lacking)})",
            f"Download {SVHN.split_list['train'][0]} and {SVHN.split_list['test'][0]} into {root}",
        )
    x_tr, y_tr = _read_svhn_mat(files["train"])
    x_te, y_te = _read_svhn_mat(files["test"])
    if _strict_counts(spec):
        _check_count("svhn", "train", len(y_tr), SVHN_COUNTS["train"], str(files["train"]))
        _check_count("svhn", "test", len(y_te), SVHN_COUNTS["test"], str(files["test"]))
    check_same_geometry("svhn", x_tr, x_te)
    return ALDataset(
        name="svhn",
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        num_classes=10,
        classes=[str(i) for i in range(10)],
        augmentation=augmentation_option(spec, "crop"),
        source=f"{files['train']} and {files['test']}",
    )


def _tv_download_url(url: str, root: str, filename: str, md5: str) -> None:
    from torchvision.datasets.utils import download_url

    download_url(url, root, filename=filename, md5=md5)


# ---------------------------------------------------------------------------------------------
# Tiny ImageNet (official tiny-imagenet-200 layout; val is the test split)
# ---------------------------------------------------------------------------------------------

TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


TINY_LAYOUT = "wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt"


def _tiny_train(base: Path, wnids: list[str], idx: dict[str, int]) -> tuple[list[Path], list[int]]:
    """Tiny ImageNet's training image files and class ids, class by class in ``wnids`` order."""
    train_paths: list[Path] = []
    train_labels: list[int] = []
    for w in wnids:
        d = base / "train" / w / "images"
        files = sorted(p for p in d.glob("*") if p.is_file() and p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        if not files:
            raise DataError(f"tinyimagenet: no training images in {d} (class {w} from wnids.txt)")
        train_paths += files
        train_labels += [idx[w]] * len(files)
    return train_paths, train_labels


def _tiny_val(spec: DataSpec, base: Path, idx: dict[str, int]) -> tuple[list[Path], list[int]]:
    """Tiny ImageNet's validation image files and class ids, as ``val/val_annotations.txt`` lists them."""
    ann = base / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise _missing(
            "tinyimagenet", f"{ann} ({TINY_LAYOUT})", f"Download {TINY_URL} and unzip it into {spec.root_path}"
        )
    test_paths: list[Path] = []
    test_labels: list[int] = []
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataError(f"{ann}, line {lineno}: expected tab-separated 'filename, wnid, x, y, w, h'; got {line!r}")
        fname, w = parts[0].strip(), parts[1].strip()
        if w not in idx:
            raise DataError(f"{ann}, line {lineno}: wnid {w!r} is not listed in {base / 'wnids.txt'}")
        p = base / "val" / "images" / fname
        if not p.is_file():
            raise DataError(f"{ann}, line {lineno}: image file {p} does not exist")
        test_paths.append(p)
        test_labels.append(idx[w])
    if not test_paths:
        raise DataError(f"{ann}: lists no validation images")
    return test_paths, test_labels


def _tiny_class_names(base: Path, wnids: list[str], idx: dict[str, int]) -> list[str]:
    """The first synonym in ``words.txt`` for each wnid, else the wnid itself."""
    classes = list(wnids)
    words = base / "words.txt"
    if words.is_file():
        names: dict[str, str] = {}
        for line in words.read_text(errors="replace").splitlines():
            parts = line.split("\t", 1)
            if len(parts) == 2 and parts[0].strip() in idx:
                names[parts[0].strip()] = parts[1].split(",")[0].strip() or parts[0].strip()
        classes = [names.get(w, w) for w in wnids]
    return classes


@register_dataset("tinyimagenet")
def load_tinyimagenet(spec: DataSpec) -> ALDataset:
    """Tiny ImageNet: 100,000 pool (train) / 10,000 test (val) 64x64 RGB images, 200 classes.

    Class index = position of the wnid in the sorted ``wnids.txt``; class names are the first
    synonym in ``words.txt`` when present, else the wnid. Options: ``image_size`` (default 64),
    ``workers`` (decoding threads).
    """
    base = spec.root_path / "tiny-imagenet-200"
    if not (base / "wnids.txt").is_file() and spec.download:
        spec.root_path.mkdir(parents=True, exist_ok=True)
        _download(
            "tinyimagenet",
            TINY_URL,
            _tv_download_and_extract,
            TINY_URL,
            str(spec.root_path),
            filename="tiny-imagenet-200.zip",
            md5=TINY_MD5,
        )
    if not base.is_dir() or not (base / "wnids.txt").is_file():
        raise _missing(
            "tinyimagenet",
            f"the folder {base} holding {TINY_LAYOUT}",
            f"Download {TINY_URL} and unzip it into {spec.root_path}",
        )
    wnids = sorted({w.strip() for w in (base / "wnids.txt").read_text().splitlines() if w.strip()})
    if len(wnids) < 2:
        raise DataError(
            f"{base / 'wnids.txt'}: expected one wnid per line (200 in the official file); found {len(wnids)}"
        )
    idx = {w: i for i, w in enumerate(wnids)}
    train_paths, train_labels = _tiny_train(base, wnids, idx)
    test_paths, test_labels = _tiny_val(spec, base, idx)

    size = int_option(spec, "image_size", 64, minimum=1)
    workers = spec.options.get("workers")
    x_tr = load_image_files(train_paths, size, 3, "tinyimagenet train", workers)
    x_te = load_image_files(test_paths, size, 3, "tinyimagenet val", workers)
    return ALDataset(
        name="tinyimagenet",
        x_train=torch.from_numpy(x_tr),
        y_train=torch.tensor(train_labels, dtype=torch.int64),
        x_test=torch.from_numpy(x_te),
        y_test=torch.tensor(test_labels, dtype=torch.int64),
        num_classes=len(wnids),
        classes=_tiny_class_names(base, wnids, idx),
        augmentation=augmentation_option(spec, "crop_flip"),
        source=str(base),
    )


# ---------------------------------------------------------------------------------------------
# MedMNIST v2 (2D, .npz from Zenodo)
# ---------------------------------------------------------------------------------------------

MEDMNIST_URL = "https://zenodo.org/records/10519652"
MEDMNIST_AUG = {"organcmnist": "crop", "pathmnist": "crop_flip", "tissuemnist": "crop"}


def _load_medmnist(spec: DataSpec, flag: str) -> ALDataset:
    """Read ``<root>/<flag>.npz`` (``<flag>_<size>.npz`` for size != 28) through the medmnist
    package. Pool = train split (plus val with ``options.use_val_in_pool: true``), test = test
    split. medmnist's official-count assertion is not applied (it lives in ``__len__``, which is
    never called); ``options.strict_counts: true`` checks the counts here instead."""
    require(f"dataset={flag}", "medmnist")
    import medmnist
    from medmnist.info import INFO

    info = INFO[flag]
    size = int_option(spec, "size", 28)
    cls = getattr(medmnist, info["python_class"])
    if size not in cls.available_sizes:
        raise ConfigError(
            f"dataset.options.size: {size} is not available for {flag}; choose one of {cls.available_sizes}"
        )
    filename = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    path, download = _medmnist_file(spec, flag, filename)
    use_val = spec.options.get("use_val_in_pool", False)
    if not isinstance(use_val, bool):
        raise ConfigError(f"dataset.options.use_val_in_pool: expected true or false, got {use_val!r}")
    wanted = ("train", "val", "test") if use_val else ("train", "test")
    if path.is_file():  # check the archive first: clear messages, and no file left open by numpy
        _check_medmnist_archive(flag, path, wanted)
    splits = _read_medmnist_splits(cls, flag, spec.root_path, filename, wanted, size, download)
    xs, ys = _medmnist_tensors(spec, flag, info, path, splits, size)
    num_classes = len(info["label"])
    pool = ("train", "val") if use_val else ("train",)
    x_tr = torch.cat([xs[s] for s in pool])
    y_tr = torch.cat([ys[s] for s in pool])
    classes = [info["label"][str(i)] for i in range(num_classes)]
    return ALDataset(
        name=flag,
        x_train=x_tr,
        y_train=y_tr,
        x_test=xs["test"],
        y_test=ys["test"],
        num_classes=num_classes,
        classes=classes,
        augmentation=augmentation_option(spec, MEDMNIST_AUG[flag]),
        source=str(path),
    )


def _medmnist_file(spec: DataSpec, flag: str, filename: str) -> tuple[Path, bool]:
    """(path of the .npz file, whether to download it): a missing file is fetched only with
    ``dataset.download``, else a DataError says where to get it."""
    root = spec.root_path
    path = root / filename
    if path.is_file():
        return path, False
    if not spec.download:
        raise _missing(flag, f"the file {path}", f"Download {filename} from {MEDMNIST_URL} into {root}")
    root.mkdir(parents=True, exist_ok=True)
    return path, True  # only when missing: medmnist would re-fetch a present file whose MD5 differs


def _check_medmnist_archive(flag: str, path: Path, wanted: Sequence[str]) -> None:
    """The .npz file is a zip archive holding the images and labels of every ``wanted`` split."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{flag}: cannot read {path} as a MedMNIST .npz file ({type(exc).__name__}: {exc})") from exc
    lacking = [f"{s}_{k}" for s in wanted for k in ("images", "labels") if f"{s}_{k}.npy" not in members]
    if lacking:
        raise DataError(
            f"{flag}: {path} lacks array(s) {', '.join(lacking)}; a MedMNIST file holds "
            "{train,val,test}_images and {train,val,test}_labels"
        )


def _read_medmnist_splits(
    cls: Any, flag: str, root: Path, filename: str, wanted: Sequence[str], size: int, download: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (images, labels) as medmnist reads them (the first split downloads a missing file)."""
    path = root / filename
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in wanted:
        try:
            ds = cls(split=split, root=str(root), download=download, size=size)
            download = False  # fetched (if it was missing) by the first split
            imgs, labels = np.asarray(ds.imgs), np.asarray(ds.labels)
        except KeyError as exc:
            raise DataError(
                f"{flag}: {path} lacks array {exc}; a MedMNIST file holds "
                "{train,val,test}_images and {train,val,test}_labels"
            ) from exc
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError, AssertionError) as exc:
            if download:
                raise DataError(f"{flag}: download of {filename} from {MEDMNIST_URL} failed: {exc}") from exc
            raise DataError(
                f"{flag}: cannot read {path} as a MedMNIST .npz file ({type(exc).__name__}: {exc})"
            ) from exc
        splits[split] = (imgs, labels)
    return splits


def _medmnist_tensors(
    spec: DataSpec,
    flag: str,
    info: Mapping[str, Any],
    path: Path,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    size: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(images, labels) per split as uint8 NCHW and int64 tensors, their shapes, label range and
    (``options.strict_counts``) official counts checked."""
    strict = _strict_counts(spec)
    num_classes = len(info["label"])
    xs: dict[str, torch.Tensor] = {}
    ys: dict[str, torch.Tensor] = {}
    for split, (imgs, labels) in splits.items():
        src = f"{path} [{split}_images]"
        if imgs.dtype != np.uint8:
            raise DataError(f"{src}: expected uint8 images, got {imgs.dtype}")
        want = (size, size) if info["n_channels"] == 1 else (size, size, 3)
        if imgs.ndim != 1 + len(want) or tuple(imgs.shape[1:]) != want:
            raise DataError(f"{src}: expected shape (N, {', '.join(map(str, want))}), got {imgs.shape}")
        x = to_uint8_nchw(imgs, src)
        y = to_labels(labels, f"{path} [{split}_labels]")
        if len(x) != len(y):
            raise DataError(f"{path}: {len(x)} {split} images but {len(y)} {split} labels")
        _labels_in_range(flag, y, num_classes, f"{path} [{split}_labels]")
        if strict:
            _check_count(flag, split, len(y), info["n_samples"][split], str(path))
        xs[split], ys[split] = x, y
    return xs, ys


@register_dataset("organcmnist")
def load_organcmnist(spec: DataSpec) -> ALDataset:
    """OrganCMNIST: abdominal CT (coronal), 1 channel, 11 classes."""
    return _load_medmnist(spec, "organcmnist")


@register_dataset("pathmnist")
def load_pathmnist(spec: DataSpec) -> ALDataset:
    """PathMNIST: colon pathology, 3 channels, 9 classes."""
    return _load_medmnist(spec, "pathmnist")


@register_dataset("tissuemnist")
def load_tissuemnist(spec: DataSpec) -> ALDataset:
    """TissueMNIST: kidney cortex microscopy, 1 channel, 8 classes."""
    return _load_medmnist(spec, "tissuemnist")
