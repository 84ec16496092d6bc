"""A round of the paper formulation's search as a list of planned cycles (:class:`SearchRound`),
and the in-process executor that runs them. The strategy plans (A/V splits, seeds, FitNet
resets) in the driver; an executor — :func:`run_cycles` here, or
:func:`autoal.executors.ray_train_search.run_search_on_ray_train` on Ray Train workers — runs
the plans in order, with the same draws."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.device import prepare_model
from autoal.models import new_like
from autoal.search.cycle import CycleStats, SearchConfig, SearchNets, SearchOptimizers, search_cycle


@dataclass
class CyclePlan:
    """One search cycle as the driver decided it: the A and V row positions into the labeled
    tensors, the cycle's seed (as :func:`search_cycle` takes it), and whether FitNet restarts
    from fresh weights (:func:`fresh_like` under ``torch.manual_seed(seed)``) before the cycle.
    ``torch_seed`` seeds torch's global RNG right before the cycle (dropout, augmentation).
    ``v_cache``: candidate inputs from the task model (``candidate_model: task``), row-aligned
    with ``v_rows``."""

    a_rows: np.ndarray
    v_rows: np.ndarray
    seed: int
    reset_fitnet: bool = False
    torch_seed: int | None = None
    v_cache: PoolCache | None = None


@dataclass
class SearchRound:
    """One round's search as an executor runs it: the nets and their optimizers (updated in
    place), the labeled set's normalized images ``x`` and labels ``y`` (the plans index their
    rows), the planned cycles, the search's config, the candidates and FitNet's augmentation."""

    nets: SearchNets
    opts: SearchOptimizers
    x: torch.Tensor
    y: torch.Tensor
    plans: Sequence[CyclePlan]
    cfg: SearchConfig
    candidates: Sequence[Any]
    augment: Callable | None = None


def fresh_like(
    net: torch.nn.Module, opt: torch.optim.Optimizer, seed: int, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A fresh net of the same build (:func:`autoal.models.new_like` under ``seed``) and a fresh
    optimizer of the same kind and hyperparameters."""
    fresh = prepare_model(new_like(net, seed), device)
    return fresh, type(opt)(fresh.parameters(), **opt.defaults)


def _batches(n: int, batch_size: int) -> int:
    """How many mini-batches of at least 2 rows :func:`~autoal.search.cycle.batch_rows` cuts
    from ``n`` rows (the only ones the search trains on)."""
    sizes = [min(batch_size, n - i) for i in range(0, n, max(1, batch_size))]
    if len(sizes) > 1 and sizes[-1] < 2:  # a tail of fewer than 2 rows joins the batch before it
        tail = sizes.pop()
        sizes[-1] += tail
    return sum(1 for s in sizes if s >= 2)


def planned_updates(plan: CyclePlan, cfg: SearchConfig) -> int:
    """The optimizer updates :func:`search_cycle` makes in ``plan``'s cycle: FitNet's warm-up
    steps on A, then one SearchNet and one FitNet step per V batch and search epoch."""
    warm = int(cfg.warmup_epochs) * _batches(len(plan.a_rows), cfg.batch_size) if len(plan.a_rows) >= 2 else 0
    return warm + 2 * int(cfg.search_epochs) * _batches(len(plan.v_rows), cfg.batch_size)


def run_cycles(work: SearchRound, progress: Callable[..., None] | None = None) -> list[CycleStats]:
    """Run every cycle of ``work.plans`` in order in this process, updating ``work.nets`` and
    ``work.opts`` in place. Returns one :class:`CycleStats` per cycle.

    ``progress(done, total, cycle=c)``: called as SearchNet's and FitNet's optimizers step
    (``total`` = :func:`planned_updates` over the plans; counted by optimizer step hooks, so the
    search itself is untouched), and with each cycle's planned end when the cycle ends."""
    nets, opts, x, y, cfg = work.nets, work.opts, work.x, work.y, work.cfg
    plans = list(work.plans)
    total = sum(planned_updates(p, cfg) for p in plans) if progress is not None else 0
    done = reported = end = 0

    def report(cycle: int) -> None:
        nonlocal reported
        if progress is not None and total and done > reported:
            reported = done
            progress(done, total, cycle=cycle)

    stats = []
    for c, plan in enumerate(plans):
        if plan.reset_fitnet:
            nets.fitnet, opts.fitnet = fresh_like(nets.fitnet, opts.fitnet, plan.seed, x.device)
        if plan.torch_seed is not None:
            torch.manual_seed(int(plan.torch_seed))
        a = torch.as_tensor(plan.a_rows, dtype=torch.long, device=x.device)
        v = torch.as_tensor(plan.v_rows, dtype=torch.long, device=x.device)
        end += planned_updates(plan, cfg) if progress is not None else 0

        def tick(*_: Any, cycle: int = c + 1, limit: int = end) -> None:
            nonlocal done
            done = min(done + 1, limit)
            report(cycle)

        hooks = (
            []
            if progress is None
            else [opts.searchnet.register_step_post_hook(tick), opts.fitnet.register_step_post_hook(tick)]
        )
        try:
            stats.append(
                search_cycle(
                    nets,
                    opts,
                    (x[a], y[a]),
                    (x[v], y[v]),
                    cfg,
                    work.candidates,
                    seed=int(plan.seed),
                    v_cache=plan.v_cache,
                    augment=work.augment,
                )
            )
        finally:
            for h in hooks:
                h.remove()
        done = end
        report(c + 1)
    return stats
