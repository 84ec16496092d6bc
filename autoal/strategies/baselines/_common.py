"""Helpers shared by the baselines: chunked distances, seeds, and access to what the loop puts
into the query context."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from autoal.strategies.base import QueryContext


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


def sq_dists(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (len(x), len(c)), as ||x||² − 2x·c + ||c||² clamped at 0."""
    return ((x * x).sum(1, keepdim=True) - 2.0 * x @ c.T + (c * c).sum(1)).clamp_min_(0)


def min_sq_dists(x: torch.Tensor, c: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For every row of ``x``, the squared distance to its nearest row of ``c``; memory stays
    O(chunk²) by tiling both sets."""
    out = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
    for s in range(0, x.shape[0], chunk):
        xb = x[s:s + chunk]
        best = out[s:s + chunk]
        for t in range(0, c.shape[0], chunk):
            best = torch.minimum(best, sq_dists(xb, c[t:t + chunk]).min(1).values)
        out[s:s + chunk] = best
    return out


def loop_train_config(ctx: QueryContext) -> Any:
    """The loop's TrainConfig from the context, else the library default."""
    cfg = getattr(ctx, "train_config", None)
    if cfg is not None:
        return cfg
    from autoal.training import TrainConfig

    return TrainConfig()


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's state dict (for ``Strategy.state_dict``)."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
