"""The figures every run writes (and logs to MLflow): the learning curve, the labeled set's class
histogram per round and a thumbnail grid of each round's picks; `autoal run` prints their paths;
a labeling export writes the batch's thumbnails beside its CSV."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from autoal.config import RunConfig
from autoal.loop import run_experiment


def test_run_writes_and_logs_class_histogram_and_picks(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = RunConfig.from_dict(
        {
            "al": {"rounds": 2, "mc_samples": 2},
            "train": {"epochs": 2},
            "tracking": {"uri": uri, "log_model": False},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True},
        }
    )
    r = run_experiment(cfg)
    assert set(r.figures) == {"learning_curve", "class_histogram", "picks"}
    for path in r.figures.values():
        assert path.parent == r.run_dir and Image.open(path).size[0] > 300
    # thumbnails: one row per round's picks (initial set, round 1, round 2) -> taller than one row
    w, h = Image.open(r.figures["picks"]).size
    assert h > 200 and w > h
    d = json.loads((r.run_dir / "labeled.json").read_text())
    counts = np.asarray(d["class_counts_per_round"])
    assert counts.shape == (3, 10) and counts.sum(1).tolist() == [h["labels"] for h in r.history]
    assert len(d["labels"]) == len(d["labeled"]) and set(d["labels"]) <= set(range(10))
    from mlflow.tracking import MlflowClient

    logged = {a.path for a in MlflowClient(uri).list_artifacts(r.tracking_run_id)}
    assert {"learning_curve.png", "class_histogram.png", "picks.png", "labeled.json", "config.yaml"} <= logged


def test_the_final_model_is_registered_and_loads(tmp_path):
    """tracking.register_model: the run's final task model becomes version 1 of that registered
    model, and mlflow.pytorch.load_model returns a working classifier from it."""
    import mlflow
    import torch
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = RunConfig.from_dict(
        {
            "al": {"rounds": 1, "mc_samples": 2},
            "train": {"epochs": 2},
            "tracking": {"uri": uri, "register_model": "digits-margin"},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True},
        }
    )
    r = run_experiment(cfg)
    versions = MlflowClient(uri).search_model_versions("name = 'digits-margin'")
    assert [str(v.version) for v in versions] == ["1"] and versions[0].run_id == r.tracking_run_id
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    (tmp_path / "m").mkdir()
    try:
        model = mlflow.pytorch.load_model("models:/digits-margin/1", dst_path=str(tmp_path / "m"))
    finally:
        mlflow.set_tracking_uri(previous)
    with torch.no_grad():  # a torch.export program: inference mode already, any batch size
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
        assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert MlflowClient(uri).get_run(r.tracking_run_id).data.tags["autoal.model_format"] == "pt2"


def test_thumbnail_grid_lays_each_image_out_scaled_as_imshow_shows_it():
    """The picks grid is one mosaic: grayscale thumbnails stretched to their own range (black
    when constant), RGB as given, (C, H, W) transposed, row r / column j at (r, j)·(size + gap)
    on white."""
    from autoal.plots import _mosaic, _thumbnail_rgb

    gray = np.array([[10, 20], [30, 50]], dtype=np.uint8)
    t = _thumbnail_rgb(gray[None])  # (1, H, W)
    assert t.shape == (2, 2, 3) and np.allclose(t[..., 0], [[0, 0.25], [0.5, 1]]) and np.all(t[..., 0] == t[..., 2])
    assert np.all(_thumbnail_rgb(np.full((3, 3), 7, dtype=np.uint8)) == 0)
    rgb = np.zeros((3, 2, 2), dtype=np.uint8)
    rgb[0] = 255
    assert np.allclose(_thumbnail_rgb(rgb)[..., 0], 1) and np.allclose(_thumbnail_rgb(rgb)[..., 1:], 0)
    assert np.allclose(_thumbnail_rgb(np.full((2, 2, 3), 2.0)), 1)  # floats clipped to [0, 1]
    red, black = _thumbnail_rgb(rgb), np.zeros((2, 2, 3))
    m = _mosaic([[red, black], [black]], n_rows=2, cols=2, h=2, w=2, gap=1)
    assert m.shape == (5, 5, 3)
    assert np.all(m[0:2, 0:2] == red) and np.all(m[0:2, 3:5] == 0) and np.all(m[3:5, 0:2] == 0)
    assert np.all(m[2] == 1) and np.all(m[:, 2] == 1) and np.all(m[3:5, 3:5] == 1)  # gaps and the empty cell
