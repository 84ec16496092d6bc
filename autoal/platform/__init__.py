"""The Ray side of autoal (DESIGN.md §5): side effects at the edges.

- :mod:`autoal.platform.scoring`: :class:`~autoal.platform.scoring.RayScorer`, the pool cache
  computed data-parallel by Ray actors (``scoring.executor=ray``), equal to the in-process
  :func:`autoal.cache.compute_cache`;
- :mod:`autoal.platform.train_search`: AutoAL's FitNet/SearchNet/LPM updates inside one Ray Train
  ``TorchTrainer`` per round (``executor=ray_train``), DDP over the batch.

This package imports nothing heavy at import time: Ray is imported by the submodules, and only
when they are used, so the library and its CLI start without Ray.
"""
from __future__ import annotations

__all__ = ["scoring", "train_search"]
