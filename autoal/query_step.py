"""One AL query, the same in the loop, the labeling project and the benchmarks: score the unlabeled
pool with the trained task model (and the labeled set when the strategy needs it), hand the
strategy its :class:`~autoal.strategies.QueryContext`, check what it returns. Every random draw
comes from (the run's seed, the round, a purpose), so a query does not depend on what ran before
it (resume after a crash picks what an uninterrupted run picks)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.faults import strike
from autoal.learner import Learner
from autoal.progress import as_reporter
from autoal.seeding import derive_seed, round_rng
from autoal.strategies import QueryContext, Strategy


@dataclass
class QueryOutcome:
    """The dataset indices to label (in the strategy's order), the pool's cache they were chosen
    from, what the strategy logged, and the seconds spent scoring and selecting."""

    selected: np.ndarray
    cache: PoolCache
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    seconds_score: float = 0.0
    seconds_select: float = 0.0


def query_step(
    strategy: Strategy,
    learner: Learner,
    model: torch.nn.Module,
    labeled: np.ndarray,
    unlabeled: np.ndarray,
    n: int,
    *,
    seed: int,
    round_: int,
    progress: Any = False,
) -> QueryOutcome:
    """Choose ``n`` of ``unlabeled`` with ``strategy`` given the task ``model`` trained on
    ``labeled`` in round ``round_`` of a run seeded by ``seed``. ``progress``: the strategy's
    reporter (``ctx.progress``; :mod:`autoal.progress`), or True for bars on stderr (lines when
    it is not a terminal), False for none."""
    t0 = time.perf_counter()
    strike("score", round_)
    cache = learner.score(model, unlabeled, derive_seed(seed, round_, "cache"))
    labeled_cache = None
    if "labeled_cache" in strategy.needs:
        labeled_cache = learner.score(model, labeled, derive_seed(seed, round_, "cache") + 1)
    t1 = time.perf_counter()
    reporter = as_reporter(progress)
    ctx = QueryContext(
        cache=cache,
        unlabeled=unlabeled,
        labeled=labeled,
        n=int(n),
        rng=round_rng(seed, round_, "query"),
        round=round_,
        seed=derive_seed(seed, round_, "search"),
        labeled_cache=labeled_cache,
        model=model,
        dataset=learner.dataset,
        device=learner.device,
        learner=learner,
        progress=reporter,
    )
    strike("select", round_)
    try:
        selected = np.asarray(strategy.query(ctx), dtype=np.int64)
    finally:
        if reporter is not progress:  # made here: close what a failed query left open
            reporter.close()
    t2 = time.perf_counter()
    check_selection(selected, unlabeled, int(n), strategy.name)
    return QueryOutcome(selected, cache, ctx.metrics, ctx.artifacts, t1 - t0, t2 - t1)


def check_selection(selected: np.ndarray, unlabeled: np.ndarray, n: int, name: str) -> None:
    """``n`` distinct indices, all from the unlabeled pool, or a RuntimeError naming the strategy."""
    if len(selected) != n or len(np.unique(selected)) != n or not np.isin(selected, unlabeled).all():
        raise RuntimeError(
            f"strategy {name!r} returned an invalid selection: expected {n} distinct indices "
            f"from the unlabeled pool, got {len(selected)} ({len(np.unique(selected))} distinct)"
        )
