"""Labeling by a person (issue 6, item 4): export the next batch as CSV, a person fills in the
labels, import validates and adds them to L, the next export continues — on a small generated
image folder (3 colour classes x 20 images of 8x8 pixels)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autoal.errors import LabelFileError
from autoal.labeling import merge_overrides
from autoal.cli.query import main

REPO = Path(__file__).resolve().parents[2]

from labeling_images import BATCH, COLOURS, PER_CLASS, SEED_PER_CLASS, fill, make_images, read_batch, settings, state  # noqa: E402


def test_round_trip_export_fill_import_next_round(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    images, project = tmp_path / "images", tmp_path / "project"
    truth = make_images(images)
    assert main(["export", *settings(tmp_path, images, project, "strategy=entropy")]) == 0
    assert "round_001.csv" in capsys.readouterr().out
    csv1 = project / "batches" / "round_001.csv"
    rows1 = read_batch(csv1)
    assert len(rows1) == BATCH and all(r["label"] == "" for r in rows1)
    st = state(project)
    seed_ids = {e["sample_id"] for e in st["labeled"]}
    assert len(seed_ids) == 3 * SEED_PER_CLASS and {e["round"] for e in st["labeled"]} == {0}
    assert st["classes"] == ["blue", "green", "red"] and len(st["pool"]) == 3 * PER_CLASS
    ids1 = [int(r["sample_id"]) for r in rows1]
    assert len(set(ids1)) == BATCH and not set(ids1) & seed_ids
    for r in rows1:  # ids, paths (relative to the images folder) and scores agree with the pool
        assert not Path(r["file_path"]).is_absolute() and (images / r["file_path"]).is_file()
        assert r["file_path"] == st["pool"][int(r["sample_id"])]
        assert Path(r["file_path"]).parts[0] == "unlabeled"
    scores = [float(r["score"]) for r in rows1]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= np.log(3) + 1e-6 for s in scores)
    assert st["pending"]["round"] == 1 and st["pending"]["sample_ids"] == ids1

    # exporting again while the batch waits changes nothing and returns the same batch
    before = (project / "labels.json").read_bytes()
    assert main(["export", f"labeling.project={project}"]) == 0
    assert "already waiting" in capsys.readouterr().out
    assert (project / "labels.json").read_bytes() == before and read_batch(csv1) == rows1

    # the person fills in the labels (rows shuffled, as a spreadsheet sort would); import
    filled = fill(rows1[::-1], images, truth, tmp_path / "filled1.csv")
    assert main(["import", f"labeling.project={project}", "--csv", str(filled)]) == 0
    st = state(project)
    assert st["pending"] is None and st["next_round"] == 2
    new = [e for e in st["labeled"] if e["round"] == 1]
    assert [e["sample_id"] for e in new] == ids1  # in the exported (score) order
    for e in new:
        assert e["label"] == truth[e["file"]] and e["file"] == st["pool"][e["sample_id"]]
    assert (project / "batches" / "round_001.imported.csv").read_bytes() == filled.read_bytes()

    # next round: the project remembers strategy=entropy and the rest; only new ids
    assert main(["export", f"labeling.project={project}"]) == 0
    rows2 = read_batch(project / "batches" / "round_002.csv")
    ids2 = [int(r["sample_id"]) for r in rows2]
    assert len(ids2) == BATCH and not set(ids2) & {e["sample_id"] for e in st["labeled"]}
    assert state(project)["pending"]["strategy"] == "entropy"
    filled2 = fill(rows2, images, truth, tmp_path / "filled2.csv")
    assert main(["import", f"labeling.project={project}", "--csv", str(filled2)]) == 0
    st = state(project)
    labeled_ids = [e["sample_id"] for e in st["labeled"]]
    assert len(labeled_ids) == len(set(labeled_ids)) == 3 * SEED_PER_CLASS + 2 * BATCH
    assert [e["round"] for e in st["labeled"]] == [0] * 6 + [1] * BATCH + [2] * BATCH
    assert [r["round"] for r in st["rounds"]] == [0, 1, 2]

    # MLflow: one run for the project, step = round
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("labeling").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == st["tracking_run_id"]
    hist = sorted(client.get_metric_history(st["tracking_run_id"], "labeled"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in hist] == [(0, 6), (1, 6 + BATCH), (2, 6 + 2 * BATCH)]
    per_class = {c: client.get_metric_history(st["tracking_run_id"], f"labeled/{c}") for c in COLOURS}
    assert sum(max(per_class[c], key=lambda m: m.step).value for c in COLOURS) == 6 + 2 * BATCH
    agree = client.get_metric_history(st["tracking_run_id"], "batch_agreement")
    assert sorted(m.step for m in agree) == [1, 2] and all(0 <= m.value <= 1 for m in agree)
    assert runs[0].data.params["strategy.name"] == "entropy"
    assert "labels.json" in {a.path for a in client.list_artifacts(st["tracking_run_id"])}


def test_seed_csv_layout_partial_import_and_determinism(tmp_path, capsys):
    from autoal.config import RunConfig
    from autoal.labeling import LabelingConfig, LabelingProject

    images = tmp_path / "images"
    truth = make_images(images, layout="csv")
    seed_csv = tmp_path / "images-seed.csv"

    def project(name: str, **lab) -> LabelingProject:
        cfg = RunConfig.from_dict(
            {
                "al": {"query_size": BATCH, "mc_samples": 3},
                "train": {"epochs": 3, "batch_size": 16},
                "strategy": {"name": "kmeans"},
                "tracking": {"enabled": False},
                "runtime": {"quiet": True, "num_threads": 2},
            }
        )
        return LabelingProject(
            cfg,
            LabelingConfig.from_dict(
                {
                    "images": str(images),
                    "project": str(tmp_path / name),
                    "seed_csv": str(seed_csv),
                    "image_size": 8,
                    **lab,
                }
            ),
        )

    a = project("a").export_batch()
    b = project("b").export_batch()
    assert a.sample_ids == b.sample_ids  # same state, same seed: same batch
    from PIL import Image

    # the batch's thumbnails beside its CSV: one row of up to 10 images per 10 CSV rows
    assert a.thumbnails == a.csv.with_suffix(".png") and Image.open(a.thumbnails).size[0] > 300
    assert a.scores == list(map(float, range(1, BATCH + 1)))  # kmeans picks a set: the score is the rank
    p = project("a")
    rows = read_batch(a.csv)
    half = rows[: BATCH // 2]
    filled = fill(half, images, truth, tmp_path / "half.csv")  # the other half has no row
    with pytest.raises(LabelFileError, match="have no row"):
        p.import_batch(filled)
    res = p.import_batch(filled, allow_partial=True)
    assert res.added == BATCH // 2 and res.returned_to_pool == BATCH // 2
    st = state(tmp_path / "a")
    assert st["layout"] == "csv" and st["next_round"] == 2
    assert [e["round"] for e in st["labeled"]].count(1) == BATCH // 2
    # the unlabeled half is back in the pool: the next export may pick it again, never a labeled one
    nxt = p.export_batch()
    assert not set(nxt.sample_ids) & {e["sample_id"] for e in st["labeled"]}
    # discard, export again: the same batch
    assert p.discard_pending() == 2
    assert p.export_batch().sample_ids == nxt.sample_ids


def test_new_images_join_the_pool_and_missing_ones_are_refused(tmp_path):
    from PIL import Image

    from autoal.errors import DataError

    images, project = tmp_path / "images", tmp_path / "project"
    make_images(images)
    args = settings(tmp_path, images, project, "tracking.enabled=false")
    assert main(["export", *args]) == 0
    assert main(["discard", f"labeling.project={project}"]) == 0
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(images / "unlabeled" / "zz_new.png")
    assert main(["export", f"labeling.project={project}"]) == 0
    st = state(project)
    assert st["pool"][-1] == "unlabeled/zz_new.png" and len(st["pool"]) == 3 * PER_CLASS + 1
    assert main(["discard", f"labeling.project={project}"]) == 0
    (images / st["pool"][10]).unlink()
    with pytest.raises(DataError, match="gone"):
        main(["export", f"labeling.project={project}"])


def test_a_quoted_project_folder_with_a_space_keeps_its_settings(tmp_path, capsys):
    """``labeling.project='/data/My Photos-al'``: the quotes are Hydra's, not the folder's; the
    next round, given the same quoted path alone, finds the stored settings (strategy=entropy)."""
    images, project = tmp_path / "images", tmp_path / "My Photos-al"
    truth = make_images(images)
    quoted = f"labeling.project='{project}'"
    args = [a for a in settings(tmp_path, images, project, "strategy=entropy") if not a.startswith("labeling.project")]
    assert main(["export", *args, quoted]) == 0
    assert (project / "settings.json").is_file() and not list(tmp_path.glob("'*"))
    rows = read_batch(project / "batches" / "round_001.csv")
    assert main(["import", quoted, "--csv", str(fill(rows, images, truth, tmp_path / "f.csv"))]) == 0
    assert main(["export", quoted]) == 0
    assert state(project)["pending"]["strategy"] == "entropy"
    capsys.readouterr()


def test_merge_overrides_cli_wins():
    assert merge_overrides(["strategy=entropy", "al.query_size=5"], ["al.query_size=7"]) == [
        "strategy=entropy",
        "al.query_size=7",
    ]


@pytest.mark.slow
def test_cli_subprocess_export_and_bad_import(tmp_path):
    images, project = tmp_path / "images", tmp_path / "project"
    make_images(images)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("AUTOAL_CONF_DIR", None)
    cmd = [sys.executable, str(REPO / "pipelines" / "query.py")]
    p = subprocess.run(
        [*cmd, "export", *settings(tmp_path, images, project)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rows = read_batch(project / "batches" / "round_001.csv")
    rows[0]["label"] = "purple"
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    before = (project / "labels.json").read_bytes()
    p = subprocess.run(
        [*cmd, "import", f"labeling.project={project}", "--csv", str(bad)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2
    assert "LabelFileError" in p.stderr and str(bad) in p.stderr and "row 2, field 'label'" in p.stderr
    assert "'purple' is not a known class" in p.stderr
    assert (project / "labels.json").read_bytes() == before
