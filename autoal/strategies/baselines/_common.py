"""Helpers shared by the baselines: seeds, and access to what the loop puts
into the query context."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from autoal.strategies.base import QueryContext
from autoal.training import TrainConfig


def require_ctx(ctx: QueryContext | None, name: str, *fields: str) -> QueryContext:
    """The context, checked to carry ``fields``; a clear error names what is missing."""
    if ctx is None:
        raise ValueError(f"strategy {name!r} needs the query context (call query(ctx), not select_positions alone)")
    missing = [f for f in fields if getattr(ctx, f, None) is None]
    if missing:
        raise ValueError(f"strategy {name!r} needs {', '.join(missing)} in the query context")
    return ctx


def sub_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed derived from ``seed`` and integer keys (e.g. an ensemble member)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]])
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


def rng_seed(rng: np.random.Generator) -> int:
    """One draw of the round's generator as a seed for torch generators."""
    return int(rng.integers(0, 2**31 - 1))


def loop_train_config(ctx: QueryContext) -> Any:
    """The task recipe (the learner's TrainConfig), else the library default."""
    if ctx.learner is not None:
        return ctx.learner.train_cfg
    return TrainConfig()


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's state dict (for ``Strategy.state_dict``)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
