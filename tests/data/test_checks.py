"""Data that cannot give a meaningful result (issue 23): the warning on classes one split lacks,
and the data identity over every image byte (with run folders of the sampled identity still
resuming). The refusals are rows of the bad-input table (tests/cli/test_input_errors.py, ``npz3-`` and
``folder3-``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from autoal.config import RunConfig
from autoal.data import DataSpec, load_dataset
from autoal.errors import StateError
from autoal.loop import ActiveLearningLoop, run_dir_for, run_experiment


try:
    from autoal.errors import DataWarning
except ImportError:  # the code before issue 23 (these tests then fail on what they check, not on the import)

    class DataWarning(UserWarning):
        pass


def _npz(path: Path, y_train, y_test) -> Path:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (len(y_train), 10, 10), dtype=np.uint8),
        y_train=np.asarray(y_train),
        x_test=rng.integers(0, 256, (len(y_test), 10, 10), dtype=np.uint8),
        y_test=np.asarray(y_test),
    )
    return path


def _data_warnings(record) -> list[str]:
    return [str(r.message) for r in record if issubclass(r.category, DataWarning)]


# -- the warning ------------------------------------------------------------------------------------


def test_a_test_class_the_pool_lacks_is_warned_and_kept_in_info(tmp_path):
    p = _npz(tmp_path / "d.npz", [0, 1] * 10, [0, 1, 2] * 4)
    with pytest.warns(DataWarning) as record:
        ds = load_dataset(DataSpec(name="npz", path=str(p), options={"classes": ["cat", "dog", "emu"]}))
    [message] = _data_warnings(record)
    assert str(p) in message and "'emu' (id 2)" in message and "no image in the pool" in message
    assert "cannot exceed 0.667" in message  # a third of the test split is class 2
    assert len(ds.info["class_warnings"]) == 1 and ds.info["class_warnings"][0] in message


def test_a_pool_class_the_test_split_lacks_is_warned_and_kept_in_info(tmp_path):
    p = _npz(tmp_path / "d.npz", [0, 1, 2] * 6, [0, 1] * 3)
    with pytest.warns(DataWarning) as record:
        ds = load_dataset(DataSpec(name="npz", path=str(p)))
    [message] = _data_warnings(record)
    assert str(p) in message and "pool class(es) id 2" in message and "no image in the test split" in message
    assert len(ds.info["class_warnings"]) == 1 and message.endswith(": " + ds.info["class_warnings"][0])


def test_a_folder_whose_test_split_lacks_a_class_names_it(tmp_path):
    from PIL import Image

    for split, classes in (("train", ("ant", "bee", "cow")), ("test", ("ant", "bee"))):
        for cls in classes:
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    with pytest.warns(DataWarning, match=r"pool class\(es\) 'cow' \(id 2\) have no image in the test split"):
        ds = load_dataset(DataSpec(name="folder", path=str(tmp_path), options={"image_size": 8}))
    assert "'cow' (id 2)" in ds.info["class_warnings"][0]


def test_normal_data_sets_give_no_warning_and_unchanged_statistics():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        ds = load_dataset(DataSpec())
        sub = load_dataset(DataSpec(train_size=100, test_size=50))
    assert ds.info["class_warnings"] == [] and sub.info["class_warnings"] == []
    assert ds.info["pool_size"] == 1347 and len(ds.info["pool_class_counts"]) == 10


def test_the_warning_reaches_the_run_record(tmp_path):
    from mlflow.tracking import MlflowClient

    p = _npz(tmp_path / "d.npz", [0, 1] * 10, [0, 1, 2] * 4)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = RunConfig.from_dict(
        {
            "dataset": {"name": "npz", "path": str(p)},
            "al": {"rounds": 1, "initial_size": 6, "query_size": 2, "mc_samples": 0},
            "train": {"epochs": 1, "min_steps": 1},
            "strategy": {"name": "margin"},
            "tracking": {"uri": uri, "experiment": "warned"},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 1},
        }
    )
    with pytest.warns(DataWarning, match="id 2"):
        res = run_experiment(cfg)
    tags = MlflowClient(uri).get_run(res.tracking_run_id).data.tags
    assert "id 2" in tags["data_warnings"] and "no image in the pool" in tags["data_warnings"]


def test_the_command_line_prints_an_autoal_warning_on_one_line(capsys):
    from autoal.cli.common import main_guard

    with pytest.raises(SystemExit) as e:
        main_guard(lambda argv: warnings.warn("data set x: class 2\nis missing", DataWarning, stacklevel=2), argv=[])
    assert e.value.code == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: DataWarning: data set x: class 2") and err.count("\n") == 1, err


# -- the identity covers every image -----------------------------------------------------------------


def _sampled_identity(ds) -> dict:
    """The identity as autoal wrote it before issue 23: images digested from up to 256 evenly
    spaced samples per split (written out here, independently of the code under test)."""

    def sample(x):
        return hashlib.sha256(x[:: max(1, len(x) // 256)].contiguous().numpy().tobytes()).hexdigest()[:16]

    labels = hashlib.sha256(ds.y_train.numpy().tobytes() + b"|" + ds.y_test.numpy().tobytes()).hexdigest()[:16]
    return {
        "name": ds.name,
        "train_shape": list(ds.x_train.shape),
        "test_shape": list(ds.x_test.shape),
        "num_classes": int(ds.num_classes),
        "labels_sha256": labels,
        "train_sample_sha256": sample(ds.x_train),
        "test_sample_sha256": sample(ds.x_test),
    }


def _cfg(tmp_path) -> RunConfig:
    return RunConfig.from_dict(
        {
            "al": {"rounds": 1, "initial_size": 20, "query_size": 10, "mc_samples": 0},
            "train": {"epochs": 2},
            "strategy": {"name": "margin"},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True, "num_threads": 1},
        }
    )


def _one_pixel_changed(ds, split: str, index: int):
    x = getattr(ds, f"x_{split}").clone()
    x[index, 0, 3, 3] ^= 1
    return dataclasses.replace(ds, **{f"x_{split}": x})


def test_the_digest_reads_every_byte_in_chunks():
    from autoal.data.base import stream_digest

    x = torch.randint(0, 256, (37, 3, 5, 5), dtype=torch.uint8)
    whole = hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16]
    assert stream_digest(x) == whole == stream_digest(x, chunk=4)
    nchw_view = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # the same values, not contiguous
    assert stream_digest(nchw_view, chunk=5) == whole


@pytest.mark.parametrize("split", ["train", "test"])
def test_one_pixel_the_sample_skipped_changes_the_identity(split):
    from autoal.data.base import ALDataset

    g = torch.Generator().manual_seed(0)
    a = ALDataset(
        name="synthetic",
        x_train=torch.randint(0, 256, (600, 1, 8, 8), dtype=torch.uint8, generator=g),
        y_train=torch.arange(600) % 3,
        x_test=torch.randint(0, 256, (600, 1, 8, 8), dtype=torch.uint8, generator=g),
        y_test=torch.arange(600) % 3,
        num_classes=3,
        augmentation="none",
    )
    b = _one_pixel_changed(a, split, 1)  # image 1: the 256-sample digest read images 0, 2, 4, ... of 600
    assert _sampled_identity(a) == _sampled_identity(b)  # the sampled identity could not tell them apart
    assert a.identity()[f"{split}_sha256"] != b.identity()[f"{split}_sha256"]
    assert a.fingerprint() != b.fingerprint()
    before = a.fingerprint()
    getattr(a, f"x_{split}")[1, 0, 3, 3] ^= 1  # changed in place after the digest: hashed again
    assert a.fingerprint() == b.fingerprint() != before


def test_resuming_a_run_on_a_pool_changed_in_one_unsampled_pixel_is_refused(tmp_path):
    a = load_dataset(DataSpec())
    b = _one_pixel_changed(a, "train", 1)
    first = ActiveLearningLoop(_cfg(tmp_path), dataset=a).run()
    assert run_dir_for(_cfg(tmp_path), b) != first.run_dir  # the same command on the changed pool: another run
    before = (first.run_dir / "state.json").read_bytes()
    with pytest.raises(StateError) as e:
        ActiveLearningLoop(_cfg(tmp_path), dataset=b, run_dir=first.run_dir).run()
    msg = str(e.value)
    assert "another data set (saved: digits" in msg and "train_sha256" in msg and str(first.run_dir) in msg
    assert (first.run_dir / "state.json").read_bytes() == before


def _as_written_before_issue_23(cfg: RunConfig, ds, run_dir: Path) -> Path:
    """Turn a run folder into the one the code before full-content digests wrote for the same
    run: its name and state fingerprint hash the sampled identity, which its state holds."""
    old = _sampled_identity(ds)
    data_fp = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]
    run_fp = hashlib.sha256(f"{cfg.fingerprint()}:{data_fp}".encode()).hexdigest()[:12]
    old_dir = run_dir.with_name(f"{ds.name}-{cfg.strategy.name}-seed{cfg.al.seed}-{run_fp}")
    run_dir.rename(old_dir)
    state = json.loads((old_dir / "state.json").read_text())
    state.update(fingerprint=run_fp, data=old)
    (old_dir / "state.json").write_text(json.dumps(state))
    return old_dir


def test_a_run_folder_of_the_sampled_identity_still_resumes(tmp_path):
    cfg = _cfg(tmp_path)
    ds = load_dataset(cfg.dataset)
    first = run_experiment(cfg, dataset=ds)
    old_dir = _as_written_before_issue_23(cfg, ds, first.run_dir)
    assert run_dir_for(cfg) == old_dir
    again = run_experiment(_cfg(tmp_path))
    assert again.run_dir == old_dir and again.history == first.history  # resumed: nothing recomputed
    assert [p.name for p in tmp_path.iterdir()] == [old_dir.name]
    assert "hash" not in json.loads((old_dir / "state.json").read_text())["data"]  # still checked the old way
    # other data (a sampled image changed) in that folder is refused, naming the sampled digest
    other = _one_pixel_changed(ds, "train", 0)
    with pytest.raises(StateError, match=r"another data set .*train_sample_sha256"):
        ActiveLearningLoop(_cfg(tmp_path), dataset=other, run_dir=old_dir).run()
    # with resume off, the run starts afresh in a folder of the full identity
    fresh = _cfg(tmp_path)
    fresh.runtime.resume = False
    assert run_dir_for(fresh) == first.run_dir


def test_a_data_set_object_of_one_class_is_refused_before_the_run_writes(tmp_path):
    from autoal.data.base import ALDataset
    from autoal.errors import DataError

    x = torch.zeros((30, 1, 8, 8), dtype=torch.uint8)
    one = ALDataset(
        name="mine",
        x_train=x,
        y_train=torch.ones(30, dtype=torch.int64),
        x_test=x[:6],
        y_test=torch.arange(6) % 2,
        num_classes=2,
        classes=["no", "yes"],
        augmentation="none",
    )
    with pytest.raises(DataError, match=r"mine: the pool holds a single class \(every label is class 1 \('yes'\)\)"):
        ActiveLearningLoop(_cfg(tmp_path), dataset=one)
    assert list(tmp_path.iterdir()) == []
