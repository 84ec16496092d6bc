"""Evaluation metrics of an AL run."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else float("nan")


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    classes = np.unique(y_true)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in classes]
    return float(np.mean(recalls)) if recalls else float("nan")


def aubc(labels: Sequence[float], accuracies: Sequence[float]) -> float:
    """Area under the budget curve (accuracy vs number of labels), trapezoid rule, normalized
    by the labeled range (DESIGN.md §3.8). A single point returns that accuracy."""
    x = np.asarray(labels, dtype=float)
    y = np.asarray(accuracies, dtype=float)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError("aubc needs equally long, non-empty label and accuracy sequences")
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / (x[-1] - x[0]))
