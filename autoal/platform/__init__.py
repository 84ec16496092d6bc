"""The experiment platform at the top edge (DESIGN.md §5-6): Ray Tune sweeps with MLflow parent
and child runs (:mod:`autoal.platform.sweep`), reports over a sweep's runs
(:mod:`autoal.platform.report`) and the cluster launcher's checks (:mod:`autoal.platform.cluster`).
The Ray executors of a single round live below, in :mod:`autoal.executors`.

This package imports nothing heavy at import time: Ray and MLflow are imported when used.
"""

from __future__ import annotations

__all__ = ["cluster", "report", "sweep"]
