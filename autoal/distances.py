"""Squared Euclidean distances on CPU or GPU, shared by k-means, KMeans' rank score and Coreset.

Computed as ||x||² − 2x·c + ||c||² (clamped at 0) by one matrix product of augmented rows
[x, ||x||², 1] and augmented centres [−2c, 1, ||c||²] — no broadcast copy of the (N, K) block —
in chunks, so memory stays bounded and no step loops over samples in Python."""

from __future__ import annotations

import torch


def augment_rows(x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
    """[x − shift, ||x − shift||², 1] (N, D + 2), built in one buffer (float32 unless ``x`` is
    another float type). Against :func:`augment_centres` of centres in the same frame, one matrix
    product gives the squared distances."""
    n, d = x.shape
    out = x.new_empty(n, d + 2, dtype=x.dtype if x.is_floating_point() else torch.float32)
    if shift is None:
        out[:, :d].copy_(x)
    else:
        torch.sub(x, shift, out=out[:, :d])
    out[:, d] = torch.linalg.vector_norm(out[:, :d], dim=1).square_()
    out[:, d + 1] = 1.0
    return out


def augment_centres(c: torch.Tensor) -> torch.Tensor:
    """[−2c, 1, ||c||²] (K, D + 2), the partner of :func:`augment_rows`."""
    cn = (c * c).sum(1, keepdim=True)
    return torch.cat([-2.0 * c, torch.ones_like(cn), cn], 1)


def sq_dists(x: torch.Tensor, c: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """(N, K) squared distances between rows of ``x`` and rows of ``c``."""
    ct = augment_centres(c).T
    return (
        torch.cat([torch.mm(augment_rows(x[s : s + chunk]), ct).clamp_min_(0) for s in range(0, x.shape[0], chunk)])
        if x.shape[0]
        else x.new_zeros(0, c.shape[0])
    )


def min_sq_dists(x: torch.Tensor, c: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """For every row of ``x``, the squared distance to its nearest row of ``c``; memory stays
    O(chunk²) by tiling both sets (Coreset's labeled set can be as large as the pool)."""
    out = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
    for s in range(0, x.shape[0], chunk):
        xb = x[s : s + chunk]
        best = out[s : s + chunk]
        for t in range(0, c.shape[0], chunk):
            best = torch.minimum(best, sq_dists(xb, c[t : t + chunk], chunk=chunk).min(1).values)
        out[s : s + chunk] = best
    return out


def nearest_rows(x: torch.Tensor, m: int, chunk: int = 4096) -> torch.Tensor:
    """(N, m) positions of every row's m nearest rows of ``x`` (itself included), nearest first;
    memory stays O(chunk²) by keeping a running top m while tiling the columns."""
    n = x.shape[0]
    m = min(int(m), n)
    out = torch.empty(n, m, dtype=torch.long, device=x.device)
    for s in range(0, n, chunk):
        xb = x[s : s + chunk]
        vals = xb.new_empty(xb.shape[0], 0)
        idx = torch.empty(xb.shape[0], 0, dtype=torch.long, device=x.device)
        for t in range(0, n, chunk):
            d = sq_dists(xb, x[t : t + chunk], chunk=chunk)
            vals = torch.cat([vals, d], 1)
            idx = torch.cat([idx, torch.arange(t, t + d.shape[1], device=x.device).expand(d.shape[0], -1)], 1)
            vals, keep = vals.topk(min(m, vals.shape[1]), dim=1, largest=False)
            idx = idx.gather(1, keep)
        out[s : s + chunk] = idx
    return out
