"""Batched k-means in torch (k-means++ seeding, Lloyd iterations), on CPU or GPU.

Used by the KMeans candidate (DESIGN.md §3.1) at k = b. Distances are computed in chunks as
||x||² − 2x·c + ||c||², so memory stays O(chunk × k)."""
from __future__ import annotations

import torch


def _sq_dists(x: torch.Tensor, c: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    cn = (c * c).sum(1)
    out = []
    for s in range(0, x.shape[0], chunk):
        xb = x[s:s + chunk]
        out.append(((xb * xb).sum(1, keepdim=True) - 2.0 * xb @ c.T + cn).clamp_min_(0))
    return torch.cat(out)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): row positions of k distinct seeds."""
    n = x.shape[0]
    first = torch.randint(0, n, (1,), generator=generator, device=generator.device).to(x.device)
    chosen = [first]
    d2 = _sq_dists(x, x[first]).squeeze(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            probs = torch.ones_like(d2)
            probs[torch.cat(chosen)] = 0
        else:
            probs = d2
        nxt = torch.multinomial((probs / probs.sum()).to(generator.device), 1, generator=generator).to(x.device)
        chosen.append(nxt)
        d2 = torch.minimum(d2, _sq_dists(x, x[nxt]).squeeze(1))
    return torch.cat(chosen)


def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0, tol: float = 1e-4
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster rows of ``x`` into ``k`` groups. Returns (centres (k, D), assignment (N,))."""
    x = x.float()
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    centres = x[kmeans_plus_plus(x, k, gen)].clone()
    assign = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for _ in range(iters):
        assign = _sq_dists(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype).unsqueeze(1)
        new = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        shift = (new - centres).pow(2).sum(1).max()
        centres = new
        if shift <= tol * (x.var(0).sum() + 1e-12):
            break
    assign = _sq_dists(x, centres).argmin(1)
    return centres, assign


def kmeans_picks(x: torch.Tensor, k: int, *, seed: int = 0, iters: int = 20) -> torch.Tensor:
    """The ``k`` distinct row positions nearest to the k-means centres: per cluster, the member
    nearest its centre (so picks are distinct); an empty cluster is filled by the farthest
    unpicked point from its nearest centre."""
    n = x.shape[0]
    k = min(k, n)
    centres, assign = kmeans(x, k, iters=iters, seed=seed)
    d = _sq_dists(x.float(), centres)
    own = d.gather(1, assign.unsqueeze(1)).squeeze(1)
    # per cluster: the member of minimal distance (ties → lowest position)
    best = torch.full((k,), float("inf"), device=x.device).scatter_reduce(0, assign, own, reduce="amin")
    is_best = own <= best[assign]
    pos = torch.arange(n, device=x.device)
    cand = torch.where(is_best, pos, torch.full_like(pos, n))
    first = torch.full((k,), n, device=x.device, dtype=torch.long).scatter_reduce(0, assign, cand, reduce="amin")
    picks = first[first < n]
    if picks.numel() < k:  # empty clusters
        taken = torch.zeros(n, dtype=torch.bool, device=x.device)
        taken[picks] = True
        far = torch.where(taken, torch.full_like(own, -1.0), d.min(1).values)
        extra = torch.argsort(far, descending=True, stable=True)[: k - picks.numel()]
        picks = torch.cat([picks, extra])
    return picks
