"""Bad input at every user-facing entry (issue 6, item 3), table-driven.

Each row feeds one bad input to an entry — ``RunConfig.from_dict``, ``autoal.cli.common.compose``,
the CLI scripts (``autoal run`` and ``autoal query`` through their ``main_guard``),
a run on a bad data file or image folder, the labeling import with a bad CSV, the labeling
export, an MLflow store that cannot be used — and asserts:

1. the error type;
2. that the message names the offending file or field;
3. that no state changed: every file of the shared world (a finished run folder, a labeling
   project with a batch waiting for labels, the MLflow SQLite store, the images) keeps its
   bytes and mtime, and no file appears (bad inputs are written under ``inputs/``, outside it).
"""

from __future__ import annotations

import copy
import csv
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from autoal.config import RunConfig
from autoal.errors import AutoALError, ConfigError, DataError, DatasetNotFoundError, LabelFileError, TrackingError
from autoal.loop import run_experiment
from autoal.cli.common import compose, run_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "labeling"))  # the labeling tests' helpers
from cli_invoke import nested  # noqa: E402
from labeling_images import fill, make_images, read_batch, settings  # noqa: E402


@dataclass
class World:
    base: Path
    run_cfg: dict[str, Any]  # a valid, tiny digits run config (its run folder exists, finished)
    images: Path
    project: Path
    batch: list[dict[str, str]]  # the exported rows waiting for labels
    truth: dict[str, str]
    seed_ids: list[int]
    idle_project: Path  # a copy of ``project`` with no batch waiting (export computes a new one)

    def inputs(self, name: str) -> Path:
        d = self.base / "inputs" / name
        d.mkdir(parents=True, exist_ok=True)
        return d


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    import json

    from autoal.cli.query import main as query_main

    base = tmp_path_factory.mktemp("world")
    run_cfg = {
        "al": {"initial_size": 20, "query_size": 10, "rounds": 1, "mc_samples": 3},
        "train": {"epochs": 2, "batch_size": 32},
        "tracking": {"uri": f"sqlite:///{base / 'mlflow.db'}", "experiment": "bad-input"},
        "runtime": {"output_dir": str(base / "runs"), "quiet": True, "num_threads": 2},
    }
    run_experiment(RunConfig.from_dict(run_cfg))
    images, project = base / "images", base / "project"
    truth = make_images(images)
    # the labeling project logs into the same store
    args = [a for a in settings(base, images, project) if not a.startswith("tracking.experiment")]
    assert query_main(["export", *args, "tracking.experiment=bad-input"]) == 0
    st = json.loads((project / "labels.json").read_text())
    idle = base / "idle_project"
    shutil.copytree(project, idle)
    assert query_main(["discard", f"labeling.project={idle}"]) == 0
    return World(
        base,
        run_cfg,
        images,
        project,
        read_batch(project / "batches" / "round_001.csv"),
        truth,
        [e["sample_id"] for e in st["labeled"]],
        idle,
    )


def snapshot(base: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(base)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(base.rglob("*"))
        if p.is_file() and "inputs" not in p.relative_to(base).parts
    }


# -- actions --------------------------------------------------------------------------------------


def cfg_with(w: World, **over: Any) -> dict[str, Any]:
    d = copy.deepcopy(w.run_cfg)
    for k, v in over.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) else v
    return d


def run(w: World, **over: Any) -> None:
    run_experiment(RunConfig.from_dict(cfg_with(w, **over)))


def from_dict(d: dict[str, Any]) -> Callable[[World], None]:
    return lambda w: RunConfig.from_dict(d)


def npz(w: World, name: str, **arrays: Any) -> Path:
    """A valid npz (3 classes, 12 + 6 images of 12x12) with ``arrays`` replacing or dropping keys."""
    rng = np.random.default_rng(0)
    a = {
        "x_train": rng.integers(0, 256, (12, 12, 12), dtype=np.uint8),
        "y_train": np.arange(12) % 3,
        "x_test": rng.integers(0, 256, (6, 12, 12), dtype=np.uint8),
        "y_test": np.arange(6) % 3,
    }
    for k, v in arrays.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    p = w.inputs(name) / f"{name}.npz"
    np.savez(p, **a)
    return p


def run_npz(name: str, options: dict | None = None, **arrays: Any) -> Callable[[World], None]:
    def act(w: World) -> None:
        p = npz(w, name, **arrays)
        run(
            w,
            dataset={"name": "npz", "path": str(p), "options": options or {}},
            al={"initial_size": 4, "query_size": 2},
        )

    return act


