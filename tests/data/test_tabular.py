"""Data beyond 8-bit images (issue 24): feature data (N, D), float images of any channel count,
tables (dataset=table, dataset=sklearn), the MLP backbone, and every strategy on a table."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import autoal
from autoal.config import RunConfig
from autoal.data import DataSpec, load_dataset
from autoal.data.base import ALDataset
from autoal.data.files import dataset_from_arrays
from autoal.errors import ConfigError, DataError
from autoal.loop import run_experiment
from autoal.models import build_model
from autoal.strategies.registry import strategy_names

ROOT = Path(__file__).resolve().parents[2]


def _arrays(x_tr, y_tr, x_te, y_te) -> ALDataset:
    return dataset_from_arrays("t", x_tr, y_tr, x_te, y_te, where="test", source="test")


def _wine_frame() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    d = load_wine(as_frame=True)
    frame = d.frame.drop(columns="target")
    frame["cultivar"] = [str(d.target_names[t]) for t in d.target]
    return frame


# -- feature data ------------------------------------------------------------------------------


def test_features_stay_float_and_are_standardized_with_the_pool_stats():
    rng = np.random.default_rng(0)
    # values in [0, 0.01]: quantized to 4 distinct uint8 values before issue 24
    x = rng.uniform(0, 0.01, (40, 5))
    x[:, 1] = rng.normal(1000.0, 50.0, 40)  # a column on another scale, negative-free
    x[:, 2] = rng.normal(-3.0, 2.0, 40)  # negative values
    y = np.arange(40) % 2
    ds = _arrays(x[:30], y[:30], x[30:], y[30:])
    assert ds.kind == "features" and ds.x_train.dtype == torch.float32 and ds.x_train.shape == (30, 5)
    assert len(torch.unique(ds.x_train[:, 0])) == 30  # every value kept
    assert torch.allclose(ds.x_train, torch.tensor(x[:30], dtype=torch.float32))
    z = ds.eval_transform(ds.x_train)
    assert torch.allclose(z.mean(0), torch.zeros(5), atol=1e-4)
    assert torch.allclose(z.std(0), torch.ones(5), atol=1e-4)  # unbiased std of the pool
    assert ds.in_channels == 5 and ds.image_size == 1 and ds.augmentation == "none"
    assert torch.equal(ds.train_transform(ds.x_train[:4]), ds.eval_transform(ds.x_train[:4]))  # no augmentation
    assert ds.display_images([0, 1]) is None


def test_constant_feature_is_centred_not_blown_up():
    x = np.ones((10, 2))
    x[:, 1] = np.arange(10)
    ds = _arrays(x, np.arange(10) % 2, x[:4] + 5, np.arange(4) % 2)
    assert float(ds.std[0]) == 1.0 and torch.all(ds.eval_transform(ds.x_test)[:, 0] == 5)


def test_feature_data_refuses_augmentation_and_mixed_kinds():
    x = torch.zeros(6, 3)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(DataError, match="never augmented"):
        ALDataset("f", x, y, x, y, 2, augmentation="crop_flip")
    with pytest.raises(DataError, match="x_train holds features.*x_test images"):
        _arrays(np.zeros((6, 64)), y.numpy(), np.zeros((6, 8, 8)), y.numpy())
    with pytest.raises(DataError, match="NaN"):
        _arrays(np.full((6, 3), np.nan), y.numpy(), np.zeros((6, 3)), y.numpy())


def test_identity_names_the_dtype_of_float_data_only():
    y = np.arange(8) % 2
    f = _arrays(np.zeros((8, 4)), y, np.zeros((8, 4)), y).identity()
    u = _arrays(np.zeros((8, 4, 4), np.uint8), y, np.zeros((8, 4, 4), np.uint8), y).identity()
    assert f["dtype"] == "float32" and "dtype" not in u


def test_npz_of_features(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "f.npz"
    np.savez(
        p,
        x_train=rng.normal(size=(20, 64)),
        y_train=np.arange(20) % 4,
        x_test=rng.normal(size=(8, 64)),
        y_test=np.arange(8) % 4,
    )
    ds = load_dataset(DataSpec(name="npz", path=str(p)))
    assert ds.kind == "features" and ds.x_train.shape == (20, 64) and ds.x_train.dtype == torch.float32


# -- float images ------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [2, 4, 13])
def test_float_images_of_any_channel_count_stay_float(channels):
    rng = np.random.default_rng(channels)
    x = rng.normal(-1.0, 3.0, (12, channels, 6, 6)).astype(np.float64)
    x[:, 0] *= 10
    y = np.arange(12) % 3
    ds = _arrays(x[:9], y[:9], x[9:], y[9:])
    assert ds.kind == "images" and ds.in_channels == channels and ds.x_train.dtype == torch.float32
    assert torch.allclose(ds.x_train, torch.tensor(x[:9], dtype=torch.float32))
    z = ds.eval_transform(ds.x_train)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(channels), atol=1e-4)
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(channels), atol=1e-3)
    thumbs = ds.display_images([0, 1])
    assert thumbs[0].min() >= 0 and thumbs[0].max() <= 1 and thumbs[0].shape[0] in (1, 3)
    assert ds.train_transform(ds.x_train).shape == (9, channels, 6, 6)  # crop_flip on float batches


def test_unit_range_floats_are_no_longer_quantized():
    x = np.linspace(0, 0.01, 16 * 4 * 4).reshape(16, 4, 4)
    y = np.arange(16) % 2
    ds = _arrays(x, y, x, y)
    assert ds.x_train.dtype == torch.float32 and len(torch.unique(ds.x_train)) == 256


def test_uint8_images_are_read_as_before():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (10, 3, 5, 5), dtype=np.uint8)
    y = np.arange(10) % 2
    ds = _arrays(x, y, x, y)
    assert ds.x_train.dtype == torch.uint8
    xf = torch.tensor(x, dtype=torch.float64) / 255
    mean = xf.mean((0, 2, 3))
    std = xf.permute(1, 0, 2, 3).reshape(3, -1).std(1)
    assert torch.allclose(ds.mean.double(), mean, atol=1e-6) and torch.allclose(ds.std.double(), std, atol=1e-6)
    expect = (torch.tensor(x).float() / 255.0 - ds.mean.view(1, -1, 1, 1)) / ds.std.view(1, -1, 1, 1)
    assert torch.equal(ds.eval_transform(ds.x_train), expect)
    # integers in 0..255 of a wider dtype stay 8-bit pixels
    assert _arrays(x.astype(np.int64), y, x, y).x_train.dtype == torch.uint8


# -- the MLP ---------------------------------------------------------------------------------


def test_mlp_backbone_contract():
    m = build_model("mlp", 30, 3, 1, dropout=0.3, width=16, depth=3)
    x = torch.randn(5, 30)
    maps = m.stages(x)
    assert [tuple(t.shape) for t in maps] == [(5, 16, 1, 1)] * 3 and m.stage_channels == [16, 16, 16]
    emb = m.embed(x)
    assert emb.shape == (5, 16) and m(x).shape == (5, 3)
    m.eval()
    assert torch.allclose(m(x), m.fc(emb))
    assert m.mc_head(emb, 4).shape == (4, 5, 3)
    assert m.spec["depth"] == 3 and build_model(**m.spec).stage_channels == [16, 16, 16]
    with pytest.raises(ConfigError, match="model.depth"):
        build_model("small_cnn", 1, 3, 8, depth=2)


def test_image_models_refuse_features_and_mlp_refuses_images(tmp_path):
    base = {
        "al": {"initial_size": 10, "query_size": 5, "rounds": 1},
        "train": {"epochs": 1},
        "tracking": {"enabled": False},
        "runtime": {"output_dir": str(tmp_path), "quiet": True},
    }
    y = np.arange(40) % 2
    feats = _arrays(np.random.default_rng(0).normal(size=(40, 7)), y, np.zeros((6, 7)), y[:6])
    with pytest.raises(ConfigError, match=r"model 'small_cnn' reads images.*holds features.*model=mlp"):
        run_experiment(RunConfig.from_dict({**base, "model": {"name": "small_cnn"}}), dataset=feats)
    images = _arrays(np.zeros((40, 8, 8), np.uint8), y, np.zeros((6, 8, 8), np.uint8), y[:6])
    with pytest.raises(ConfigError, match=r"model 'mlp' reads features.*holds images"):
        run_experiment(RunConfig.from_dict({**base, "model": {"name": "mlp"}}), dataset=images)
    with pytest.raises(ConfigError, match="model.depth"):
        RunConfig.from_dict({**base, "model": {"name": "small_cnn", "depth": 2}})


def test_api_run_on_feature_arrays_defaults_to_the_mlp(tmp_path):
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    r = autoal.run((x[:400], y[:400], x[400:], y[400:]), "margin", rounds=1, epochs=10, output_dir=str(tmp_path))
    assert r.model.spec["name"] == "mlp" and r.history[-1]["accuracy"] > 0.85
    assert "picks" not in r.figures and (r.run_dir / "learning_curve.png").exists()


# -- tables ------------------------------------------------------------------------------------


def test_table_csv_string_labels_and_stratified_split(tmp_path):
    frame = _wine_frame()
    frame.to_csv(tmp_path / "wine.csv", index=False)
    ds = load_dataset(DataSpec(name="table", path=str(tmp_path / "wine.csv"), options={"label": "cultivar"}))
    assert ds.kind == "features" and ds.x_train.shape[1] == 13 and ds.classes == ["class_0", "class_1", "class_2"]
    assert len(ds.x_train) + len(ds.x_test) == 178 and abs(len(ds.x_test) - 0.2 * 178) <= 3
    counts = np.bincount(ds.y_test.numpy(), minlength=3)
    assert np.all(np.abs(counts - 0.2 * frame["cultivar"].value_counts().sort_index().to_numpy()) <= 1)
    again = load_dataset(DataSpec(name="table", path=str(tmp_path / "wine.csv"), options={"label": "cultivar"}))
    assert torch.equal(ds.x_test, again.x_test)  # seeded
    other = load_dataset(
        DataSpec(
            name="table",
            path=str(tmp_path / "wine.csv"),
            options={"label": "cultivar", "split_seed": 1, "test_fraction": 0.5},
        )
    )
    assert abs(len(other.x_test) - 89) <= 3


def test_table_parquet_with_a_split_column_and_feature_list(tmp_path):
    frame = _wine_frame()
    frame["part"] = np.where(np.arange(len(frame)) % 4 == 0, "test", "train")
    frame.to_parquet(tmp_path / "wine.parquet")
    ds = load_dataset(
        DataSpec(
            name="table",
            path=str(tmp_path / "wine.parquet"),
            options={"label": "cultivar", "split": "part", "features": ["alcohol", "magnesium"]},
        )
    )
    assert ds.x_train.shape == (133, 2) and len(ds.x_test) == 45
    assert torch.allclose(
        ds.x_train[:, 1], torch.tensor(frame["magnesium"][frame["part"] == "train"].to_numpy(), dtype=torch.float32)
    )


def test_table_refuses_missing_values_and_text_columns_naming_them(tmp_path):
    frame = _wine_frame()
    frame.loc[[3, 7, 9], "ash"] = np.nan
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    with pytest.raises(DataError, match=r"missing values in column\(s\) 'ash' \(3 of 178 rows\)"):
        load_dataset(DataSpec(name="table", path=str(tmp_path / "gaps.csv"), options={"label": "cultivar"}))
    frame = _wine_frame()
    frame["region"] = "north"
    frame.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DataError, match=r"'region' \(e.g. 'north'\) are not numeric.*get_dummies"):
        load_dataset(DataSpec(name="table", path=str(tmp_path / "text.csv"), options={"label": "cultivar"}))
    with pytest.raises(DataError, match="'kind' is not a column.*alcohol"):
        load_dataset(DataSpec(name="table", path=str(tmp_path / "text.csv"), options={"label": "kind"}))
    with pytest.raises(ConfigError, match="dataset.options.label is required"):
        load_dataset(DataSpec(name="table", path=str(tmp_path / "text.csv")))


def test_sklearn_tables_load_offline():
    ds = load_dataset(DataSpec(name="sklearn", options={"name": "digits"}))
    assert ds.x_train.shape == (1347, 64) and len(ds.x_test) == 450 and ds.classes == [str(i) for i in range(10)]
    bc = load_dataset(DataSpec(name="sklearn", options={"name": "breast_cancer"}))
    assert bc.classes == ["benign", "malignant"] and bc.x_train.shape[1] == 30
    with pytest.raises(ConfigError, match="breast_cancer, wine, iris, digits"):
        load_dataset(DataSpec(name="sklearn", options={"name": "adult"}))


def test_autoal_credit_pixels_space_reads_the_standardized_features():
    ds = load_dataset(DataSpec(name="sklearn", options={"name": "wine"}))
    z = ds.pca_input()
    assert torch.allclose(z, ds.eval_transform(ds.x_train)) and torch.allclose(z.std(0), torch.ones(13), atol=1e-4)


# -- every strategy on a table -----------------------------------------------------------------

FAST = {
    "autoal": {"lookahead_parts": 2, "head_steps": 5, "gate_steps": 5},
    "autoal_paper": {"formulation": "paper", "warmup_epochs": 1, "search_epochs": 1, "gmm_samples": 200},
    "ens_var_r": {"ensemble_size": 2},
    "lpl": {"hidden": 8},
    "vaal": {"epochs": 1, "min_iterations": 2, "width": 4, "latent_dim": 4, "disc_hidden": 8},
    "albl": {"arms": ["random", "entropy", "coreset"]},
}
REFUSED = {"vaal": r"models the samples as images .* holds features \(N, 13\) float32"}


@pytest.mark.parametrize("name", sorted(set(strategy_names()) | {"autoal_paper"}))
def test_every_strategy_runs_a_round_on_a_table(name, tmp_path):
    """Every registered strategy (and AutoAL's paper formulation) runs one round on wine's 13
    standardized features with the MLP, or refuses with a ConfigError saying why."""
    ds = load_dataset(DataSpec(name="sklearn", options={"name": "wine"}))
    cfg = RunConfig.from_dict(
        {
            "strategy": {"name": "autoal" if name == "autoal_paper" else name, "params": FAST.get(name, {})},
            "model": {"name": "mlp", "width": 16},
            "al": {"initial_size": 20, "query_size": 10, "rounds": 1, "mc_samples": 2},
            "train": {"epochs": 2, "batch_size": 16},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True, "device": "cpu", "num_threads": 2},
        }
    )
    if name in REFUSED:
        with pytest.raises(ConfigError, match=REFUSED[name]):
            run_experiment(cfg, dataset=ds)
        return
    res = run_experiment(cfg, dataset=ds)
    assert [h["labels"] for h in res.history] == [20, 30]
    assert len(set(res.labeled.tolist())) == 30


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.slow
def test_autoal_run_dataset_table_end_to_end(tmp_path):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    frame = d.frame.drop(columns="target")
    frame["diagnosis"] = [str(d.target_names[t]) for t in d.target]
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    db = tmp_path / "mlflow.db"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoal",
            "run",
            "dataset=table",
            f"dataset.path={tmp_path / 'cancer.csv'}",
            "dataset.options.label=diagnosis",
            "strategy=kmeans",
            "al.rounds=2",
            "train.epochs=10",
            "tracking=sqlite",
            f"tracking.uri=sqlite:///{db}",
            f"runtime.output_dir={tmp_path / 'runs'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "model:      mlp" in out.stdout and "table · kmeans · seed 0: AUBC" in out.stdout, out.stdout[-2000:]
    final = [line for line in out.stdout.splitlines() if line.startswith("2 ")][0].split()
    assert int(final[1]) == 40 and float(final[2]) > 0.85
    with sqlite3.connect(db) as con:
        params = dict(con.execute("select key, value from params").fetchall())
    assert params.get("model.name") == "mlp" and params.get("dataset.name") == "table"


def test_tabular_setting_composes_into_the_quality_sweep():
    """setting=digits_table: digits' 64 pixel features as a table, the MLP, the digits budget; a
    setting of sweep=quality; dataset=table composes model=mlp."""
    from autoal.cli.common import compose, run_config

    cfg = run_config(compose(["setting=digits_table", "strategy=margin"]))
    assert (cfg.setting.name, cfg.dataset.name, cfg.dataset.options, cfg.model.name) == (
        "digits_table",
        "sklearn",
        {"name": "digits"},
        "mlp",
    )
    assert (cfg.al.initial_size, cfg.al.query_size, cfg.al.rounds, cfg.train.epochs) == (20, 10, 10, 50)
    sweep = compose(["sweep=quality"], config_name="sweep")
    assert "digits_table" in sweep["sweep"]["space"]["setting"]["grid"]
    table = run_config(compose(["dataset=table", "dataset.path=x.csv", "dataset.options.label=y"]))
    assert table.model.name == "mlp" and table.dataset.options == {"label": "y"}
