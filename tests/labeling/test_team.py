"""Labeling by a team (issue 24): a project keeps its paths absolute, so that commands from any
working folder use the same images and MLflow store; batch CSVs name images relative to the
images folder (older absolute CSVs still import); the thumbnail sheet captions every image with
its sample_id; a project whose images folder is gone is refused in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autoal.cli.common import main_guard
from autoal.cli.query import main
from labeling_images import BATCH, PER_CLASS, fill, make_images, read_batch, settings, state

REPO = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _autoal(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("AUTOAL_CONF_DIR", None)
    p = subprocess.run(
        [sys.executable, "-m", "autoal", "query", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p


@pytest.mark.slow
def test_a_team_runs_the_commands_from_two_working_folders(tmp_path):
    """Alice creates the project from her folder with relative paths (the default MLflow store
    too), Bob imports and exports the next round from his: the same project, images and store;
    nothing lands in either working folder."""
    from mlflow.tracking import MlflowClient

    # at different depths: a path relative to Alice's folder names another place from Bob's
    shared, alice, bob = tmp_path / "shared", tmp_path / "alice", tmp_path / "home" / "bob"
    alice.mkdir()
    bob.mkdir(parents=True)
    images, project = shared / "images", shared / "project"
    truth = make_images(images)
    _autoal(
        alice,
        "export",
        "labeling.images=../shared/images",
        "labeling.project=../shared/project",
        "tracking.uri=sqlite:///../shared/mlflow.db",
        "tracking.experiment=team",
        "labeling.image_size=8",
        f"al.query_size={BATCH}",
        "al.mc_samples=3",
        "train.epochs=2",
        "runtime.quiet=true",
        "runtime.num_threads=2",
        "strategy=entropy",
    )
    stored = json.loads((project / "settings.json").read_text())["overrides"]
    assert f"labeling.images={images}" in stored and f"tracking.uri=sqlite:///{shared / 'mlflow.db'}" in stored
    assert state(project)["images"] == str(images)
    rows = read_batch(project / "batches" / "round_001.csv")
    assert all(not Path(r["file_path"]).is_absolute() and (images / r["file_path"]).is_file() for r in rows)
    assert (project / "batches" / "round_001.png").is_file()

    # Bob fills in the batch and imports it from his folder, then exports the next round
    fill(rows, images, truth, shared / "filled1.csv")
    p = _autoal(bob, "import", "labeling.project=../../shared/project", "--csv", "../../shared/filled1.csv")
    assert "8 labels imported" in p.stdout
    p = _autoal(bob, "export", "labeling.project=../../shared/project")
    assert "round_002.csv" in p.stdout
    st = state(project)
    assert st["next_round"] == 2 and st["pending"]["round"] == 2 and st["pending"]["strategy"] == "entropy"
    assert len(st["pool"]) == 3 * PER_CLASS and len(st["labeled"]) == 6 + BATCH
    rows2 = read_batch(project / "batches" / "round_002.csv")
    assert not {r["sample_id"] for r in rows2} & {r["sample_id"] for r in rows}

    # one MLflow run in the shared store, rounds 0 and 1 logged; nothing in either working folder
    assert os.listdir(alice) == [] and os.listdir(bob) == [] and os.listdir(bob.parent) == ["bob"]
    client = MlflowClient(tracking_uri=f"sqlite:///{shared / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("team").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == st["tracking_run_id"]
    hist = client.get_metric_history(st["tracking_run_id"], "labeled")
    assert sorted((m.step, m.value) for m in hist) == [(0, 6), (1, 6 + BATCH)]
    # a new experiment keeps its artifacts beside the store (MLflow's default: the creator's ./mlruns)
    assert "labels.json" in {a.path for a in client.list_artifacts(st["tracking_run_id"])}
    assert list((shared / "mlruns").rglob("labels.json"))


def test_a_project_with_relative_stored_settings_and_an_absolute_csv_keeps_working(tmp_path, monkeypatch):
    """A project written by an older autoal: settings.json holds the paths as typed (relative)
    and the batch CSV absolute paths. Import accepts the absolute CSV; the next export, from the
    same folder, resolves the stored paths there and stores them absolute."""
    monkeypatch.chdir(tmp_path)
    truth = make_images(tmp_path / "images")
    args = [
        a
        for a in settings(tmp_path, Path("images"), Path("project"), "tracking.enabled=false")
        if not a.startswith("tracking.uri")
    ]
    assert main(["export", *args]) == 0
    project, images = tmp_path / "project", tmp_path / "images"
    old = [a for a in args if not a.startswith("labeling.project")]  # what the older version stored
    (project / "settings.json").write_text(json.dumps({"overrides": old}))
    rows = read_batch(project / "batches" / "round_001.csv")
    for r in rows:  # the older CSV form: absolute paths
        r["file_path"] = str(images / r["file_path"])
    fill(rows, images, truth, tmp_path / "filled.csv")
    assert main(["import", "labeling.project=project", "--csv", "filled.csv"]) == 0
    assert state(project)["next_round"] == 2
    assert main(["export", "labeling.project=project"]) == 0
    stored = json.loads((project / "settings.json").read_text())["overrides"]
    assert f"labeling.images={images}" in stored and f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}" in stored
    assert "labeling.images=images" not in stored and "tracking.enabled=false" in stored
    # a row whose file_path names another image is still refused, in either form
    rows2 = read_batch(project / "batches" / "round_002.csv")
    rows2[0]["file_path"], rows2[1]["file_path"] = rows2[1]["file_path"], rows2[0]["file_path"]
    from autoal.errors import LabelFileError

    with pytest.raises(LabelFileError, match="row 2, field 'file_path'"):
        main(["import", "labeling.project=project", "--csv", str(fill(rows2, images, truth, tmp_path / "f2.csv"))])


@pytest.mark.parametrize("how", ["moved", "deleted"])
@pytest.mark.parametrize("cmd", ["export", "import"])
def test_a_project_whose_images_folder_is_gone_is_refused_in_one_line(tmp_path, capsys, how, cmd):
    site = tmp_path / "site"
    images, project = site / "images", site / "project"
    truth = make_images(images)
    assert main(["export", *settings(tmp_path, images, project, "tracking.enabled=false")]) == 0
    rows = read_batch(project / "batches" / "round_001.csv")
    filled = fill(rows, images, truth, tmp_path / "filled.csv")
    if how == "moved":  # the project moved together with its images: the stored path is the old one
        site = shutil.move(site, tmp_path / "elsewhere")
        project = Path(site) / "project"
    else:
        shutil.rmtree(images)
    before = _files(project)
    capsys.readouterr()
    argv = [cmd, f"labeling.project={project}"] + (["--csv", str(filled)] if cmd == "import" else [])
    with pytest.raises(SystemExit) as e:
        main_guard(main, argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert str(project / "labels.json") in err and f"images folder {images} does not exist" in err
    assert _files(project) == before


def test_the_sheet_captions_every_thumbnail_with_its_id(tmp_path):
    """Every id once, centred under its own thumbnail (inside its column, below its image, above
    the next row); the PNG shows ink in each caption band and nowhere else between rows."""
    from PIL import Image

    from autoal.plots import captioned_grid_figure

    ids = [int(i) for i in np.random.default_rng(0).choice(1000, size=23, replace=False)]
    images = [np.full((3, 8, 8), 40 + 8 * k, np.uint8) for k in range(len(ids))]
    fig, ax, cells = captioned_grid_figure(
        images,
        [f"id {i}\nguess red" for i in ids],
        per_row=10,
        title="round 1",
        row_labels=["rows 1-10", "rows 11-20", "rows 21-23"],
    )
    fig.canvas.draw()
    texts = [t.get_text() for t in ax.texts]
    for i in ids:
        assert sum(t.split("\n")[0] == f"id {i}" for t in texts) == 1
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    pitch = cells[1][0] - cells[0][0]
    for k, (t, (x0, y0, w, h)) in enumerate(zip(ax.texts, cells)):
        assert t.get_text().startswith(f"id {ids[k]}\n")
        x, y = t.get_position()
        assert x0 < x < x0 + w and y > y0 + h  # under its own image
        box = t.get_window_extent(renderer)  # pixels: within its column, between its image and the next row
        (left, top_img), (right, _) = to_px((x0 - (pitch - w) / 2, y0 + h)), to_px((x0 + w + (pitch - w) / 2, y0))
        assert left <= box.x0 and box.x1 <= right and box.y1 <= top_img + 1
        below = [c for c in cells if c[0] == x0 and c[1] > y0]
        if below:
            assert box.y0 >= to_px((x0, below[0][1]))[1] - 1
    path = tmp_path / "sheet.png"
    fig.savefig(path)
    png = np.asarray(Image.open(path).convert("L"), dtype=float)
    height = png.shape[0]
    for t, _cell in zip(ax.texts, cells):
        box = t.get_window_extent(renderer)
        band = png[int(height - box.y1) : int(height - box.y0) + 1, int(box.x0) : int(box.x1) + 1]
        assert band.min() < 100  # dark text on the white band
