"""Shared by the labeling tests and the command-line tests: a small generated image folder
(3 colour classes x 20 images of 8x8 pixels), the labeling settings for it, and reading and
filling a batch file as the person who labels does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 230)}
SEED_PER_CLASS = 2
PER_CLASS = 20
BATCH = 8


def make_images(root: Path, layout: str = "folders", seed: int = 0) -> dict[str, str]:
    """3 classes x 20 noisy 8x8 colour squares. ``folders``: labeled/<class>/ (2 per class) and
    unlabeled/ (the rest, names that do not give the class away); ``csv``: every image under
    photos/ and a seed.csv. Returns {path relative to root: true class}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    truth: dict[str, str] = {}
    seed_rows = []
    k = 0
    for cls, rgb in COLOURS.items():
        for i in range(PER_CLASS):
            a = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (8, 8, 3)), 0, 255).astype(np.uint8)
            is_seed = i < SEED_PER_CLASS
            if layout == "folders":
                rel = f"labeled/{cls}/{cls}_{i:02d}.png" if is_seed else f"unlabeled/batch{k % 3}/img_{k:03d}.png"
            else:
                rel = f"photos/img_{k:03d}.png"
                if is_seed:
                    seed_rows.append((rel, cls))
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(p)
            truth[rel] = cls
            k += 1
    if layout == "csv":
        with open(root.parent / f"{root.name}-seed.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "label"])
            w.writerows(seed_rows)
    return truth


def settings(tmp_path: Path, images: Path, project: Path, *extra: str) -> list[str]:
    return [
        f"labeling.images={images}",
        f"labeling.project={project}",
        "labeling.image_size=8",
        f"al.query_size={BATCH}",
        "al.mc_samples=3",
        "train.epochs=3",
        "train.batch_size=16",
        "runtime.quiet=true",
        "runtime.num_threads=2",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "tracking.experiment=labeling",
        *extra,
    ]


def read_batch(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        assert r.fieldnames == ["sample_id", "file_path", "score", "label"]
        return list(r)


def fill(rows: list[dict[str, str]], images: Path, truth: dict[str, str], out: Path) -> Path:
    """What the person does: write the true class of each image into the label column."""
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["sample_id", "file_path", "score", "label"])
        w.writeheader()
        for row in rows:  # file_path: relative to the images folder (absolute in older versions)
            p = Path(row["file_path"])
            rel = (p.relative_to(images) if p.is_absolute() else p).as_posix()
            w.writerow({**row, "label": truth[rel]})
    return out


def state(project: Path) -> dict:
    return json.loads((project / "labels.json").read_text())
