"""Data loaders: each one reads small files written in the official on-disk format into
tmp_path, through the real ``load_dataset`` path (nothing is downloaded)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autoal.data import DataSpec, dataset_names, load_dataset
from autoal.errors import ConfigError, DataError, DatasetNotFoundError

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# writers of the official formats
# ---------------------------------------------------------------------------------------------


def _py2_pickle(obj, path: Path) -> None:
    # protocol 2 with bytes keys, as close as Python 3 gets to the official Python 2 pickles
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path, n: int = 4) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out = {"x_train": [], "y_train": []}
    for b in range(1, 6):
        data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, 10, n)]
        _py2_pickle(
            {
                b"batch_label": b"training batch %d of 5" % b,
                b"labels": labels,
                b"data": data,
                b"filenames": [b"f%d.png" % i for i in range(n)],
            },
            folder / f"data_batch_{b}",
        )
        out["x_train"].append(data)
        out["y_train"] += labels
    test = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
    test_labels = [int(v) for v in RNG.integers(0, 10, n)]
    _py2_pickle({b"batch_label": b"testing batch 1 of 1", b"labels": test_labels, b"data": test}, folder / "test_batch")
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _py2_pickle({b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}, folder / "batches.meta")
    return {
        "x_train": np.concatenate(out["x_train"]),
        "y_train": np.array(out["y_train"]),
        "x_test": test,
        "y_test": np.array(test_labels),
    }


def write_cifar100(root: Path, n: int = 6) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, k in (("train", n), ("test", n // 2)):
        (folder / split).write_bytes(
            pickle.dumps(
                {
                    "filenames": ["a"] * k,
                    "batch_label": split,
                    "fine_labels": [int(v) for v in RNG.integers(0, 100, k)],
                    "coarse_labels": [int(v) for v in RNG.integers(0, 20, k)],
                    "data": RNG.integers(0, 256, (k, 3072), dtype=np.uint8),
                }
            )
        )
    (folder / "meta").write_bytes(
        pickle.dumps(
            {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": [f"s{i}" for i in range(20)]}
        )
    )


def write_svhn(root: Path, n_train: int = 7, n_test: int = 5) -> dict[str, np.ndarray]:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = RNG.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0, 0] = 10  # digit 0 is stored as 10
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, y)
    return out


def write_medmnist(
    root: Path, flag: str, counts=(5, 3, 4), channels: int = 1, num_classes: int = 11, size: int = 28, **overrides
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in zip(("train", "val", "test"), counts):
        shape = (n, size, size) if channels == 1 else (n, size, size, 3)
        arrays[f"{split}_images"] = RNG.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = RNG.integers(0, num_classes, (n, 1)).astype(np.uint8)
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = root / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    np.savez_compressed(path, **arrays)
    return path


def write_tinyimagenet(root: Path, wnids=("n02", "n01", "n03"), per_class: int = 2, n_val: int = 4) -> Path:
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tcat\nn03\tdog, domestic dog\nn99\tunused\n")
    for w in wnids:
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{k}.JPEG")
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
    lines = []
    for k in range(n_val):
        size = 64 if k else 32  # one odd-sized image, resized to 64
        Image.fromarray(RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            base / "val" / "images" / f"val_{k}.JPEG"
        )
        lines.append(f"val_{k}.JPEG\t{wnids[k % len(wnids)]}\t0\t0\t10\t10")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


def write_folder(root: Path, counts: dict[str, int], size: int = 12) -> dict[Path, int]:
    """Each image is one solid gray value (unique per file); returns {path: value}."""
    values = {}
    v = 10
    for cls, n in counts.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            p = d / f"img{k}.png"
            Image.fromarray(np.full((size, size, 3), v, dtype=np.uint8)).save(p)
            values[p.resolve()] = v
            v = (v + 7) % 256
    return values


def _load(name, root=None, **kw):
    return load_dataset(DataSpec(name=name, root=str(root) if root is not None else "data", **kw))


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def test_dataset_names_lists_every_loader():
    names = set(dataset_names())
    assert {
        "digits",
        "folder",
        "npz",
        "cifar10",
        "cifar100",
        "svhn",
        "tinyimagenet",
        "organcmnist",
        "pathmnist",
        "tissuemnist",
    } <= names


def test_unknown_dataset_is_config_error_listing_choices():
    with pytest.raises(ConfigError) as e:
        _load("imagenet22k")
    msg = str(e.value)
    assert "imagenet22k" in msg and "cifar10" in msg and "digits" in msg and "folder" in msg


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


def test_digits_shapes():
    ds = _load("digits")
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.dtype == torch.uint8
    assert ds.y_train.dtype == torch.int64 and ds.num_classes == 10
    assert ds.in_channels == 1 and ds.image_size == 8
    assert set(ds.y_test.tolist()) == set(range(10))


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------


def test_transforms_shapes_determinism_and_augmentation(tmp_path):
    write_cifar10(tmp_path, n=8)
    ds = _load("cifar10", tmp_path)
    assert ds.augmentation == "crop_flip"
    x = ds.x_train[:16]
    e1, e2 = ds.eval_transform(x), ds.eval_transform(x)
    assert e1.shape == (16, 3, 32, 32) and e1.dtype == torch.float32
    assert torch.equal(e1, e2)
    g = torch.Generator().manual_seed(0)
    t = ds.train_transform(x, generator=g)
    assert t.shape == e1.shape
    assert not torch.allclose(t, e1)
    # normalization uses the pool's channel statistics
    assert torch.allclose(ds.eval_transform(ds.x_train).mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_no_augmentation_train_equals_eval():
    ds = _load("digits")
    x = ds.x_train[:8]
    assert torch.equal(ds.train_transform(x), ds.eval_transform(x))


# ---------------------------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------------------------


def test_cifar10_reads_official_pickle_batches(tmp_path):
    ref = write_cifar10(tmp_path, n=4)
    ds = _load("cifar10", tmp_path)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.num_classes == 10 and ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert ds.y_train.tolist() == ref["y_train"].tolist()
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    i, c, h, w = 7, 2, 5, 30
    assert int(ds.x_train[i, c, h, w]) == int(ref["x_train"][i, c * 1024 + h * 32 + w])
    assert torch.equal(ds.x_test.reshape(4, -1), torch.from_numpy(ref["x_test"]))


def test_torchvision_rejects_small_official_format_files(tmp_path):
    """Why the loader reads the batches itself: torchvision checks the official MD5s."""
    from torchvision.datasets import CIFAR10

    write_cifar10(tmp_path, n=2)
    with pytest.raises(RuntimeError):
        CIFAR10(str(tmp_path), train=True, download=False)


def test_cifar_present_files_are_not_downloaded(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def boom(*a, **k):
        raise AssertionError("network download attempted")

    monkeypatch.setattr(tvu, "download_and_extract_archive", boom)
    write_cifar10(tmp_path, n=2)
    ds = _load("cifar10", tmp_path, download=True)
    assert len(ds.x_train) == 10


def _py2_batch_bytes(data: np.ndarray, labels: list[int]) -> bytes:
    """The opcodes Python 2's cPickle (protocol 2) wrote for the official batches: str keys as
    BINSTRING, the array via numpy.core.multiarray._reconstruct with raw bytes as a str."""
    import struct

    def s(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)

    n = data.shape[0]
    dtype = (
        b"cnumpy\ndtype\n"
        + s(b"u1")
        + b"K\x00K\x01\x87R(K\x03"
        + s(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    arr = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + s(b"b")
        + b"\x87R"
        + b"(K\x01M"
        + struct.pack("<H", n)
        + b"M\x00\x0c\x86"
        + dtype
        + b"\x89"
        + s(data.tobytes())
        + b"tb"
    )
    labs = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + s(b"data") + arr + s(b"labels") + labs + b"u."


def test_cifar_reads_python2_pickle_opcodes(tmp_path):
    write_cifar10(tmp_path, n=3)
    data = RNG.integers(0, 256, (3, 3072), dtype=np.uint8)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(_py2_batch_bytes(data, [9, 0, 4]))
    ds = _load("cifar10", tmp_path)
    assert ds.y_test.tolist() == [9, 0, 4]
    assert torch.equal(ds.x_test.reshape(3, -1), torch.from_numpy(data))


def test_download_wiring_without_network(tmp_path, monkeypatch):
    """download=true calls torchvision's downloader (faked here) only for missing files, then
    reads what it wrote; a failing download becomes a DataError."""
    import torchvision.datasets.utils as tvu

    calls = []

    def fake_archive(url, root, filename=None, md5=None, **kw):
        calls.append((url, filename, md5))
        write_cifar10(Path(root), n=2)

    monkeypatch.setattr(tvu, "download_and_extract_archive", fake_archive)
    ds = _load("cifar10", tmp_path / "new", download=True)
    assert len(ds.x_train) == 10 and calls[0][0].endswith("cifar-10-python.tar.gz") and calls[0][2]

    def fake_url(url, root, filename=None, md5=None, **kw):
        calls.append((url, filename, md5))
        if filename != "train_32x32.mat":
            raise RuntimeError("File not found or corrupted.")
        write_svhn(Path(root) / "tmp")
        (Path(root) / "tmp" / filename).rename(Path(root) / filename)

    monkeypatch.setattr(tvu, "download_url", fake_url)
    with pytest.raises(DataError, match="test_32x32.mat"):
        _load("svhn", tmp_path / "svhn", download=True)
    with pytest.raises(DataError, match="download of organcmnist.npz"):
        _load("organcmnist", tmp_path / "med", download=True)


def test_cifar100_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    ds = _load("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.x_train.shape == (6, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.classes[:2] == ["c0", "c1"]


@pytest.mark.parametrize("name,folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_cifar_missing_names_dataset_path_and_url(tmp_path, name, folder):
    with pytest.raises(DatasetNotFoundError) as e:
        _load(name, tmp_path)
    msg = str(e.value)
    assert name in msg and str(tmp_path / folder) in msg
    assert "https://www.cs.toronto.edu/~kriz/" in msg and "dataset.download=true" in msg


def test_cifar_missing_one_batch(tmp_path):
    write_cifar10(tmp_path, n=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        _load("cifar10", tmp_path)


def test_cifar_corrupt_batch_names_file(tmp_path):
    write_cifar10(tmp_path, n=2)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    bad.write_bytes(b"\x80\x02}q\x00(garbage")
    with pytest.raises(DataError, match="data_batch_2"):
        _load("cifar10", tmp_path)


def test_cifar_pickle_cannot_run_code(tmp_path):
    write_cifar10(tmp_path, n=2)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(DataError, match="test_batch"):
        _load("cifar10", tmp_path)


def test_cifar_labels_out_of_range(tmp_path):
    write_cifar10(tmp_path, n=2)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 10]})
    )
    with pytest.raises(DataError, match="test_batch"):
        _load("cifar10", tmp_path)


def test_cifar_strict_counts(tmp_path):
    write_cifar10(tmp_path, n=2)
    with pytest.raises(DataError, match="50000"):
        _load("cifar10", tmp_path, options={"strict_counts": True})


# ---------------------------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------------------------


def test_svhn_reads_mat_files_and_maps_10_to_0(tmp_path):
    ref = write_svhn(tmp_path)
    ds = _load("svhn", tmp_path)
    assert ds.x_train.shape == (7, 3, 32, 32) and ds.x_test.shape == (5, 3, 32, 32)
    assert ds.augmentation == "crop" and ds.num_classes == 10
    x, y = ref["train"]
    expected = y[:, 0].astype(np.int64)
    expected[expected == 10] = 0
    assert ds.y_train.tolist() == expected.tolist() and int(ds.y_train[0]) == 0
    i, c, h, w = 3, 1, 4, 17
    assert int(ds.x_train[i, c, h, w]) == int(x[h, w, c, i])


def test_svhn_missing_names_files(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(DatasetNotFoundError) as e:
        _load("svhn", tmp_path)
    msg = str(e.value)
    assert "svhn" in msg and str(tmp_path / "test_32x32.mat") in msg
    assert "http://ufldl.stanford.edu/housenumbers/test_32x32.mat" in msg


def test_svhn_corrupt_mat(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(b"not a matlab file at all" * 10)
    with pytest.raises(DataError, match="train_32x32.mat"):
        _load("svhn", tmp_path)


def test_svhn_bad_labels(tmp_path):
    import scipy.io

    write_svhn(tmp_path)
    scipy.io.savemat(
        tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]], np.uint8)}
    )
    with pytest.raises(DataError, match="test_32x32.mat"):
        _load("svhn", tmp_path)


# ---------------------------------------------------------------------------------------------
# Tiny ImageNet
# ---------------------------------------------------------------------------------------------


def test_tinyimagenet_official_layout(tmp_path):
    write_tinyimagenet(tmp_path)
    ds = _load("tinyimagenet", tmp_path)
    assert ds.x_train.shape == (6, 3, 64, 64) and ds.x_test.shape == (4, 3, 64, 64)
    assert ds.num_classes == 3
    # classes in sorted-wnid order, named from words.txt
    assert ds.classes == ["goldfish", "cat", "dog"]
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    # val annotations: val_k -> wnids[k % 3] with wnids file order (n02, n01, n03)
    assert ds.y_test.tolist() == [1, 0, 2, 1]
    assert ds.augmentation == "crop_flip"


def test_tinyimagenet_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        _load("tinyimagenet", tmp_path)
    msg = str(e.value)
    assert "tinyimagenet" in msg and str(tmp_path / "tiny-imagenet-200") in msg
    assert "http://cs231n.stanford.edu/tiny-imagenet-200.zip" in msg


def test_tinyimagenet_unreadable_image_named(tmp_path):
    base = write_tinyimagenet(tmp_path)
    bad = base / "train" / "n03" / "images" / "n03_1.JPEG"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="n03_1.JPEG"):
        _load("tinyimagenet", tmp_path)


def test_tinyimagenet_unknown_val_wnid(tmp_path):
    base = write_tinyimagenet(tmp_path)
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="n77"):
        _load("tinyimagenet", tmp_path)


# ---------------------------------------------------------------------------------------------
# MedMNIST
# ---------------------------------------------------------------------------------------------


def test_organcmnist_npz(tmp_path):
    write_medmnist(tmp_path, "organcmnist", counts=(5, 3, 4))
    ds = _load("organcmnist", tmp_path)
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.num_classes == 11 and ds.augmentation == "crop" and len(ds.classes) == 11
    ds2 = _load("organcmnist", tmp_path, options={"use_val_in_pool": True})
    assert ds2.x_train.shape == (8, 1, 28, 28)
    assert torch.equal(ds2.x_train[:5], ds.x_train)


def test_pathmnist_rgb(tmp_path):
    path = write_medmnist(tmp_path, "pathmnist", channels=3, num_classes=9)
    ds = _load("pathmnist", tmp_path)
    assert ds.x_train.shape == (5, 3, 28, 28) and ds.num_classes == 9 and ds.augmentation == "crop_flip"
    with np.load(path) as f:
        ref = f["train_images"]
    assert int(ds.x_train[2, 1, 3, 4]) == int(ref[2, 3, 4, 1])


def test_tissuemnist_size_64_file(tmp_path):
    write_medmnist(tmp_path, "tissuemnist", num_classes=8, size=64)
    ds = _load("tissuemnist", tmp_path, options={"size": 64})
    assert ds.x_train.shape == (5, 1, 64, 64) and ds.num_classes == 8
    with pytest.raises(DatasetNotFoundError, match="tissuemnist.npz"):
        _load("tissuemnist", tmp_path)  # size 28 file absent


@pytest.mark.parametrize("flag", ["organcmnist", "pathmnist", "tissuemnist"])
def test_medmnist_missing_names_path_and_zenodo(tmp_path, flag):
    with pytest.raises(DatasetNotFoundError) as e:
        _load(flag, tmp_path)
    msg = str(e.value)
    assert flag in msg and str(tmp_path / f"{flag}.npz") in msg
    assert "https://zenodo.org/records/10519652" in msg and "dataset.download=true" in msg


def test_medmnist_missing_key_and_bad_lengths(tmp_path):
    write_medmnist(tmp_path, "organcmnist", test_labels=None)
    with pytest.raises(DataError, match="test_labels"):
        _load("organcmnist", tmp_path)
    write_medmnist(tmp_path, "organcmnist", train_labels=np.zeros((2, 1), np.uint8))
    with pytest.raises(DataError, match="organcmnist.npz"):
        _load("organcmnist", tmp_path)


def test_medmnist_corrupt_and_strict_counts(tmp_path):
    write_medmnist(tmp_path, "organcmnist")
    with pytest.raises(DataError, match="12975"):
        _load("organcmnist", tmp_path, options={"strict_counts": True})
    (tmp_path / "organcmnist.npz").write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(DataError, match="organcmnist.npz"):
        _load("organcmnist", tmp_path)


def test_medmnist_wrong_channels(tmp_path):
    write_medmnist(tmp_path, "organcmnist", channels=3)
    with pytest.raises(DataError, match="train_images"):
        _load("organcmnist", tmp_path)


# ---------------------------------------------------------------------------------------------
# folder
# ---------------------------------------------------------------------------------------------


def test_folder_stratified_split_and_paths(tmp_path):
    values = write_folder(tmp_path / "imgs", {"b_dog": 5, "a_cat": 5})
    (tmp_path / "imgs" / "a_cat" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / "a_cat" / ".hidden.png").write_bytes(b"junk")
    spec = dict(path=str(tmp_path / "imgs"), options={"image_size": 8, "test_fraction": 0.4})
    ds = _load("folder", **spec)
    assert ds.classes == ["a_cat", "b_dog"] and ds.num_classes == 2
    assert ds.x_train.shape == (6, 3, 8, 8) and ds.x_test.shape == (4, 3, 8, 8)
    assert sorted(ds.y_test.tolist()) == [0, 0, 1, 1]
    assert ds.paths is not None and len(ds.paths) == 6
    for i, p in enumerate(ds.paths):
        assert Path(p).is_absolute()
        assert int(ds.x_train[i, 0, 0, 0]) == values[Path(p)]
        assert Path(p).parent.name == ds.classes[int(ds.y_train[i])]
    # seeded: same split again
    assert _load("folder", **spec).paths == ds.paths


def test_folder_train_test_subfolders_gray(tmp_path):
    write_folder(tmp_path / "train", {"x": 3, "y": 2})
    write_folder(tmp_path / "test", {"x": 1, "y": 1})
    ds = _load("folder", path=str(tmp_path), options={"channels": 1, "image_size": 16})
    assert ds.x_train.shape == (5, 1, 16, 16) and ds.x_test.shape == (2, 1, 16, 16)
    assert ds.y_test.tolist() == [0, 1]
    assert all("/train/" in p for p in ds.paths)


def test_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="dataset.path is required for dataset=folder"):
        _load("folder")
    with pytest.raises(DatasetNotFoundError, match="nope"):
        _load("folder", path=str(tmp_path / "nope"))
    write_folder(tmp_path / "d", {"a": 2})
    (tmp_path / "d" / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        _load("folder", path=str(tmp_path / "d"))
    (tmp_path / "d" / "empty").rmdir()
    write_folder(tmp_path / "d", {"b": 2})
    (tmp_path / "d" / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        _load("folder", path=str(tmp_path / "d"))


def test_folder_threaded_decoding_reports_bad_file(tmp_path):
    write_folder(tmp_path / "many", {"a": 40, "b": 40}, size=4)
    (tmp_path / "many" / "b" / "img33.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="img33.png"):
        _load("folder", path=str(tmp_path / "many"), options={"workers": 4})
    (tmp_path / "many" / "b" / "img33.png").unlink()
    ds = _load("folder", path=str(tmp_path / "many"), options={"workers": 4, "image_size": 4})
    assert len(ds.x_train) + len(ds.x_test) == 79 and len(ds.x_test) == 16


# ---------------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------------


def _npz(path: Path, **arrays):
    base = {
        "x_train": RNG.integers(0, 256, (6, 10, 10, 3), dtype=np.uint8),
        "y_train": np.array([0, 1, 2, 0, 1, 2]),
        "x_test": RNG.integers(0, 256, (3, 10, 10, 3), dtype=np.uint8),
        "y_test": np.array([0, 1, 3]),
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_npz_loads_and_infers_classes(tmp_path):
    p = _npz(tmp_path / "d.npz")
    ds = _load("npz", path=str(p))
    assert ds.x_train.shape == (6, 3, 10, 10) and ds.num_classes == 4 and ds.augmentation == "none"
    ds = _load("npz", path=str(p), options={"num_classes": 4, "augmentation": "crop"})
    assert ds.num_classes == 4 and ds.augmentation == "crop"
    # a class count beyond the labels leaves ids 4 and 5 empty: refused (issue 23)
    with pytest.raises(DataError, match=r"class id\(s\) 4, 5 have no image .*num_classes=6"):
        _load("npz", path=str(p), options={"num_classes": 6})


def test_npz_float_images_stay_float(tmp_path):
    """Float images are kept as float32 (issue 24; they were quantized to uint8 before)."""
    p = _npz(tmp_path / "f.npz", x_train=np.full((6, 8, 8), 0.5, np.float32), x_test=np.zeros((3, 8, 8), np.float64))
    ds = _load("npz", path=str(p))
    assert (
        ds.x_train.shape == (6, 1, 8, 8) and ds.x_train.dtype == torch.float32 and float(ds.x_train[0, 0, 0, 0]) == 0.5
    )


def test_npz_missing_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="missing.npz"):
        _load("npz", path=str(tmp_path / "missing.npz"))
    with pytest.raises(ConfigError, match="dataset.path"):
        _load("npz")


def test_npz_missing_key_lists_expected(tmp_path):
    p = _npz(tmp_path / "k.npz", y_test=None)
    with pytest.raises(DataError) as e:
        _load("npz", path=str(p))
    msg = str(e.value)
    assert "y_test" in msg and "x_train, y_train, x_test, y_test" in msg


def test_npz_corrupt(tmp_path):
    p = tmp_path / "c.npz"
    p.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="c.npz"):
        _load("npz", path=str(p))


def test_npz_nan_pixels(tmp_path):
    x = np.full((6, 4, 4), 0.2, np.float32)
    x[1, 2, 3] = np.nan
    p = _npz(tmp_path / "n.npz", x_train=x, x_test=np.zeros((3, 4, 4), np.float32))
    with pytest.raises(DataError, match="NaN"):
        _load("npz", path=str(p))


def test_npz_labels_out_of_range(tmp_path):
    p = _npz(tmp_path / "r.npz")
    with pytest.raises(DataError, match="out of range"):
        _load("npz", path=str(p), options={"num_classes": 3})
    p = _npz(tmp_path / "neg.npz", y_train=np.array([0, 1, -1, 0, 1, 2]))
    with pytest.raises(DataError, match="negative"):
        _load("npz", path=str(p))


def test_npz_shape_mismatches(tmp_path):
    p = _npz(tmp_path / "m.npz", y_train=np.array([0, 1]))
    with pytest.raises(DataError, match="y_train"):
        _load("npz", path=str(p))
    p = _npz(tmp_path / "g.npz", x_test=np.zeros((3, 12, 12, 3), np.uint8))
    with pytest.raises(DataError, match="must match"):
        _load("npz", path=str(p))


def test_random_crop_flip_keeps_a_channels_last_batch_channels_last():
    from autoal.data.base import random_crop_flip

    x = torch.randn(6, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    plain = random_crop_flip(x, flip=True, generator=g)
    g = torch.Generator().manual_seed(0)
    cl = random_crop_flip(x.contiguous(memory_format=torch.channels_last), flip=True, generator=g)
    assert cl.is_contiguous(memory_format=torch.channels_last) and plain.is_contiguous()
    assert torch.equal(cl, plain)  # same values, only the layout differs


# ---------------------------------------------------------------------------------------------
# what every loader records: source and split statistics
# ---------------------------------------------------------------------------------------------


def test_every_loader_records_its_source_and_split_stats(tmp_path):
    import sklearn

    write_cifar10(tmp_path / "c10", n=2)
    write_cifar100(tmp_path / "c100")
    write_svhn(tmp_path / "svhn")
    write_tinyimagenet(tmp_path / "tiny")
    write_medmnist(tmp_path / "med", "organcmnist")
    write_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    loaded = {
        "digits": (_load("digits"), f"scikit-learn {sklearn.__version__} bundled digits"),
        "cifar10": (_load("cifar10", tmp_path / "c10"), str(tmp_path / "c10" / "cifar-10-batches-py")),
        "cifar100": (_load("cifar100", tmp_path / "c100"), str(tmp_path / "c100" / "cifar-100-python")),
        "svhn": (_load("svhn", tmp_path / "svhn"), str(tmp_path / "svhn" / "train_32x32.mat")),
        "tinyimagenet": (_load("tinyimagenet", tmp_path / "tiny"), str(tmp_path / "tiny" / "tiny-imagenet-200")),
        "organcmnist": (_load("organcmnist", tmp_path / "med"), str(tmp_path / "med" / "organcmnist.npz")),
        "folder": (_load("folder", path=str(tmp_path / "imgs")), str((tmp_path / "imgs").resolve())),
        "npz": (_load("npz", path=str(_npz(tmp_path / "d.npz"))), str((tmp_path / "d.npz").resolve())),
    }
    for name, (ds, where) in loaded.items():
        assert where in ds.source, (name, ds.source)
        counts = torch.bincount(ds.y_train, minlength=ds.num_classes).tolist()
        assert ds.info["pool_class_counts"] == counts, name
        assert ds.info["pool_size"] == len(ds.y_train) and ds.info["test_size"] == len(ds.y_test), name
        low = min(counts)
        assert ds.info["imbalance_ratio"] == (max(counts) / low if low else float("inf")), name


# ---------------------------------------------------------------------------------------------
# long-tailed pools and stratified subsamples (any data set, after its loader)
# ---------------------------------------------------------------------------------------------


def test_long_tail_profile_on_digits():
    from autoal.data.subset import class_order

    full = _load("digits")
    ds = _load("digits", imbalance_ratio=10)
    n_max = int(torch.bincount(full.y_train, minlength=10).min())
    order = class_order(10, 0)
    counts = torch.bincount(ds.y_train, minlength=10).tolist()
    expected = [int(np.floor(n_max * 10 ** (-r / 9) + 1e-9)) for r in range(10)]
    assert [counts[c] for c in order] == expected
    assert counts[order[0]] == n_max and counts[order[-1]] == n_max // 10
    assert ds.info["pool_class_counts"] == counts and ds.info["pool_size"] == sum(counts)
    assert ds.info["imbalance_ratio"] == pytest.approx(10, rel=0.1)
    assert ds.info["imbalance_ratio"] == max(counts) / min(counts)
    # the test split is untouched, the pool is a subset of the full pool
    assert torch.equal(ds.x_test, full.x_test) and torch.equal(ds.y_test, full.y_test)
    assert ds.info["test_size"] == len(full.y_test)
    full_rows = {bytes(x.numpy()) for x in full.x_train}
    assert all(bytes(x.numpy()) in full_rows for x in ds.x_train)
    # normalization statistics come from the pool as used
    assert torch.allclose(ds.mean, ds.x_train.float().mean() / 255.0, atol=1e-5)


def test_long_tail_is_seeded_by_subset_seed():
    from autoal.data.subset import class_order

    a = _load("digits", imbalance_ratio=10)
    b = _load("digits", imbalance_ratio=10)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    c = _load("digits", imbalance_ratio=10, subset_seed=1)
    assert class_order(10, 1).tolist() != class_order(10, 0).tolist()
    counts_c = torch.bincount(c.y_train, minlength=10).tolist()
    assert [counts_c[k] for k in class_order(10, 1)] == sorted(counts_c, reverse=True)
    assert counts_c != a.info["pool_class_counts"]


def test_train_and_test_size_stratified_and_seeded():
    full = _load("digits")
    ds = _load("digits", train_size=100, test_size=50)
    assert len(ds.y_train) == 100 and len(ds.y_test) == 50
    assert ds.info["pool_size"] == 100 and ds.info["test_size"] == 50
    pool_counts = torch.bincount(ds.y_train, minlength=10)
    full_counts = torch.bincount(full.y_train, minlength=10)
    assert ((pool_counts - full_counts * 100 / len(full.y_train)).abs() < 1).all()  # proportional, rounded
    assert torch.bincount(ds.y_test, minlength=10).tolist() == [5] * 10
    again = _load("digits", train_size=100, test_size=50)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.x_test, ds.x_test)
    other = _load("digits", train_size=100, test_size=50, subset_seed=3)
    assert not torch.equal(other.x_train, ds.x_train) and not torch.equal(other.x_test, ds.x_test)


def test_train_size_after_the_long_tail_keeps_its_profile():
    from autoal.data.subset import class_order

    tail = _load("digits", imbalance_ratio=10)
    ds = _load("digits", imbalance_ratio=10, train_size=200)
    counts = torch.bincount(ds.y_train, minlength=10)
    tail_counts = torch.bincount(tail.y_train, minlength=10)
    assert int(counts.sum()) == 200 and ((counts - tail_counts * 200 / len(tail.y_train)).abs() < 1).all()
    ranked = [int(counts[c]) for c in class_order(10, 0)]
    assert ranked == sorted(ranked, reverse=True) and ranked[-1] >= 1
    # the pool subsample is drawn from the long-tailed pool
    tail_rows = {bytes(x.numpy()) for x in tail.x_train}
    assert all(bytes(x.numpy()) in tail_rows for x in ds.x_train)


def test_stratified_quotas_keep_every_class():
    from autoal.data.subset import stratified_quotas

    q = stratified_quotas(np.array([1000, 10, 1, 500]), 20)
    assert q.sum() == 20 and (q >= 1).all() and q[0] > q[3] > q[1]
    assert stratified_quotas(np.array([3, 0, 5]), 2).tolist() == [1, 0, 1]
    assert stratified_quotas(np.array([4, 4]), 8).tolist() == [4, 4]


def test_subsampling_keeps_paths_aligned(tmp_path):
    write_folder(tmp_path / "imgs", {"a": 8, "b": 8, "c": 8})
    full = _load("folder", path=str(tmp_path / "imgs"))
    ds = _load("folder", path=str(tmp_path / "imgs"), imbalance_ratio=3, train_size=8)
    assert len(ds.paths) == len(ds.y_train) == 8
    by_path = dict(zip(full.paths, full.x_train))
    assert all(torch.equal(by_path[p], x) for p, x in zip(ds.paths, ds.x_train))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"imbalance_ratio": 0.5}, r"dataset.imbalance_ratio: must be >= 1 .*got 0.5"),
        ({"imbalance_ratio": float("inf")}, r"dataset.imbalance_ratio: .*got inf"),
        ({"imbalance_ratio": float("nan")}, r"dataset.imbalance_ratio: .*got nan"),
        ({"imbalance_ratio": "10"}, r"dataset.imbalance_ratio: .*got '10'"),
        ({"imbalance_ratio": True}, r"dataset.imbalance_ratio: .*got True"),
        (
            {"imbalance_ratio": 200},
            r"dataset.imbalance_ratio: 200 would leave a class of the digits pool empty: .*"
            r"n_max = 131 .*n_max / R = 0.655 < 1; use a ratio <= 131",
        ),
        ({"train_size": 5000}, r"dataset.train_size: 5000 is larger than the pool of digits \(1347 samples\)"),
        (
            {"train_size": 600, "imbalance_ratio": 10},
            r"dataset.train_size: 600 is larger than the pool of digits after dataset.imbalance_ratio=10 \(531 samples\)",
        ),
        ({"train_size": 9}, r"dataset.train_size: 9 is smaller than the number of classes \(10\)"),
        ({"train_size": 0}, r"dataset.train_size: must be >= 1 \(null = all samples\); got 0"),
        ({"train_size": 2.5}, r"dataset.train_size: expected an integer; got 2.5"),
        ({"test_size": 451}, r"dataset.test_size: 451 is larger than the test split of digits \(450 samples\)"),
        ({"test_size": 3}, r"dataset.test_size: 3 is smaller than the number of classes"),
        ({"subset_seed": -1}, r"dataset.subset_seed: must be >= 0; got -1"),
    ],
)
def test_subsampling_errors_name_the_key(kw, match):
    with pytest.raises(ConfigError, match=match):
        _load("digits", **kw)


def test_long_tail_needs_every_class_in_the_pool(tmp_path):
    p = _npz(tmp_path / "gap.npz")  # y_train has classes 0..2, y_test has class 3: class 3 absent from the pool
    with pytest.raises(ConfigError, match="dataset.imbalance_ratio: the npz pool has no sample of class 3"):
        _load("npz", path=str(p), imbalance_ratio=2)


def test_channel_stats_are_the_float64_moments_of_the_pixels_over_any_chunking():
    """Per-channel mean and (unbiased) std of x / 255, counted from per-chunk histograms: the
    same as the moments of a float64 copy, whatever the chunk size and memory layout."""
    from autoal.data.base import _channel_stats

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(53, 3, 5, 7, generator=g) ** 3 * 255).to(torch.uint8)  # skewed, channels differ
    x[:, 1] //= 4
    ref = x.double() / 255.0
    want_mean = ref.mean(dim=(0, 2, 3))
    want_std = ref.transpose(0, 1).reshape(3, -1).std(dim=1)
    for chunk in (1, 7, 53, 8192):
        for xx in (x, x.contiguous(memory_format=torch.channels_last)):
            mean, std = _channel_stats(xx, chunk=chunk)
            assert mean.dtype == std.dtype == torch.float32
            assert torch.allclose(mean.double(), want_mean, rtol=1e-6, atol=0)
            assert torch.allclose(std.double(), want_std, rtol=1e-6, atol=0)
    flat = torch.full((4, 1, 3, 3), 9, dtype=torch.uint8)  # constant: std floored, never 0
    assert _channel_stats(flat)[1].item() == pytest.approx(1e-3)