def run_npz_beyond_memory(w: World) -> None:
    """A pool whose (N, C) arrays would not fit in this machine's available memory: labels
    cover classes 0..99,999 (C = 100,000, the most autoal infers) and N is sized from what the
    machine has now, so that every round's class probabilities would exceed it."""
    from autoal.memory import available_memory_bytes

    have = available_memory_bytes()
    assert have is not None
    n = max(int(have // (4 * 100_000 * 2)) + 1000, 100_000)
    y = np.arange(n) % 100_000  # every class holds an image (empty class ids are refused first)
    run_npz("beyond", {}, x_train=np.zeros((n, 12, 12), np.uint8), y_train=y)(w)


def npz_path(name: str) -> Callable[[World], str]:
    return lambda w: str(w.base / "inputs" / name / f"{name}.npz")


def run_folder(kind: str) -> Callable[[World], None]:
    def act(w: World) -> None:
        from PIL import Image

        root = w.inputs(f"folder_{kind}") / "data"
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True, exist_ok=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(root / cls / f"{i}.png")
        if kind == "empty_class":
            (root / "c").mkdir(exist_ok=True)
        elif kind == "unreadable":
            (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        path = root if kind != "missing" else root.parent / "nowhere"
        run(
            w,
            dataset={"name": "folder", "path": str(path), "options": {"image_size": 8}},
            al={"initial_size": 2, "query_size": 1},
        )

    return act


def cli(script: str, *argv: str) -> Callable[[World], None]:
    """Call a command's ``main_guard`` the way ``autoal <command>`` does."""

    def act(w: World) -> None:
        import importlib

        mod = importlib.import_module(f"autoal.cli.{script}")
        from autoal.cli.common import main_guard

        args = [a.replace("{base}", str(w.base)).replace("{project}", str(w.project)) for a in argv]
        old = sys.argv
        sys.argv = ["autoal", *args]
        try:
            main_guard(mod.main)
        finally:
            sys.argv = old

    return act


def label_csv(
    edit: Callable[[World, list[dict[str, str]]], Any], name: str, allow_partial: bool = False
) -> Callable[[World], None]:
    """Fill the waiting batch with the true labels, apply ``edit`` to the rows (or the file), import."""

    def act(w: World) -> None:
        from autoal.labeling import LabelingConfig, LabelingProject

        rows = [dict(r) for r in w.batch]
        out = w.inputs("labels") / f"{name}.csv"
        fill(rows, w.images, w.truth, out)
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        res = edit(w, rows)
        if isinstance(res, bytes):
            out.write_bytes(res)
        else:
            fields = list(rows[0]) if rows else ["sample_id", "file_path", "score", "label"]
            with open(out, "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=fields)
                wr.writeheader()
                wr.writerows(rows)
        project(w, LabelingConfig, LabelingProject).import_batch(out, allow_partial=allow_partial)

    return act


def project(w: World, LabelingConfig, LabelingProject, run: dict | None = None, folder: Path | None = None, **lab: Any):
    cfg = RunConfig.from_dict(
        {
            "al": {"query_size": 8, "mc_samples": 3},
            "train": {"epochs": 1},
            "tracking": {"uri": f"sqlite:///{w.base / 'mlflow.db'}", "experiment": "bad-input"},
            "runtime": {"quiet": True, "num_threads": 2},
        }
        | (run or {})
    )
    return LabelingProject(cfg, LabelingConfig.from_dict({"project": str(folder or w.project), "image_size": 8, **lab}))


def export(run: dict | None = None, **lab: Any) -> Callable[[World], None]:
    """Export on the project copy that has no batch waiting (so that export would compute one)."""

    def act(w: World) -> None:
        from autoal.labeling import LabelingConfig, LabelingProject

        project(w, LabelingConfig, LabelingProject, run, folder=w.idle_project, **lab).export_batch()

    return act


def set_field(i: int, key: str, value: str):
    def edit(w, rows):
        rows[i][key] = value

    return edit


def new_project(kind: str) -> Callable[[World], None]:
    """A new labeling project on a broken image folder or seed CSV."""

    def act(w: World) -> None:
        from PIL import Image

        from autoal.labeling import LabelingConfig, LabelingProject

        root = w.inputs(f"newproj_{kind}")
        images = root / "images"
        for i in range(6):
            (images / "photos").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / "photos" / f"{i}.png")
        seed = root / "seed.csv"
        rows = ["file,label", "photos/0.png,cat", "photos/1.png,dog"]
        if kind == "seed_unknown_file":
            rows.append("photos/nope.png,cat")
        if kind == "unreadable":
            (images / "photos" / "9.png").write_bytes(b"garbage")
        seed.write_text("\n".join(rows) + "\n")
        cfg = RunConfig.from_dict(
            {
                "al": {"query_size": 2, "mc_samples": 0},
                "train": {"epochs": 1},
                "tracking": {"enabled": False},
                "runtime": {"quiet": True},
            }
        )
        LabelingProject(
            cfg,
            LabelingConfig.from_dict(
                {"images": str(images), "project": str(root / "proj"), "seed_csv": str(seed), "image_size": 8}
            ),
        ).export_batch()

    return act


def with_env(key: str, value: str | None, act: Callable[[World], None]) -> Callable[[World], None]:
    def wrapped(w: World) -> None:
        import os

        old = os.environ.pop(key, None)
        if value is not None:
            os.environ[key] = value
        try:
            act(w)
        finally:
            os.environ.pop(key, None)
            if old is not None:
                os.environ[key] = old

    return wrapped


def _csv(name: str) -> Callable[[World], str]:
    return lambda w: str(w.base / "inputs" / "labels" / f"{name}.csv")


def _unknown_id(w, rows):
    rows[0]["sample_id"] = "999999"


def _seed_id(w, rows):
    rows[1]["sample_id"] = str(w.seed_ids[0])


def _dup(w, rows):
    rows[3]["sample_id"] = rows[2]["sample_id"]
    rows[3]["file_path"] = rows[2]["file_path"]


def _drop_label_col(w, rows):
    for r in rows:
        r.pop("label")


def _not_utf8(w, rows):
    return "sample_id,label\n1,caf\xe9\n".encode("latin-1")


def _swap_paths(w, rows):
    rows[0]["file_path"], rows[1]["file_path"] = rows[1]["file_path"], rows[0]["file_path"]


def _all_empty(w, rows):
    for r in rows:
        r["label"] = ""


# (id, action, expected error, what the message must name)
CASES: list[tuple[str, Callable[[World], None], type, Callable[[World], list[str]] | list[str]]] = [
    # -- config keys and values through RunConfig.from_dict ----------------------------------
    ("dict-unknown-key", from_dict({"al": {"roudns": 3}}), ConfigError, ["al.roudns", "rounds"]),
    ("dict-string-for-int", from_dict({"al": {"rounds": "three"}}), ConfigError, ["al.rounds"]),
    ("dict-float-for-int", from_dict({"train": {"epochs": 2.5}}), ConfigError, ["train.epochs"]),
    ("dict-dropout-range", from_dict({"model": {"dropout": 1.5}}), ConfigError, ["model.dropout"]),
    ("dict-negative-lr", from_dict({"train": {"lr": -0.1}}), ConfigError, ["train.lr"]),
    ("dict-bad-executor", from_dict({"scoring": {"executor": "spark"}}), ConfigError, ["scoring.executor", "ray"]),
    ("dict-section-not-mapping", from_dict({"al": 5}), ConfigError, ["al:"]),
    ("dict-params-not-mapping", from_dict({"strategy": {"params": [1]}}), ConfigError, ["strategy.params"]),
    ("dict-bool-for-bool", from_dict({"al": {"warm_start": "yes"}}), ConfigError, ["al.warm_start"]),
    ("dict-options-not-mapping", from_dict({"dataset": {"options": 5}}), ConfigError, ["dataset.options"]),
    ("dict-path-not-string", from_dict({"dataset": {"name": "npz", "path": 5}}), ConfigError, ["dataset.path"]),
    (
        "dict-imbalance-ratio-below-1",
        from_dict({"dataset": {"imbalance_ratio": 0.5}}),
        ConfigError,
        ["dataset.imbalance_ratio", "0.5"],
    ),
    (
        "dict-imbalance-ratio-not-a-number",
        from_dict({"dataset": {"imbalance_ratio": "ten"}}),
        ConfigError,
        ["dataset.imbalance_ratio", "'ten'"],
    ),
    (
        "dict-train-size-not-an-integer",
        from_dict({"dataset": {"train_size": "all"}}),
        ConfigError,
        ["dataset.train_size", "'all'"],
    ),
    (
        "compose-imbalance-ratio-infinite",
        lambda w: run_config(compose(["dataset.imbalance_ratio=inf"])),
        ConfigError,
        ["dataset.imbalance_ratio", "inf"],
    ),
    (
        "run-imbalance-ratio-empties-a-class",
        lambda w: run(w, dataset={"imbalance_ratio": 1000}),
        ConfigError,
        ["dataset.imbalance_ratio", "1000", "n_max = 131"],
    ),
    (
        "run-train-size-larger-than-pool",
        lambda w: run(w, dataset={"train_size": 5000}),
        ConfigError,
        ["dataset.train_size", "5000", "1347"],
    ),
    (
        "run-test-size-below-classes",
        lambda w: run(w, dataset={"test_size": 3}),
        ConfigError,
        ["dataset.test_size", "number of classes (10)"],
    ),
    ("dict-tags-not-mapping", from_dict({"tracking": {"tags": ["a"]}}), ConfigError, ["tracking.tags"]),
    ("dict-bad-device", from_dict({"runtime": {"device": "gpu"}}), ConfigError, ["runtime.device", "'gpu'"]),
    ("dict-negative-threads", from_dict({"runtime": {"num_threads": -1}}), ConfigError, ["runtime.num_threads"]),
    ("run-cuda-unavailable", lambda w: run(w, runtime={"device": "cuda"}), ConfigError, ["runtime.device", "CUDA"]),
    (
        "run-mc-strategy-without-mc-samples",
        lambda w: run(w, strategy={"name": "bald"}, al={"mc_samples": 0}),
        ConfigError,
        ["al.mc_samples", "bald"],
    ),
    ("run-unknown-strategy", lambda w: run(w, strategy={"name": "nope"}), ConfigError, ["strategy.name", "margin"]),
    (
        "run-unknown-strategy-param",
        lambda w: run(w, strategy={"name": "kmeans", "params": {"iterz": 3}}),
        ConfigError,
        ["iterz", "iters"],
    ),
    ("run-query-larger-than-pool", lambda w: run(w, al={"query_size": 2000}), ConfigError, ["al.query_size", "1327"]),
    ("run-rounds-exceed-pool", lambda w: run(w, al={"rounds": 500}), ConfigError, ["al.rounds"]),
    # -- through Hydra compose and the CLI ---------------------------------------------------
    ("compose-unknown-key", lambda w: compose(["al.roudns=3"]), ConfigError, ["al.roudns", "rounds"]),
    ("compose-unknown-group-option", lambda w: compose(["strategy=nope"]), ConfigError, ["strategy", "nope"]),
    ("compose-missing-required", lambda w: compose(["dataset=npz"]), AutoALError, ["dataset.path"]),
    (
        "cli-run-bad-value",
        cli("run", "train.epochs=abc", "runtime.output_dir={base}/runs", "tracking.uri=sqlite:///{base}/mlflow.db"),
        SystemExit,
        ["ConfigError", "train.epochs"],
    ),
    (
        "cli-run-zero-budget",
        cli("run", "al.query_size=0", "runtime.output_dir={base}/runs", "tracking.uri=sqlite:///{base}/mlflow.db"),
        SystemExit,
        ["ConfigError", "al.query_size"],
    ),
    (
        "cli-query-unknown-command",
        cli("query", "exprt", "labeling.project={project}"),
        SystemExit,
        ["ConfigError", "command", "export"],
    ),
    (
        "cli-query-import-without-csv",
        cli("query", "import", "labeling.project={project}"),
        SystemExit,
        ["ConfigError", "--csv"],
    ),
    (
        "cli-query-unknown-labeling-key",
        cli("query", "status", "labeling.project={project}", "+labeling.colour=red"),
        SystemExit,
        ["ConfigError", "labeling.colour"],
    ),
    # -- data files ----------------------------------------------------------------------------
    (
        "npz-missing-file",
        lambda w: run(w, dataset={"name": "npz", "path": str(w.base / "inputs" / "none.npz")}),
        DatasetNotFoundError,
        lambda w: [str(w.base / "inputs" / "none.npz")],
    ),
    (
        "npz-corrupt",
        lambda w: (
            w.inputs("corrupt").joinpath("c.npz").write_bytes(b"PK\x03\x04 not a zip"),
            run(w, dataset={"name": "npz", "path": str(w.base / "inputs" / "corrupt" / "c.npz")}),
        ),
        DataError,
        lambda w: [str(w.base / "inputs" / "corrupt" / "c.npz")],
    ),
    ("npz-missing-key", run_npz("nokey", y_test=None), DataError, lambda w: [npz_path("nokey")(w), "y_test"]),
    (
        "npz-wrong-shape",
        run_npz("shape", x_train=np.zeros((12, 144), np.uint8)),
        DataError,
        lambda w: [npz_path("shape")(w), "x_train"],
    ),
    (
        "npz-wrong-dtype",
        run_npz("dtype", x_train=np.zeros((12, 12, 12), bool)),
        DataError,
        lambda w: [npz_path("dtype")(w), "x_train", "bool"],
    ),
    (
        "npz-nan-pixels",
        run_npz("nan", x_train=np.full((12, 12, 12), np.nan, np.float32)),
        DataError,
        lambda w: [npz_path("nan")(w), "x_train", "NaN"],
    ),
    (
        "npz-inf-pixels",
        run_npz("inf", x_test=np.full((6, 12, 12), np.inf, np.float64)),
        DataError,
        lambda w: [npz_path("inf")(w), "x_test"],
    ),
    (
        "npz-pool-times-classes-exceeds-memory",
        run_npz_beyond_memory,
        DataError,
        ["pool of", "100,000 classes", "available", "dataset.train_size"],
    ),
    (
        "npz-label-out-of-range",
        run_npz("range", {"num_classes": 3}, y_train=np.array([0, 1, 2, 7] * 3)),
        DataError,
        lambda w: [npz_path("range")(w), "num_classes"],
    ),
    (
        "npz-negative-label",
        run_npz("neg", y_test=np.array([0, 1, 2, -1, 0, 1])),
        DataError,
        lambda w: [npz_path("neg")(w), "negative"],
    ),
    (
        "npz-float-labels",
        run_npz("flt", y_train=np.arange(12) % 3 + 0.5),
        DataError,
        lambda w: [npz_path("flt")(w), "y_train"],
    ),
    (
        "npz-length-mismatch",
        run_npz("len", y_train=np.arange(5) % 3),
        DataError,
        lambda w: [npz_path("len")(w), "y_train"],
    ),
    (
        "folder-empty-class",
        run_folder("empty_class"),
        DataError,
        lambda w: [str(w.base / "inputs" / "folder_empty_class" / "data" / "c")],
    ),
    (
        "folder-unreadable-image",
        run_folder("unreadable"),
        DataError,
        lambda w: [str(w.base / "inputs" / "folder_unreadable" / "data" / "b" / "broken.png")],
    ),
    (
        "folder-missing",
        run_folder("missing"),
        DatasetNotFoundError,
        lambda w: [str(w.base / "inputs" / "folder_missing" / "nowhere")],
    ),
    # -- label files (import) ----------------------------------------------------------------------
    (
        "labels-unknown-id",
        label_csv(_unknown_id, "unknown"),
        LabelFileError,
        lambda w: [_csv("unknown")(w), "row 2", "field 'sample_id'", "999999"],
    ),
    (
        "labels-already-labeled-id",
        label_csv(_seed_id, "seedid"),
        LabelFileError,
        lambda w: [_csv("seedid")(w), "row 3", "field 'sample_id'", "already labeled in round 0"],
    ),
    (
        "labels-duplicate-id",
        label_csv(_dup, "dup"),
        LabelFileError,
        lambda w: [_csv("dup")(w), "row 5", "field 'sample_id'", "appears again (first on row 4)"],
    ),
    (
        "labels-unknown-class",
        label_csv(set_field(2, "label", "Red"), "cls"),
        LabelFileError,
        lambda w: [_csv("cls")(w), "row 4", "field 'label'", "'Red'", "did you mean 'red'"],
    ),
    (
        "labels-missing-label-column",
        label_csv(_drop_label_col, "nocol"),
        LabelFileError,
        lambda w: [_csv("nocol")(w), "row 1", "'label'"],
    ),
    (
        "labels-empty-label",
        label_csv(set_field(5, "label", "  "), "empty"),
        LabelFileError,
        lambda w: [_csv("empty")(w), "row 7", "field 'label'", "empty"],
    ),
    (
        "labels-partial-rejected",
        label_csv(lambda w, rows: rows.pop(), "partial"),
        LabelFileError,
        lambda w: [_csv("partial")(w), "field 'sample_id'", "have no row", w.batch[-1]["sample_id"]],
    ),
    (
        "labels-all-empty-even-partial",
        label_csv(_all_empty, "allempty", allow_partial=True),
        LabelFileError,
        lambda w: [_csv("allempty")(w), "field 'label'", "no labels"],
    ),
    (
        "labels-not-an-integer-id",
        label_csv(set_field(0, "sample_id", "img_3"), "nonint"),
        LabelFileError,
        lambda w: [_csv("nonint")(w), "row 2", "field 'sample_id'", "'img_3'"],
    ),
    (
        "labels-rows-shifted",
        label_csv(_swap_paths, "shift"),
        LabelFileError,
        lambda w: [_csv("shift")(w), "row 2", "field 'file_path'"],
    ),
    ("labels-not-utf8", label_csv(_not_utf8, "latin1"), LabelFileError, lambda w: [_csv("latin1")(w), "UTF-8"]),
    (
        "labels-file-missing",
        lambda w: project_import(w, w.base / "inputs" / "nope.csv"),
        LabelFileError,
        lambda w: [str(w.base / "inputs" / "nope.csv"), "not found"],
    ),
    # -- labeling export and project creation ------------------------------------------------------
    (
        "export-query-larger-than-pool",
        export(run={"al": {"query_size": 500}}),
        ConfigError,
        lambda w: ["al.query_size", str(w.images)],
    ),
    (
        "new-project-seed-unknown-file",
        new_project("seed_unknown_file"),
        LabelFileError,
        lambda w: [str(w.base / "inputs" / "newproj_seed_unknown_file" / "seed.csv"), "row 4", "field 'file'"],
    ),
    (
        "new-project-unreadable-image",
        new_project("unreadable"),
        DataError,
        lambda w: [str(w.base / "inputs" / "newproj_unreadable" / "images" / "photos" / "9.png")],
    ),
    (
        "new-project-images-missing",
        lambda w: new_labeling_project(w, w.base / "inputs" / "no-images"),
        DataError,
        lambda w: ["labeling.images", str(w.base / "inputs" / "no-images")],
    ),
    (
        "cli-query-images-missing",
        cli(
            "query",
            "export",
            "labeling.project={base}/inputs/cli-project",
            "labeling.images={base}/inputs/no-images",
            "tracking.enabled=false",
        ),
        SystemExit,
        lambda w: ["DataError", str(w.base / "inputs" / "no-images")],
    ),
    ("labeling-bad-channels", lambda w: export(channels=2)(w), ConfigError, ["labeling.channels"]),
    ("labeling-unknown-strategy", export(run={"strategy": {"name": "nope"}}), ConfigError, ["strategy.name"]),
    # -- tracking ------------------------------------------------------------------------------------
    (
        "mlflow-server-does-not-answer",
        lambda w: run(w, tracking={"uri": "http://127.0.0.1:9"}),
        TrackingError,
        ["tracking.uri", "http://127.0.0.1:9", "does not answer"],
    ),
    (
        "mlflow-file-store-without-flag",
        with_env(
            "MLFLOW_ALLOW_FILE_STORE", None, lambda w: run(w, tracking={"uri": f"file:{w.base / 'inputs' / 'mlruns'}"})
        ),
        TrackingError,
        ["tracking.uri", "MLFLOW_ALLOW_FILE_STORE"],
    ),
    (
        "labeling-mlflow-does-not-answer",
        export(run={"tracking": {"uri": "http://127.0.0.1:9"}}),
        TrackingError,
        ["tracking.uri", "does not answer"],
    ),
    (
        "labeling-import-mlflow-does-not-answer",
        lambda w: project_import(
            w,
            fill(w.batch, w.images, w.truth, w.inputs("ok") / "ok.csv"),
            run={"tracking": {"uri": "http://127.0.0.1:9"}},
        ),
        TrackingError,
        ["tracking.uri"],
    ),
]


# -- round two (issue 16): every numeric/boolean key against null, NaN, infinity, a string and
# out-of-range values; strategy parameters and dataset.options by type; paths that would escape
_NUMERIC_KEYS = [
    "al.initial_size",
    "al.query_size",
    "al.rounds",
    "al.mc_samples",
    "al.seed",
    "train.epochs",
    "train.batch_size",
    "train.lr",
    "train.min_steps",
    "model.dropout",
    "scoring.batch_size",
    "scoring.num_actors",
    "runtime.num_threads",
    "dataset.imbalance_ratio",
]
_BAD_NUMBERS = [
    ("null", None, "expected"),
    ("nan", float("nan"), "finite"),
    ("inf", float("inf"), "finite"),
    ("string", "abc", "expected"),
]


def output_dir_file(w: World) -> None:
    f = w.inputs("files") / "a_file.txt"
    f.write_text("not a folder")
    RunConfig.from_dict({"runtime": {"output_dir": str(f)}})


CASES += [
    (f"dict2-{key}-{tag}", from_dict(nested(key, value)), ConfigError, [key, word])
    for key in _NUMERIC_KEYS
    for tag, value, word in _BAD_NUMBERS
]
CASES += [
    ("dict2-seed-negative", from_dict({"al": {"seed": -1}}), ConfigError, ["al.seed", "-1"]),
    ("dict2-seed-too-large", from_dict({"al": {"seed": 2**40}}), ConfigError, ["al.seed"]),
    ("dict2-mc-samples-huge", from_dict({"al": {"mc_samples": 100_000_000}}), ConfigError, ["al.mc_samples", "10000"]),
    ("dict2-epochs-huge", from_dict({"train": {"epochs": 10**9}}), ConfigError, ["train.epochs", "100000"]),
    ("dict2-rounds-huge", from_dict({"al": {"rounds": 10**7}}), ConfigError, ["al.rounds"]),
    ("dict2-warm-start-null", from_dict({"al": {"warm_start": None}}), ConfigError, ["al.warm_start", "true or false"]),
    ("dict2-quiet-int", from_dict({"runtime": {"quiet": 1}}), ConfigError, ["runtime.quiet"]),
    ("dict2-mc-masks-null", from_dict({"al": {"mc_masks": None}}), ConfigError, ["al.mc_masks"]),
    ("dict2-strategy-name-null", from_dict({"strategy": {"name": None}}), ConfigError, ["strategy.name"]),
    (
        "dict2-run-name-parent",
        from_dict({"tracking": {"run_name": "../../escape"}}),
        ConfigError,
        ["tracking.run_name", "../../escape"],
    ),
    (
        "dict2-run-name-absolute",
        from_dict({"tracking": {"run_name": "/tmp/elsewhere"}}),
        ConfigError,
        ["tracking.run_name"],
    ),
    ("dict2-run-name-dotdot", from_dict({"tracking": {"run_name": ".."}}), ConfigError, ["tracking.run_name"]),
    ("dict2-run-name-empty", from_dict({"tracking": {"run_name": " "}}), ConfigError, ["tracking.run_name"]),
    ("dict2-tag-list", from_dict({"tracking": {"tags": {"a": [1, 2]}}}), ConfigError, ["tracking.tags.a"]),
    ("dict2-tag-null", from_dict({"tracking": {"tags": {"a": None}}}), ConfigError, ["tracking.tags.a"]),
    (
        "dict2-register-model-empty",
        from_dict({"tracking": {"register_model": ""}}),
        ConfigError,
        ["tracking.register_model"],
    ),
    ("dict2-log-model-string", from_dict({"tracking": {"log_model": "yes"}}), ConfigError, ["tracking.log_model"]),
    ("dict2-output-dir-is-a-file", lambda w: output_dir_file(w), ConfigError, ["runtime.output_dir", "is a file"]),
    (
        "dict2-image-size-huge",
        from_dict({"dataset": {"options": {"image_size": 100000}}}),
        ConfigError,
        ["dataset.options.image_size", "1024"],
    ),
    (
        "dict2-image-size-string",
        from_dict({"dataset": {"options": {"image_size": "big"}}}),
        ConfigError,
        ["dataset.options.image_size"],
    ),
    (
        "dict2-test-fraction-string",
        from_dict({"dataset": {"options": {"test_fraction": "abc"}}}),
        ConfigError,
        ["dataset.options.test_fraction"],
    ),
    (
        "dict2-test-fraction-one",
        from_dict({"dataset": {"options": {"test_fraction": 1.0}}}),
        ConfigError,
        ["dataset.options.test_fraction", "(0, 1)"],
    ),
    (
        "dict2-split-seed-negative",
        from_dict({"dataset": {"options": {"split_seed": -3}}}),
        ConfigError,
        ["dataset.options.split_seed"],
    ),
    (
        "run2-strategy-param-string-for-int",
        lambda w: run(w, strategy={"name": "kmeans", "params": {"iters": "abc"}}),
        ConfigError,
        ["strategy.params.iters", "'abc'"],
    ),
    (
        "run2-strategy-param-nan",
        lambda w: run(w, strategy={"name": "autoal", "params": {"hedge_rate": float("nan")}}),
        ConfigError,
        ["strategy.params.hedge_rate", "nan"],
    ),
    (
        "run2-strategy-param-bool-for-number",
        lambda w: run(w, strategy={"name": "autoal", "params": {"hedge_rate": True}}),
        ConfigError,
        ["strategy.params.hedge_rate"],
    ),
    (
        "run2-strategy-param-string-for-bool",
        lambda w: run(w, strategy={"name": "autoal", "params": {"fitnet_warm_start": "yes"}}),
        ConfigError,
        ["strategy.params.fitnet_warm_start", "true or false"],
    ),
    ("compose2-seed-negative", lambda w: run_config(compose(["al.seed=-1"])), ConfigError, ["al.seed"]),
    (
        "compose2-query-size-null",
        lambda w: run_config(compose(["al.query_size=null"])),
        ConfigError,
        ["al.query_size", "null"],
    ),
    ("compose2-rounds-inf", lambda w: run_config(compose(["al.rounds=inf"])), ConfigError, ["al.rounds", "finite"]),
    ("compose2-dropout-null", lambda w: run_config(compose(["model.dropout=null"])), ConfigError, ["model.dropout"]),
    (
        "npz2-label-of-a-billion",
        run_npz("billion", y_train=np.array([10**9] + [1, 2] * 5 + [0])),
        DataError,
        lambda w: [npz_path("billion")(w), "label 1000000000", "100,000"],
    ),
    ("npz2-npy-renamed", lambda w: npy_as_npz(w), DataError, ["renamed.npz", "a single NumPy array (.npy)"]),
]


# -- round three's helpers ------------------------------------------------------------------------

#: a JSON-lines file of matrix runs in the repository (a report that reads no store)
RUNS_FILE = Path(__file__).resolve().parents[2] / "bench" / "reference" / "quality_runs_2026-11-30.jsonl"


def a_file(w: World) -> str:
    """A plain file where a folder is expected."""
    f = w.inputs("files3") / "a_file.txt"
    if not f.exists():
        f.write_text("not a folder")
    return str(f)


def file_cli(script: str, *argv: str) -> Callable[[World], None]:
    """:func:`cli` with ``{afile}`` replaced by :func:`a_file`."""
    return lambda w: cli(script, *[a.replace("{afile}", a_file(w)) for a in argv])(w)


def yaml_input(w: World, name: str) -> str:
    return str(w.base / "inputs" / "yaml" / name)


def yaml_cli(w: World, name: str, text: str | bytes, script: str, *argv: str) -> None:
    """Write ``text`` to inputs/yaml/``name``, then run the command with ``{file}`` naming it."""
    p = Path(yaml_input(w, name))
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    cli(script, *[a.replace("{file}", str(p)) for a in argv])(w)


def conf_input(w: World, name: str, rel: str) -> str:
    return str(w.base / "inputs" / "conf3" / name / rel)


def conf_env(w: World, name: str, rel: str, text: str, act: Callable[[], Any]) -> Any:
    """A copy of autoal's conf/ folder with ``text`` appended to ``rel``, as AUTOAL_CONF_DIR, for ``act``."""
    import os

    from autoal.paths import packaged_conf_dir

    d = w.base / "inputs" / "conf3" / name
    if not d.exists():
        shutil.copytree(packaged_conf_dir(), d, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
        with open(d / rel, "a") as f:
            f.write(text)
    old = os.environ.get("AUTOAL_CONF_DIR")
    os.environ["AUTOAL_CONF_DIR"] = str(d)
    try:
        return act()
    finally:
        os.environ.pop("AUTOAL_CONF_DIR")
        if old is not None:
            os.environ["AUTOAL_CONF_DIR"] = old


def conf_cli(name: str, rel: str, text: str, script: str, *argv: str) -> Callable[[World], None]:
    return lambda w: conf_env(w, name, rel, text, lambda: cli(script, *argv)(w))


def labeling_cfg(**lab: Any) -> None:
    from autoal.labeling import LabelingConfig

    LabelingConfig.from_dict(lab)


def report_where_runs_is_a_file(w: World) -> None:
    """``autoal report`` in a folder whose ``runs`` is a file: the default report folder
    (runs/reports/<id>) cannot be created."""
    import os

    d = w.inputs("cwd3")
    (d / "runs").write_text("not a folder")
    old = os.getcwd()
    os.chdir(d)
    try:
        cli("report", f"report.runs_files=[{RUNS_FILE}]")(w)
    finally:
        os.chdir(old)


# -- round three (issue 23): malformed YAML in every command that reads one (one line naming the
# file, line and column), files where folders belong (and a folder where a file does), tracking
# names that MLflow refuses only once the store exists: all refused before anything is written
_UNCLOSED = "a: [1,\n"
_PY_TAG = "a: !!python/object/apply:os.system [echo hi]\n"
CASES += [
    (
        "yaml3-cluster-file-unclosed-list",
        lambda w: yaml_cli(w, "unclosed.yaml", _UNCLOSED, "cluster_check", "{file}"),
        SystemExit,
        lambda w: [yaml_input(w, "unclosed.yaml"), "line 2, column 1", "not valid YAML"],
    ),
    (
        "yaml3-cluster-file-python-tag",
        lambda w: yaml_cli(w, "pytag.yaml", _PY_TAG, "cluster_check", "{file}"),
        SystemExit,
        lambda w: [yaml_input(w, "pytag.yaml"), "line 1, column 4", "!!python/object/apply:os.system"],
    ),
    (
        "yaml3-cluster-file-unclosed-quote",
        lambda w: yaml_cli(w, "quote.yaml", 'a: 1\nb: "abc\n', "cluster_check", "{file}"),
        SystemExit,
        lambda w: [yaml_input(w, "quote.yaml"), "line 2", "not valid YAML"],
    ),
    (
        "yaml3-cluster-file-not-utf8",
        lambda w: yaml_cli(w, "latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "cluster_check", "{file}"),
        SystemExit,
        lambda w: [yaml_input(w, "latin1.yaml"), "UTF-8"],
    ),
    (
        "yaml3-cluster-file-is-a-folder",
        cli("cluster_check", "{base}/inputs"),
        SystemExit,
        lambda w: [str(w.base / "inputs"), "is a folder"],
    ),
    (
        "yaml3-sweep-file-unclosed-list",
        lambda w: yaml_cli(
            w, "sweep_unclosed.yaml", _UNCLOSED, "cluster_check", "--sweep", "{file}", "--resources", ""
        ),
        SystemExit,
        lambda w: [yaml_input(w, "sweep_unclosed.yaml"), "line 2, column 1"],
    ),
    (
        "yaml3-sweep-file-python-name-tag",
        lambda w: yaml_cli(
            w,
            "sweep_pyname.yaml",
            "resources_per_trial: !!python/name:os.system ''\n",
            "cluster_check",
            "--sweep",
            "{file}",
        ),
        SystemExit,
        lambda w: [yaml_input(w, "sweep_pyname.yaml"), "line 1", "!!python/name:os.system"],
    ),
    (
        "yaml3-conf-group-file-unclosed-list",
        conf_cli("group", "strategy/margin.yaml", _UNCLOSED, "run", "--check"),
        SystemExit,
        lambda w: [conf_input(w, "group", "strategy/margin.yaml"), "line", "not valid YAML"],
    ),
    (
        "yaml3-conf-group-file-python-tag",
        conf_cli("pytag", "al/default.yaml", _PY_TAG, "run", "--check"),
        SystemExit,
        lambda w: [conf_input(w, "pytag", "al/default.yaml"), "!!python/object/apply:os.system"],
    ),
    (
        "yaml3-conf-group-file-tab-indent",
        conf_cli("tab", "tracking/sqlite.yaml", "x:\n\t- 1\n", "run", "--check"),
        SystemExit,
        lambda w: [conf_input(w, "tab", "tracking/sqlite.yaml"), "line", "not valid YAML"],
    ),
    (
        "yaml3-conf-primary-config-help",
        conf_cli("primary", "config.yaml", _UNCLOSED, "run", "--help"),
        SystemExit,
        lambda w: [conf_input(w, "primary", "config.yaml"), "line", "not valid YAML"],
    ),
    (
        "yaml3-conf-sweep-base",
        conf_cli("sweep", "sweep/base.yaml", _UNCLOSED, "sweep", "--check"),
        SystemExit,
        lambda w: [conf_input(w, "sweep", "sweep/base.yaml"), "line"],
    ),
    (
        "yaml3-conf-report",
        conf_cli("report", "report.yaml", _PY_TAG, "report"),
        SystemExit,
        lambda w: [conf_input(w, "report", "report.yaml"), "!!python/object/apply:os.system"],
    ),
    (
        "yaml3-conf-query",
        conf_cli("query", "query.yaml", _UNCLOSED, "query", "status", "labeling.project={project}"),
        SystemExit,
        lambda w: [conf_input(w, "query", "query.yaml"), "line"],
    ),
    (
        "yaml3-compose-python-tag",
        lambda w: conf_env(w, "compose", "model/small_cnn.yaml", _PY_TAG, lambda: compose(["al.rounds=1"])),
        ConfigError,
        lambda w: [conf_input(w, "compose", "model/small_cnn.yaml"), "!!python/object/apply:os.system"],
    ),
    ("dict3-experiment-empty", from_dict({"tracking": {"experiment": ""}}), ConfigError, ["tracking.experiment", "''"]),
    ("dict3-experiment-blank", from_dict({"tracking": {"experiment": "   "}}), ConfigError, ["tracking.experiment"]),
    (
        "dict3-experiment-1000-characters",
        from_dict({"tracking": {"experiment": "e" * 1000}}),
        ConfigError,
        ["tracking.experiment", "256", "1000"],
    ),
    (
        "dict3-experiment-257-characters",
        from_dict({"tracking": {"experiment": "e" * 257}}),
        ConfigError,
        ["tracking.experiment", "256"],
    ),
    (
        "dict3-tag-key-bad-character",
        from_dict({"tracking": {"tags": {"a!b": "1"}}}),
        ConfigError,
        ["tracking.tags.a!b", "tag key"],
    ),
    (
        "dict3-tag-key-251-characters",
        from_dict({"tracking": {"tags": {"k" * 251: "1"}}}),
        ConfigError,
        ["tracking.tags.kkk", "250"],
    ),
    ("dict3-tag-key-dotdot", from_dict({"tracking": {"tags": {"a/../b": "1"}}}), ConfigError, ["tracking.tags.a/../b"]),
    ("dict3-tag-key-absolute", from_dict({"tracking": {"tags": {"/etc": "1"}}}), ConfigError, ["tracking.tags./etc"]),
    ("dict3-tag-key-empty", from_dict({"tracking": {"tags": {"": "1"}}}), ConfigError, ["tracking.tags.", "tag key"]),
    (
        "dict3-tag-value-8001-characters",
        from_dict({"tracking": {"tags": {"note": "v" * 8001}}}),
        ConfigError,
        ["tracking.tags.note", "8000", "8001"],
    ),
    (
        "dict3-output-dir-parent-is-a-file",
        lambda w: RunConfig.from_dict({"runtime": {"output_dir": f"{a_file(w)}/runs"}}),
        ConfigError,
        lambda w: ["runtime.output_dir", f"{a_file(w)} is a file"],
    ),
    (
        "dict3-folder-dataset-path-is-a-file",
        lambda w: RunConfig.from_dict({"dataset": {"name": "folder", "path": a_file(w)}}),
        ConfigError,
        lambda w: ["dataset.path", a_file(w), "is a file"],
    ),
    (
        "dict3-npz-dataset-path-is-a-folder",
        lambda w: RunConfig.from_dict({"dataset": {"name": "npz", "path": str(w.base / "inputs")}}),
        ConfigError,
        lambda w: ["dataset.path", str(w.base / "inputs"), "is a folder"],
    ),
    (
        "dict3-labeling-project-is-a-file",
        lambda w: labeling_cfg(project=a_file(w)),
        ConfigError,
        lambda w: ["labeling.project", a_file(w), "is a file"],
    ),
    (
        "dict3-labeling-project-parent-is-a-file",
        lambda w: labeling_cfg(project=f"{a_file(w)}/proj"),
        ConfigError,
        lambda w: ["labeling.project", f"{a_file(w)} is a file"],
    ),
    (
        "dict3-labeling-images-is-a-file",
        lambda w: labeling_cfg(project=str(w.base / "inputs" / "p3"), images=a_file(w)),
        ConfigError,
        lambda w: ["labeling.images", a_file(w), "is a file"],
    ),
    (
        "dict3-labeling-seed-csv-is-a-folder",
        lambda w: labeling_cfg(project=str(w.base / "inputs" / "p3"), images=str(w.images), seed_csv=str(w.images)),
        ConfigError,
        lambda w: ["labeling.seed_csv", str(w.images), "is a folder"],
    ),
    (
        "cli3-run-check-experiment-empty",
        cli("run", "--check", "tracking.experiment="),
        SystemExit,
        ["tracking.experiment", "''"],
    ),
    (
        "cli3-run-check-experiment-1000-characters",
        cli("run", "--check", "tracking.experiment=" + "e" * 1000),
        SystemExit,
        ["tracking.experiment", "256", "1000"],
    ),
    (
        "cli3-run-check-tag-value-too-long",
        cli("run", "--check", "+tracking.tags.note=" + "v" * 8001),
        SystemExit,
        ["tracking.tags.note", "8000"],
    ),
    (
        "cli3-run-check-folder-path-is-a-file",
        file_cli("run", "--check", "dataset=folder", "dataset.path={afile}"),
        SystemExit,
        lambda w: ["dataset.path", a_file(w), "is a file"],
    ),
    (
        "cli3-run-folder-path-is-a-file",
        file_cli(
            "run",
            "dataset=folder",
            "dataset.path={afile}",
            "tracking.enabled=false",
            "runtime.output_dir={base}/inputs/runs3",
        ),
        SystemExit,
        lambda w: ["ConfigError", "dataset.path", a_file(w)],
    ),
    (
        "cli3-run-check-npz-path-is-a-folder",
        cli("run", "--check", "dataset=npz", "dataset.path={base}/inputs"),
        SystemExit,
        lambda w: ["dataset.path", str(w.base / "inputs"), "is a folder"],
    ),
    (
        "cli3-run-check-output-dir-parent-is-a-file",
        file_cli("run", "--check", "runtime.output_dir={afile}/runs"),
        SystemExit,
        lambda w: ["runtime.output_dir", f"{a_file(w)} is a file"],
    ),
    (
        "cli3-run-check-store-parent-is-a-file",
        file_cli("run", "--check", "tracking.uri=sqlite:///{afile}/mlflow.db"),
        SystemExit,
        lambda w: ["tracking.uri", a_file(w)],
    ),
    (
        "cli3-query-project-is-a-file",
        file_cli(
            "query", "export", "labeling.project={afile}", "labeling.images={base}/images", "tracking.enabled=false"
        ),
        SystemExit,
        lambda w: ["labeling.project", a_file(w), "is a file"],
    ),
    (
        "cli3-query-project-parent-is-a-file",
        file_cli(
            "query",
            "export",
            "labeling.project={afile}/proj",
            "labeling.images={base}/images",
            "tracking.enabled=false",
        ),
        SystemExit,
        lambda w: ["labeling.project", f"{a_file(w)} is a file"],
    ),
    (
        "cli3-query-status-project-is-a-file",
        file_cli("query", "status", "labeling.project={afile}"),
        SystemExit,
        lambda w: ["labeling.project", a_file(w)],
    ),
    (
        "cli3-query-images-is-a-file",
        file_cli(
            "query", "export", "labeling.project={base}/inputs/q3", "labeling.images={afile}", "tracking.enabled=false"
        ),
        SystemExit,
        lambda w: ["labeling.images", a_file(w), "is a file"],
    ),
    (
        "cli3-query-seed-csv-is-a-folder",
        cli(
            "query",
            "export",
            "labeling.project={base}/inputs/q3",
            "labeling.images={base}/images",
            "labeling.seed_csv={base}/images",
            "tracking.enabled=false",
        ),
        SystemExit,
        lambda w: ["labeling.seed_csv", str(w.images), "is a folder"],
    ),
    (
        "cli3-query-experiment-empty",
        cli(
            "query",
            "export",
            "labeling.project={base}/inputs/q3",
            "labeling.images={base}/images",
            "tracking.experiment=",
        ),
        SystemExit,
        ["tracking.experiment"],
    ),
    (
        "cli3-sweep-check-experiment-empty",
        cli("sweep", "--check", "tracking.experiment="),
        SystemExit,
        ["tracking.experiment", "''"],
    ),
    (
        "cli3-ablation-check-experiment-1000-characters",
        cli("ablation", "--check", "tracking.experiment=" + "e" * 1000),
        SystemExit,
        ["tracking.experiment", "256"],
    ),
    (
        "cli3-sweep-check-storage-path-is-a-file",
        file_cli("sweep", "--check", "sweep.storage_path={afile}"),
        SystemExit,
        lambda w: ["sweep.storage_path", a_file(w), "is a file"],
    ),
    (
        "cli3-report-out-dir-is-a-file",
        file_cli("report", "report.out_dir={afile}", f"report.runs_files=[{RUNS_FILE}]"),
        SystemExit,
        lambda w: ["report.out_dir", a_file(w), "is a file"],
    ),
    (
        "cli3-report-default-out-dir-under-a-file",
        lambda w: report_where_runs_is_a_file(w),
        SystemExit,
        lambda w: ["report.out_dir", f"{w.base / 'inputs' / 'cwd3' / 'runs'} is a file"],
    ),
]


# -- round three (issue 23): data that cannot give a meaningful result, refused while it is loaded
def run_folder3(kind: str) -> Callable[[World], None]:
    """An image folder of two classes (``single_class``: one) whose first image of class ``a`` is
    written as ``kind`` asks: a 16-bit PNG, a 32-bit integer TIFF or a float TIFF."""

    def act(w: World) -> None:
        from PIL import Image

        root = w.inputs(f"folder3_{kind}") / "data"
        for cls in ("a",) if kind == "single_class" else ("a", "b"):
            (root / cls).mkdir(parents=True, exist_ok=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(root / cls / f"{i}.png")
        deep = {
            "uint16": ("0.png", np.full((8, 8), 4000, np.uint16)),
            "int32": ("0.tif", np.full((8, 8), 70000, np.int32)),
            "float": ("0.tif", np.full((8, 8), 0.25, np.float32)),
        }
        if kind in deep:
            name, pixels = deep[kind]
            (root / "a" / "0.png").unlink()
            Image.fromarray(pixels).save(root / "a" / name)
        run(
            w,
            dataset={"name": "folder", "path": str(root), "options": {"image_size": 8}},
            al={"initial_size": 2, "query_size": 1},
        )

    return act


def _folder3(kind: str, *tail: str) -> Callable[[World], list[str]]:
    return lambda w: [str(w.base / "inputs" / f"folder3_{kind}" / "data" / Path(*tail))]


CASES += [
    (
        "npz3-all-labels-three",
        run_npz("three", y_train=np.full(12, 3), y_test=np.full(6, 3)),
        DataError,
        lambda w: [npz_path("three")(w), "single class", "class 3", "at least 2 classes"],
    ),
    (
        "npz3-labels-zero-and-five",
        run_npz("gap", y_train=np.arange(12) % 2 * 5, y_test=np.arange(6) % 2 * 5),
        DataError,
        lambda w: [npz_path("gap")(w), "class id(s) 1, 2, 3, 4", "labels found: 0, 5", "0..K-1"],
    ),
    (
        "npz3-num-classes-beyond-labels",
        run_npz("beyond_labels", {"num_classes": 5}),
        DataError,
        lambda w: [npz_path("beyond_labels")(w), "class id(s) 3, 4", "dataset.options.num_classes=5"],
    ),
    (
        "npz3-pool-of-one-class",
        run_npz("onepool", y_train=np.zeros(12, np.int64)),
        DataError,
        lambda w: [npz_path("onepool")(w), "y_train", "single class", "class 0"],
    ),
    (
        "npz3-zero-size-images",
        run_npz("zero", x_train=np.zeros((12, 0, 0), np.uint8), x_test=np.zeros((6, 0, 0), np.uint8)),
        DataError,
        lambda w: [npz_path("zero")(w), "x_train", "zero height or width"],
    ),
    (
        "npz3-images-too-small-for-the-model",
        run_npz("thin", x_train=np.zeros((12, 3, 28), np.uint8), x_test=np.zeros((6, 3, 28), np.uint8)),
        DataError,
        lambda w: [npz_path("thin")(w), "3x28", "'small_cnn'", "at least 8x8"],
    ),
    (
        "folder3-single-class",
        run_folder3("single_class"),
        DataError,
        lambda w: [*_folder3("single_class")(w), "single class folder", "'a'"],
    ),
    (
        "folder3-16-bit-png",
        run_folder3("uint16"),
        DataError,
        lambda w: [*_folder3("uint16", "a", "0.png")(w), "'I;16'", "8-bit"],
    ),
    (
        "folder3-32-bit-integer-tiff",
        run_folder3("int32"),
        DataError,
        lambda w: [*_folder3("int32", "a", "0.tif")(w), "'I'", "8-bit"],
    ),
    (
        "folder3-float-tiff",
        run_folder3("float"),
        DataError,
        lambda w: [*_folder3("float", "a", "0.tif")(w), "'F'", "8-bit"],
    ),
]


def npy_as_npz(w: World) -> None:
    p = w.inputs("renamed") / "renamed.npz"
    np.save(p.with_suffix(".npy"), np.zeros((4, 8, 8), np.uint8))
    p.with_suffix(".npy").rename(p)
    run(w, dataset={"name": "npz", "path": str(p)}, al={"initial_size": 4, "query_size": 2})


def new_labeling_project(w: World, images: Path) -> None:
    from autoal.labeling import LabelingConfig, LabelingProject

    cfg = RunConfig.from_dict({"tracking": {"enabled": False}, "runtime": {"quiet": True}})
    LabelingProject(
        cfg, LabelingConfig.from_dict({"images": str(images), "project": str(w.base / "inputs" / "np")})
    ).export_batch()


def project_import(w: World, csv_file: Path, run: dict | None = None) -> None:
    from autoal.labeling import LabelingConfig, LabelingProject

    project(w, LabelingConfig, LabelingProject, run).import_batch(csv_file)


def test_table_has_at_least_200_rows_over_every_entry():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 200
    for prefix in (
        "dict-",
        "run-",
        "compose-",
        "cli-",
        "npz-",
        "folder-",
        "labels-",
        "export-",
        "mlflow-",
        "yaml3-",
        "cli3-",
    ):
        assert any(i.startswith(prefix) for i in ids), prefix


def _params():
    import torch

    for c in CASES:
        marks = (
            [pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")]
            if c[0] == "run-cuda-unavailable"
            else []
        )
        yield pytest.param(*c, id=c[0], marks=marks)


@pytest.mark.parametrize("case_id, act, err, names", list(_params()))
def test_bad_input(world, capsys, case_id, act, err, names):
    before = snapshot(world.base)
    capsys.readouterr()
    with pytest.raises(err) as info:
        act(world)
    if err is SystemExit:
        assert info.value.code == 2
        message = capsys.readouterr().err
        assert message.startswith("error: ") and message.count("\n") == 1, message  # one line
    else:
        message = str(info.value)
        # one line, except a label file's problems: the library lists them a line each after a
        # first line naming the file (the command prints them on one line)
        assert "\n" not in message or (err is LabelFileError and "problem(s)" in message.splitlines()[0]), message
    for name in names(world) if callable(names) else names:
        assert str(name) in message, f"{case_id}: {name!r} not in {message!r}"
    after = snapshot(world.base)
    assert sorted(after) == sorted(before), f"{case_id}: files appeared or vanished: {set(after) ^ set(before)}"
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"{case_id}: state changed: {changed}"


def test_a_valid_import_after_all_that_still_works(world):
    """The table left the project intact: the waiting batch imports cleanly (runs last)."""
    from autoal.labeling import LabelingConfig, LabelingProject

    ok = fill(world.batch, world.images, world.truth, world.inputs("final") / "ok.csv")
    res = project(world, LabelingConfig, LabelingProject).import_batch(ok)
    assert res.added == len(world.batch) and res.tracking_error is None
