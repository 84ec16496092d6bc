"""A labeling project's pool: the state of a new project (the seed read from class folders or a
seed CSV), the images added since the last export, and the pool as a data set (see
:mod:`autoal.labeling`)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoal.data.base import ALDataset
from autoal.data.files import image_extensions, load_image_files
from autoal.errors import ConfigError, DataError, LabelFileError
from autoal.labeling.config import STATE_VERSION, LabelingConfig
from autoal.labeling.files import Problems, read_csv, scan_images
from autoal.paths import user_path


def new_state(lc: LabelingConfig, project: Path) -> dict[str, Any]:
    """The state of a new project in folder ``project``: the pool (sample id = position), the
    classes and the seed labels (round 0), read from ``lc.images`` (and ``lc.seed_csv``)."""
    if not lc.images:
        raise ConfigError(f"labeling.images: required to create the project {project} (the folder of images to label)")
    root = user_path(lc.images).resolve()
    if not root.is_dir():
        raise DataError(f"labeling.images: folder {root} does not exist")
    if lc.seed_csv:
        pool = scan_images(root, image_extensions(), exclude=project, root=root)
        seed = read_seed_csv(lc, user_path(lc.seed_csv).resolve(), root, set(pool))
        seed_classes = sorted({lab for _, lab in seed})
    else:
        pool, seed, seed_classes = _seed_from_folders(root, project)
    classes = _classes(lc, root, seed, seed_classes)
    index = {f: i for i, f in enumerate(pool)}
    labeled = [{"sample_id": index[f], "file": f, "label": lab, "round": 0} for f, lab in seed]
    return {
        "version": STATE_VERSION,
        "images": str(root),
        "layout": "csv" if lc.seed_csv else "folders",
        "classes": classes,
        "pool": pool,
        "labeled": labeled,
        "next_round": 1,
        "pending": None,
        "rounds": [
            {
                "round": 0,
                "labeled": len(labeled),
                "added": len(labeled),
                "returned_to_pool": 0,
                "batch_agreement": None,
                "train_loss": None,
                "strategy": None,
                "csv": lc.seed_csv,
            }
        ],
        "tracking_run_id": None,
        "logged_rounds": 0,
    }


def _seed_from_folders(root: Path, project: Path) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """Layout A: (the pool, the seed's (file, label) pairs, the seed's classes) of ``root``'s
    ``labeled/<class>/`` and ``unlabeled/`` folders; the seed comes first in the pool."""
    exts = image_extensions()
    lab_dir, unl_dir = root / "labeled", root / "unlabeled"
    if not lab_dir.is_dir() or not unl_dir.is_dir():
        raise DataError(
            f"labeling.images: {root} needs sub-folders labeled/<class>/ (the seed) and unlabeled/ "
            "(the images to label), or set labeling.seed_csv to a CSV of file,label"
        )
    seed: list[tuple[str, str]] = []
    seed_classes: list[str] = []
    for d in sorted(p for p in lab_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = scan_images(d, exts, exclude=project, root=root)
        if not files:
            raise DataError(f"labeling.images: class folder {d} holds no image files")
        seed_classes.append(d.name)
        seed += [(str((d / f).relative_to(root).as_posix()), d.name) for f in files]
    pool = [s for s, _ in seed] + scan_images(unl_dir, exts, exclude=project, prefix="unlabeled", root=root)
    return pool, seed, seed_classes


def _classes(lc: LabelingConfig, root: Path, seed: list[tuple[str, str]], seed_classes: list[str]) -> list[str]:
    """The project's class list (``lc.classes`` when given, else the seed's), checked against the
    seed: at least two classes and two seed labels."""
    classes = list(lc.classes) if lc.classes else seed_classes
    unknown = sorted(set(seed_classes) - set(classes))
    if unknown:
        raise ConfigError(
            f"labeling.classes: the seed has class(es) {unknown} that are not in labeling.classes ({classes})"
        )
    if len(classes) < 2:
        raise DataError(f"labeling.images: need at least 2 classes; the seed of {root} has {classes}")
    if len(seed) < 2:
        raise DataError(f"labeling.images: need at least 2 seed labels in {root}; found {len(seed)}")
    return classes


def read_seed_csv(lc: LabelingConfig, path: Path, root: Path, pool: set[str]) -> list[tuple[str, str]]:
    """Layout B: the (file relative to ``root``, label) pairs of the seed CSV ``path``; every
    problem listed with its row and field (a LabelFileError)."""
    if not path.is_file():
        raise LabelFileError(f"{path}: seed label file not found (labeling.seed_csv)")
    probs = Problems(path)
    reader, _ = read_csv(path, path.read_bytes(), required=("file", "label"))
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    classes = set(lc.classes) if lc.classes else None
    for rec in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
            continue
        f = (rec.get("file") or "").strip()
        lab = (rec.get("label") or "").strip()
        p = Path(f)
        rel = (
            p.resolve().relative_to(root).as_posix()
            if p.is_absolute() and p.resolve().is_relative_to(root)
            else p.as_posix()
        )
        if not f:
            probs.add(line, "file", "empty")
        elif rel not in pool:
            probs.add(line, "file", f"{f!r} is not an image under {root}")
        elif rel in seen:
            probs.add(line, "file", f"{f!r} appears again (first on row {seen[rel]})")
        elif not lab:
            probs.add(line, "label", "empty")
        elif classes is not None and lab not in classes:
            probs.add(line, "label", f"{lab!r} is not in labeling.classes ({', '.join(lc.classes)})")
        else:
            seen[rel] = line
            out.append((rel, lab))
    probs.raise_if_any(" in the seed labels")
    return out


def rescan(st: dict[str, Any], project: Path, state_file: Path) -> dict[str, Any]:
    """A copy of ``st`` with the images added since the last export appended to the pool; a
    DataError when a known image is gone."""
    root = Path(st["images"])
    exts = image_extensions()
    known = set(st["pool"])
    if st.get("layout") == "csv":
        found = scan_images(root, exts, exclude=project, root=root)
    else:
        found = scan_images(root / "unlabeled", exts, exclude=project, prefix="unlabeled", root=root)
    missing = [f for f in st["pool"] if not (root / f).is_file()]
    if missing:
        raise DataError(
            f"labeling.images: {len(missing)} image(s) of the project are gone, e.g. "
            f"{root / missing[0]}; "
            f"restore them (sample ids are positions in {state_file})"
        )
    st = copy.deepcopy(st)
    st["pool"] += [f for f in found if f not in known]
    return st


def pool_dataset(st: dict[str, Any], lc: LabelingConfig) -> ALDataset:
    """The pool of ``st`` as a data set: every image loaded, the labeled ones with their class."""
    root = Path(st["images"])
    paths = [root / f for f in st["pool"]]
    x = load_image_files(paths, lc.image_size, lc.channels, "labeling")
    cls_idx = {c: i for i, c in enumerate(st["classes"])}
    y = np.zeros(len(paths), dtype=np.int64)  # unlabeled images: placeholder 0, never read
    for e in st["labeled"]:
        y[e["sample_id"]] = cls_idx[e["label"]]
    c, s = x.shape[1], x.shape[2]
    return ALDataset(
        name=f"labeling:{root.name}",
        x_train=torch.from_numpy(x),
        y_train=torch.from_numpy(y),
        x_test=torch.zeros((0, c, s, s), dtype=torch.uint8),
        y_test=torch.zeros(0, dtype=torch.int64),
        num_classes=len(st["classes"]),
        classes=list(st["classes"]),
        augmentation=lc.augmentation,
        paths=[str(p) for p in paths],
        source=f"labeling project images in {root}",
    )
