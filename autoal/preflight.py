"""What a run can be refused for before any work (DESIGN.md §3.8): the config, the folders it
writes, the extras and the tracking store it needs (:func:`check_run`, ``autoal run --check``),
and, once the data is loaded, a pool that cannot be queried or does not fit in memory
(:func:`check_data`, :func:`check_memory`)."""

from __future__ import annotations

from pathlib import Path

from autoal.cache import class_cache_bytes
from autoal.config import RunConfig
from autoal.data import ALDataset
from autoal.data.checks import check_pool_classes
from autoal.data.registry import LOADERS
from autoal.errors import DataError
from autoal.extras import require
from autoal.memory import available_memory_bytes, human_bytes
from autoal.strategies import build_strategy
from autoal.tracking import TRACKING_OFF, check_tracking_uri
from autoal.writable import check_writable_folder


def check_run(cfg: RunConfig, run_dir: str | Path | None = None, tracking: bool = True, names: bool = True) -> None:
    """What a run can be refused for before any work, without reading the data or writing a file:
    the config (:meth:`RunConfig.validate`), the run folder's root (``runtime.output_dir``, or
    ``run_dir``), the extras the config needs (Ray for Ray scoring) and, with ``tracking``, the
    tracking store (MLflow installed, the store usable). ``autoal run --check`` asks this.
    With ``names``, the data set and the strategy are looked up by name and the strategy built
    from its parameters (cheap: nothing is trained or loaded); the loop, which may be given its
    own strategy and data objects, builds or loads them itself right after."""
    cfg.validate()
    if names:
        LOADERS.get(cfg.dataset.name)
        build_strategy(cfg.strategy.name, **cfg.strategy.params)
    if run_dir is not None:
        check_writable_folder(run_dir, "run_dir")
    else:
        check_writable_folder(cfg.runtime.output_dir, "runtime.output_dir")
    if cfg.scoring.executor == "ray":
        require("scoring.executor=ray", "ray", alternative="scoring=local")
    if tracking and cfg.tracking.enabled:
        require(f"tracking in MLflow (tracking.uri={cfg.tracking.uri})", "mlflow", alternative=TRACKING_OFF)
        check_tracking_uri(cfg.tracking.uri)


def check_data(cfg: RunConfig, dataset: ALDataset) -> None:
    """A loaded pool that the run cannot query: one class only (a data set object built by the
    caller has not met the loaders' checks), fewer samples than the run labels, or a class-sized
    cache larger than this machine's memory."""
    check_pool_classes(
        dataset.y_train,
        dataset.num_classes,
        f"{dataset.name} ({dataset.source})" if dataset.source else dataset.name,
        dataset.classes,
    )
    cfg.al.check_pool(len(dataset.y_train), dataset.name)
    check_memory(len(dataset.y_train), dataset.num_classes, dataset.name, mc=cfg.al.mc_samples > 0)


def check_memory(n_pool: int, num_classes: int, dataset: str, mc: bool, available: int | None = None) -> None:
    """Refuse, before any training, a pool whose class-sized cache (:func:`class_cache_bytes`)
    exceeds the memory this machine has available (read now; ``available`` for a given figure)."""
    need = class_cache_bytes(n_pool, num_classes, mc)
    have = available_memory_bytes() if available is None else available
    if have is not None and need > have:
        raise DataError(
            f"{dataset}: a pool of {n_pool:,} samples with {num_classes:,} classes needs "
            f"{human_bytes(need)} for each round's class probabilities"
            + (" and MC dropout moments" if mc else "")
            + f"; this machine has {human_bytes(have)} "
            "available (subsample with dataset.train_size, or check the labels: they must be class "
            "indices 0..C-1)"
        )
