"""Squared Euclidean distances on CPU or GPU, shared by k-means, KMeans' rank score and Coreset.

Computed as ||x||² − 2x·c + ||c||² (clamped at 0), in chunks, so memory stays bounded and no
step loops over samples in Python."""
from __future__ import annotations

import torch


def sq_dists(x: torch.Tensor, c: torch.Tensor, x_norm: torch.Tensor | None = None, chunk: int = 16384
             ) -> torch.Tensor:
    """(N, K) squared distances between rows of ``x`` and rows of ``c``; ``x_norm`` may supply
    the precomputed row norms ||x||² (k-means reuses them every iteration)."""
    xn = (x * x).sum(1) if x_norm is None else x_norm
    cn = (c * c).sum(1)
    if x.shape[0] <= chunk:
        return (xn[:, None] - 2.0 * (x @ c.T) + cn).clamp_min_(0)
    return torch.cat([(xn[s:s + chunk, None] - 2.0 * (x[s:s + chunk] @ c.T) + cn).clamp_min_(0)
                      for s in range(0, x.shape[0], chunk)])


def min_sq_dists(x: torch.Tensor, c: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For every row of ``x``, the squared distance to its nearest row of ``c``; memory stays
    O(chunk²) by tiling both sets (Coreset's labeled set can be as large as the pool)."""
    out = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
    for s in range(0, x.shape[0], chunk):
        xb = x[s:s + chunk]
        best = out[s:s + chunk]
        for t in range(0, c.shape[0], chunk):
            best = torch.minimum(best, sq_dists(xb, c[t:t + chunk], chunk=chunk).min(1).values)
        out[s:s + chunk] = best
    return out
