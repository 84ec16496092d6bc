"""A round of the paper formulation's search as a list of planned cycles, and the in-process
executor that runs them. The strategy plans (A/V splits, seeds, FitNet resets) in the driver;
an executor — :func:`run_cycles` here, or :func:`autoal.executors.ray_train_search.run_search_on_ray_train`
on Ray Train workers — runs the plans in order, with the same interface and the same draws."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.device import prepare_model
from autoal.models import new_like
from autoal.search.search import CycleStats, SearchConfig, SearchNets, SearchOptimizers, search_cycle


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


def fresh_like(net: torch.nn.Module, opt: torch.optim.Optimizer, seed: int, device: torch.device
               ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A fresh net of the same build (:func:`autoal.models.new_like` under ``seed``) and a fresh
    optimizer of the same kind and hyperparameters."""
    fresh = prepare_model(new_like(net, seed), device)
    return fresh, type(opt)(fresh.parameters(), **opt.defaults)


def run_cycles(nets: SearchNets, opts: SearchOptimizers, x: torch.Tensor, y: torch.Tensor,
               plans: Sequence[CyclePlan], cfg: SearchConfig, candidates: Sequence[Any], *,
               augment: Callable | None = None) -> list[CycleStats]:
    """Run every cycle of ``plans`` in order in this process, updating ``nets`` and ``opts`` in
    place. ``x``/``y``: the labeled set's normalized images and labels (``plans`` index their
    rows). Returns one :class:`CycleStats` per cycle."""
    stats = []
    for plan in plans:
        if plan.reset_fitnet:
            nets.fitnet, opts.fitnet = fresh_like(nets.fitnet, opts.fitnet, plan.seed, x.device)
        if plan.torch_seed is not None:
            torch.manual_seed(int(plan.torch_seed))
        a = torch.as_tensor(plan.a_rows, dtype=torch.long, device=x.device)
        v = torch.as_tensor(plan.v_rows, dtype=torch.long, device=x.device)
        stats.append(search_cycle(nets, opts, (x[a], y[a]), (x[v], y[v]), cfg, candidates, seed=int(plan.seed),
                                  v_cache=plan.v_cache, augment=augment))
    return stats
