"""Seeded top-n selection: the one place where scores become picks."""

from __future__ import annotations

import numpy as np
import torch


def top_n(scores: torch.Tensor | np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Row positions of the ``n`` highest scores; ties broken by a seeded random order.

    Vectorized: a seeded permutation, then a stable descending sort, so that equal scores keep
    the permutation's (random, reproducible) order."""
    s = torch.as_tensor(scores)
    m = s.shape[0]
    if n > m:
        raise ValueError(f"cannot select {n} of {m} samples")
    perm = torch.from_numpy(rng.permutation(m)).to(s.device)
    s = torch.nan_to_num(s.float(), nan=-float("inf"))
    order = torch.argsort(s[perm], descending=True, stable=True)
    return perm[order[:n]].cpu().numpy()


def mask_from_positions(positions: np.ndarray, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """0/1 float indicator of length ``size`` with ones at ``positions``."""
    m = torch.zeros(size, device=device)
    m[torch.as_tensor(positions, dtype=torch.long, device=device)] = 1.0
    return m


def picks_first_rank_score(picks: np.ndarray, secondary: torch.Tensor) -> torch.Tensor:
    """A rank score in [0, 1] for a strategy that picks a set in order: 1 down to 0.5 over
    ``picks`` (row positions, in pick order), below 0.5 every other row by ``secondary`` (higher
    first, ties by position) — so the top ``len(picks)`` of the score are the picks."""
    m = secondary.shape[0]
    ranks = torch.argsort(torch.argsort(secondary, descending=True, stable=True)).float()
    r = 0.5 * (1.0 - ranks / max(m - 1, 1)) * 0.999
    if len(picks):
        r[torch.as_tensor(np.asarray(picks), device=r.device)] = torch.linspace(1.0, 0.5, len(picks), device=r.device)
    return r
