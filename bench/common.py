"""Shared helpers of the benchmarks: timing (median of repeats), machine facts, synthetic pools."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable

import numpy as np
import torch


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` runs (after ``warmup`` runs); CUDA-synchronized."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def machine() -> dict:
    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    for mod in ("numpy", "sklearn", "ray", "mlflow"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is a fact to report
            info[mod] = None
    return info


def synthetic_dataset(
    n_pool: int,
    n_test: int = 200,
    size: int = 8,
    channels: int = 1,
    classes: int = 10,
    seed: int = 0,
    name: str = "synthetic",
):
    """Random uint8 images in the given shape (real pixel statistics do not change the cost)."""
    from autoal.data.base import ALDataset

    g = torch.Generator().manual_seed(seed)
    return ALDataset(
        name=name,
        x_train=torch.randint(0, 256, (n_pool, channels, size, size), dtype=torch.uint8, generator=g),
        y_train=torch.randint(0, classes, (n_pool,), generator=g),
        x_test=torch.randint(0, 256, (n_test, channels, size, size), dtype=torch.uint8, generator=g),
        y_test=torch.randint(0, classes, (n_test,), generator=g),
        num_classes=classes,
        augmentation="none" if size <= 8 else "crop_flip",
    )


def ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
