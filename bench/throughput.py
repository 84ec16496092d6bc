"""Training throughput and the run-time split of an AL run (the "runs as fast as the work
allows" checks).

- :func:`train_throughput`: images/s of :func:`autoal.training.train_model` on a real
  :class:`~autoal.data.ALDataset` against a tight loop of forward + backward + optimizer step on
  the same model, batch size and batches already prepared (no indexing, no transform), in the
  same process, one torch thread, interleaved repeats, medians. Target: ratio >= 0.70.
- :func:`run_split`: one short AL run per setting shape through ``run_experiment`` with MLflow
  tracking on (a temporary SQLite store), as a user runs it; its wall time split into what the
  round history records (training incl. evaluation, scoring, selection, AutoAL's search) and the
  rest (overhead: start-up, state and checkpoint writes, MLflow calls, figures). Target:
  overhead <= 10 % of the wall time.

    python bench/run.py --only train_throughput run_split      # about 6 minutes on 2 cores
    python bench/run.py --smoke --only train_throughput run_split
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.common import ratio, synthetic_dataset

TARGET_RATIO = 0.70
TARGET_OVERHEAD = 0.10
#: the quality matrix's MNIST pool (bench/quality.py MNIST_SUB)
MNIST_SUB = {"name": "mnist", "train_size": 5000, "test_size": 2000}


class _one_thread:
    """torch at one CPU thread inside the block (the settings' runs use one thread each)."""

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def shape_dataset(size: int):
    """The data set of a setting shape: digits (8×8, bundled with scikit-learn) or MNIST's
    5,000-image pool (28×28, the bundled copy); synthetic uint8 images of that shape through the
    same ALDataset class when MNIST is not installed. Returns (dataset, what it is)."""
    from autoal.data import load_dataset
    from autoal.data.registry import DataSpec

    if size == 8:
        return load_dataset(DataSpec(name="digits")), "digits"
    try:
        return load_dataset(DataSpec(**MNIST_SUB)), "mnist (5,000 pool)"
    except Exception as e:  # noqa: BLE001 - the data extra is optional: same shape, same class
        ds = synthetic_dataset(5000, 2000, size=size)
        ds.augmentation = "none"  # as MNIST's loader
        return ds, f"synthetic ({type(e).__name__})"


def _fresh_model(ds, seed: int = 0) -> torch.nn.Module:
    from autoal.device import prepare_model
    from autoal.models import build_model
    from autoal.seeding import seed_torch

    seed_torch(seed)
    return prepare_model(build_model("small_cnn", ds.in_channels, ds.num_classes, ds.image_size), torch.device("cpu"))


def tight_loop(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], epochs: int, cfg) -> None:
    """Forward, loss, backward and optimizer step over prepared (normalized, channels-last)
    batches: the most a training loop can do with this model and batch size."""
    from autoal.training import make_optimizer

    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    model.train()
    for _ in range(epochs):
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def throughput_row(ds, n: int, *, batch_size: int = 64, steps: int = 60, repeats: int = 5) -> dict[str, Any]:
    """One row: ``n`` labeled samples of ``ds``, ``batch_size`` as the settings (a batch is
    min(batch_size, n)), epochs enough for about ``steps`` optimizer steps. The two loops
    alternate within each repeat, each on a fresh model, so drift on a shared machine hits both."""
    from autoal.device import prepare_batch
    from autoal.training import TrainConfig, epoch_batches, train_model

    dev = torch.device("cpu")
    bs = min(batch_size, n)
    idx = np.sort(np.random.default_rng(0).choice(len(ds.y_train), size=n, replace=False))
    perm = torch.as_tensor(idx)[torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    # the batches train_model steps on (near-equal sizes; one of fewer than 2 is skipped for BatchNorm)
    parts = [sel for sel in epoch_batches(perm, batch_size) if len(sel) >= 2 or n < 2]
    epochs = max(1, -(-steps // max(1, len(parts))))
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size)
    batches = []
    for sel in parts:
        batches.append(
            (
                ds.eval_transform(prepare_batch(ds.x_train[sel], dev)).contiguous(memory_format=torch.channels_last),
                ds.y_train[sel].clone(),
            )
        )
    images = epochs * sum(len(sel) for sel in parts)
    t_loop, t_tight = [], []
    with _one_thread():
        for rep in range(repeats + 1):  # the first is a warm-up
            m = _fresh_model(ds, rep)
            t0 = time.perf_counter()
            train_model(m, ds, idx, cfg, device=dev, seed=rep, images=ds.x_train)
            t1 = time.perf_counter()
            m = _fresh_model(ds, rep)
            t2 = time.perf_counter()
            tight_loop(m, batches, epochs, cfg)
            t3 = time.perf_counter()
            if rep:
                t_loop.append(t1 - t0)
                t_tight.append(t3 - t2)
    loop_ips = images / statistics.median(t_loop)
    tight_ips = images / statistics.median(t_tight)
    return {
        "labeled": n,
        "batch": bs,
        "epochs": epochs,
        "steps": epochs * len(parts),
        "train_model_images_per_s": loop_ips,
        "tight_images_per_s": tight_ips,
        "ratio": ratio(loop_ips, tight_ips),
    }


def train_throughput(
    sizes: tuple[int, ...] = (20, 64, 200, 1000), shapes: tuple[int, ...] = (8, 28), steps: int = 60, repeats: int = 5
) -> dict[str, Any]:
    """:func:`throughput_row` for each setting shape and labeled-set size; one torch thread."""
    rows = []
    sources = {}
    for size in shapes:
        ds, what = shape_dataset(size)
        sources[f"{size}x{size}"] = what
        for n in sizes:
            rows.append(
                {
                    "shape": f"{size}x{size}x{ds.in_channels}",
                    **throughput_row(ds, min(n, len(ds.y_train)), steps=steps, repeats=repeats),
                }
            )
    worst = min(r["ratio"] for r in rows)
    return {
        "data": sources,
        "threads": 1,
        "model": "small_cnn",
        "optimizer": "adam",
        "rows": rows,
        "min_ratio": worst,
        "target_ratio": TARGET_RATIO,
        "meets_target": worst >= TARGET_RATIO,
    }


#: one short run per setting shape: digits as the quality matrix runs it; MNIST's shape reduced
#: (fewer rounds and epochs, the 5,000 pool) so that a run takes about a minute on one thread
RUN_SETTINGS = {
    "digits": {"dataset": {"name": "digits"}, "al": {"initial_size": 20, "query_size": 10, "rounds": 10}},
    "mnist": {
        "dataset": dict(MNIST_SUB),
        "al": {"initial_size": 20, "query_size": 20, "rounds": 4},
        "train": {"epochs": 30, "min_steps": 100},
    },
}
SMOKE_RUN_SETTINGS = {
    "digits": {
        "dataset": {"name": "digits"},
        "al": {"initial_size": 20, "query_size": 10, "rounds": 1},
        "train": {"epochs": 5},
    },
    "mnist": {
        "dataset": {"name": "mnist", "train_size": 600, "test_size": 200},
        "al": {"initial_size": 20, "query_size": 20, "rounds": 1},
        "train": {"epochs": 5},
    },
}


def split_of(history: list[dict[str, Any]], wall: float) -> dict[str, float]:
    """Seconds of a run by part: training (with the round's test evaluation), scoring, selection
    (the query less AutoAL's search), search, and overhead = wall - their sum; with shares."""
    train = sum(h["seconds_train"] for h in history)
    score = sum(h["seconds_score"] for h in history)
    search = sum(h.get("seconds_search", 0.0) for h in history)
    select = sum(h["seconds_select"] for h in history) - search
    overhead = wall - (train + score + select + search)
    out = {"wall": wall, "train": train, "score": score, "select": select, "search": search, "overhead": overhead}
    out.update({f"share_{k}": ratio(v, wall) for k, v in list(out.items()) if k != "wall"})
    return out


def one_run(setting: dict[str, Any], strategy: str, store: Path, out: Path, seed: int = 0) -> dict[str, Any]:
    """One AL run through ``run_experiment`` with MLflow tracking to the SQLite store in the
    folder ``store``, run folders under ``out``, one torch thread; wall time from the call (data
    loading, tracker start-up included) to its return (figures, artifacts and model logged)."""
    from autoal.config import RunConfig
    from autoal.loop import run_experiment

    d = {k: dict(v) for k, v in setting.items()}
    d["al"] = {**d["al"], "seed": seed}
    d.update(
        {
            "strategy": {"name": strategy},
            "tracking": {"enabled": True, "uri": f"sqlite:///{store / 'mlflow.db'}", "experiment": "throughput"},
            "runtime": {"output_dir": str(out), "quiet": True, "resume": False, "num_threads": 1, "device": "cpu"},
        }
    )
    cfg = RunConfig.from_dict(d)
    before = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        res = run_experiment(cfg)
    finally:
        wall = time.perf_counter() - t0
        torch.set_num_threads(before)
    return {
        "rounds": len(res.history),
        "labels": res.history[-1]["labels"],
        "final_accuracy": res.final_accuracy,
        **split_of(res.history, wall),
    }


def run_split(
    smoke: bool = False,
    strategies: tuple[str, ...] = ("margin", "autoal"),
    settings: tuple[str, ...] = ("digits", "mnist"),
) -> dict[str, Any]:
    """:func:`one_run` for each setting shape and strategy, all on one tracking store. The
    process's first run also pays the imports (MLflow, matplotlib) and the store's creation; a
    one-round warm-up run (its wall time reported, not its split) takes that, as a user's second
    run in a session, or any run on an existing store, finds it done."""
    table = SMOKE_RUN_SETTINGS if smoke else RUN_SETTINGS
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        warm = {k: dict(v) for k, v in SMOKE_RUN_SETTINGS["digits"].items()}
        warm["al"] = {**warm["al"], "rounds": 1}
        t0 = time.perf_counter()
        one_run(warm, "margin", store, store / "warmup")
        first = time.perf_counter() - t0
        for name in settings:
            for strategy in strategies:
                rows[f"{name}/{strategy}"] = one_run(table[name], strategy, store, store / f"{name}-{strategy}")
    worst = max(r["share_overhead"] for r in rows.values())
    return {
        "threads": 1,
        "tracking": "sqlite",
        "settings": {k: table[k] for k in settings},
        "first_run_seconds": first,
        "runs": rows,
        "max_overhead_share": worst,
        "target_overhead_share": TARGET_OVERHEAD,
        "meets_target": worst <= TARGET_OVERHEAD,
    }
