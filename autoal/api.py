"""autoal as a library, in two calls (the package root re-exports both):

- :func:`run`: an AL experiment on an :class:`~autoal.data.ALDataset` or on plain arrays, with a
  strategy by name (or object); returns the :class:`~autoal.loop.RunResult`.
- :func:`query`: a strategy applied to one's own model outputs (class probabilities, optionally
  embeddings): the positions of the ``n`` samples to label next.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from autoal.api_marker import public_api
from autoal.cache import PoolCache
from autoal.config import RunConfig
from autoal.data.base import ALDataset
from autoal.data.checks import warn_data
from autoal.data.files import dataset_from_arrays
from autoal.errors import ConfigError, DataError
from autoal.loop import ActiveLearningLoop, RunResult
from autoal.progress import progress_mode
from autoal.strategies import PoolStrategy, Strategy, build_strategy


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@public_api
def run(
    data: ALDataset | tuple,
    strategy: str | Strategy = "margin",
    *,
    rounds: int = 10,
    initial_size: int = 20,
    query_size: int = 10,
    seed: int = 0,
    model: str | torch.nn.Module | None = None,
    epochs: int = 50,
    output_dir: str = "runs",
    config: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> RunResult:
    """Run ``rounds`` AL rounds on ``data`` (an ALDataset, or ``(x_train, y_train, x_test,
    y_test)`` arrays, checked by :func:`autoal.data.files.dataset_from_arrays`) and return the
    result (history, AUBC, labeled set, run folder). Arrays may hold images ((N, H, W) or
    (N, C, H, W), any channel count; uint8 pixels, or floats kept as float32) or features
    ((N, D), kept as float32); either is standardized per channel / feature with the pool's mean
    and std, features are never augmented. ``model``: None picks ``small_cnn`` for images and
    ``mlp`` for features; else a registered family by name, or
    one's own ``torch.nn.Module`` whose last layer is an ``nn.Linear`` head (adapted by
    :class:`autoal.models.ModuleAdapter`, which documents the contract; pass an adapter to name
    the head, the stage maps or the MC dropout rate); every round trains a fresh copy of it.
    The adapter puts ``nn.Dropout(model.dropout)`` (0.3 unless ``config={"model": {"dropout": 0}}``
    turns it off) in front of the head, for the MC-dropout strategies (BALD, MeanSTD, VarRatio).
    ``RunResult.model`` is the trained model — one's own module, its class and keys, without that
    dropout — and the run folder's ``final_model.pt`` its state dict (``module.load_state_dict``).
    ``config`` overrides any run-config key as a nested mapping
    (``{"train": {"lr": 1e-3}, "strategy": {"params": {...}}}``); tracking is off unless it turns
    it on. The run folder is named after the data, the strategy, the seed and a hash of the config
    and the data, so calling again resumes or returns that run; a strategy passed as an object
    (whose parameters the hash cannot see) always starts afresh. ``progress``: a bar of the
    rounds and epochs; by default shown on a terminal or in a notebook and not in a log or a pipe
    (``AUTOAL_PROGRESS=bar|lines|off`` decides when set); ``True`` also writes progress lines to a
    log, ``False`` never shows anything."""
    show = _show_progress(progress)
    if isinstance(data, ALDataset):
        dataset = data
    else:
        dataset = dataset_from_arrays(
            "arrays", *_four(data), where="autoal.run: data", source="arrays passed to autoal.run"
        )
        warn_data(dataset.name, dataset.source, dataset.info["class_warnings"])
    obj = strategy if isinstance(strategy, Strategy) else None
    name = obj.name if obj is not None else str(strategy)
    module = model if isinstance(model, torch.nn.Module) else None
    if module is None and model is not None and not isinstance(model, str):
        raise ConfigError(f"autoal.run: model must be a model name or a torch.nn.Module; got {type(model).__name__}")
    if model is None:
        model = "mlp" if dataset.kind == "features" else "small_cnn"
    d = {
        "model": {"name": "small_cnn" if module is not None else model},
        "train": {"epochs": epochs},
        "al": {"rounds": rounds, "initial_size": initial_size, "query_size": query_size, "seed": seed},
        "strategy": {"name": name, "params": {}},
        "tracking": {"enabled": False},
        "runtime": {"output_dir": str(output_dir), "quiet": not show, "resume": obj is None},
    }
    cfg = RunConfig.from_dict(_merge(d, config or {}))
    return ActiveLearningLoop(cfg, dataset=dataset, strategy=obj, model=module).run()


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        if not isinstance(progress, bool):
            raise ConfigError(f"autoal.run: progress must be True, False or None; got {progress!r}")
        return progress
    return progress_mode() == "bar"


def _four(data: Any) -> tuple:
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise DataError(
            "autoal.run: data must be an ALDataset or a tuple (x_train, y_train, x_test, y_test); "
            f"got {type(data).__name__}{'' if not isinstance(data, (tuple, list)) else f' of {len(data)}'}"
        )
    return tuple(data)


@public_api
def query(
    probs: Any,
    n: int,
    strategy: str | PoolStrategy = "margin",
    *,
    embeddings: Any = None,
    labeled_embeddings: Any = None,
    seed: int = 0,
) -> np.ndarray:
    """Positions (rows of ``probs``) of the ``n`` samples ``strategy`` would label next, from
    one's own model outputs: ``probs`` (N, C) class probabilities, ``embeddings`` (N, D) for the
    strategies that read them (kmeans, coreset, badge, typiclust, probcover, cluster_margin),
    ``labeled_embeddings`` for those that also look at the labeled set (coreset, typiclust, probcover).
    Strategies that need Monte-Carlo dropout or train models of their own need :func:`run`."""
    p = torch.as_tensor(np.asarray(probs, dtype=np.float32))
    if (
        p.ndim != 2
        or len(p) == 0
        or not torch.isfinite(p).all()
        or (p < 0).any()
        or not torch.allclose(p.sum(1), torch.ones(len(p)), atol=1e-3)
    ):
        raise DataError(
            f"autoal.query: probs must be an (N, C) array of finite probabilities whose rows sum to 1; "
            f"got shape {tuple(p.shape)}"
        )
    strat = strategy if isinstance(strategy, Strategy) else build_strategy(str(strategy))
    if not isinstance(strat, PoolStrategy) or "mc" in strat.needs:
        raise ConfigError(
            f"autoal.query: strategy {strat.name!r} needs a trained model (Monte-Carlo dropout or "
            "models of its own); use autoal.run"
        )
    if not 1 <= int(n) <= len(p):
        raise ConfigError(f"autoal.query: n must lie in 1..{len(p)} (the rows of probs); got {n!r}")
    emb = None if embeddings is None else torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    if "embeddings" in strat.needs and (emb is None or emb.shape[0] != len(p)):
        raise ConfigError(
            f"autoal.query: strategy {strat.name!r} reads embeddings: pass embeddings with one row per row of probs"
        )
    cache = PoolCache(
        np.arange(len(p)), p, emb if emb is not None else torch.zeros(len(p), 0), torch.log(p.clamp_min(1e-12))
    )
    labeled = None
    if labeled_embeddings is not None:
        le = torch.as_tensor(np.asarray(labeled_embeddings, dtype=np.float32))
        labeled = PoolCache(np.arange(len(le)), torch.zeros(len(le), p.shape[1]), le, torch.zeros(len(le), p.shape[1]))
    return np.asarray(strat.select_positions(cache, int(n), np.random.default_rng(seed), labeled), dtype=np.int64)
