"""Where the expensive parts of a round run when they do not run in the loop's process
(DESIGN.md §5). Below the strategies and the loop, above the search and the cache:

- :mod:`autoal.executors.ray_scoring`: :class:`~autoal.executors.ray_scoring.RayScorer`, the
  pool cache computed data-parallel by Ray actors (``scoring.executor=ray``), equal to the
  in-process :func:`autoal.cache.compute_cache`;
- :mod:`autoal.executors.ray_ensemble`: a strategy's extra models trained as Ray tasks
  (ENSvarR's ensemble members), equal to the in-process training;
- :mod:`autoal.executors.ray_train_search`: the paper formulation's FitNet/SearchNet/LPM updates
  inside one Ray Train ``TorchTrainer`` per round (``strategy.params.search_executor=ray_train``), DDP
  over the batch.

Nothing heavy is imported here: Ray is imported by the submodules, so the library starts
without it. Below the platform (sweeps, the cluster), these are the only modules that import
Ray (``tests/test_layers.py``); a strategy declares the Ray resources one run of it takes
(:meth:`autoal.strategies.base.Strategy.ray_resources`) and calls an executor.
"""

from __future__ import annotations

__all__ = ["ray_ensemble", "ray_scoring", "ray_train_search"]
