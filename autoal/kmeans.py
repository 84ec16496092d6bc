"""Batched k-means in torch (greedy k-means++ seeding, Lloyd iterations), on CPU or GPU.

Used by the KMeans candidate (DESIGN.md §3.1) at k = b. Squared distances come from
:mod:`autoal.distances` with the row norms computed once, so no step loops over samples in
Python."""
from __future__ import annotations

import math

import torch

from autoal.distances import sq_dists as _sq_dists


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator, n_trials: int | None = None,
                     x_norm: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; the greedy variant with
    2 + ⌊ln k⌋ candidates per step, as scikit-learn uses): row positions of k seeds.

    All candidates of a step are evaluated in one matrix product, and no step waits for the
    device (no host synchronization inside the loop), so k = 1,000 seeds on a GPU cost a few
    kernel launches each. ``generator`` must live on ``x``'s device. With fewer than k distinct
    points some seeds repeat; :func:`kmeans_picks` then fills the empty clusters."""
    n = x.shape[0]
    xn = (x * x).sum(1) if x_norm is None else x_norm
    trials = n_trials or 2 + int(math.log(max(k, 1)))
    first = torch.randint(0, n, (1,), generator=generator, device=x.device)
    chosen = torch.empty(k, dtype=torch.long, device=x.device)
    chosen[0] = first[0]
    d2 = _sq_dists(x, x[first], xn).squeeze(1)
    tiny = torch.finfo(d2.dtype).tiny
    for i in range(1, k):
        cand = torch.multinomial(d2 + tiny, trials, replacement=True, generator=generator)
        dc = torch.minimum(d2[:, None], _sq_dists(x, x[cand], xn))  # (N, trials)
        best = dc.sum(0).argmin().view(1)
        chosen[i] = cand[best][0]
        d2 = dc.index_select(1, best).squeeze(1)
    return chosen


def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0, tol: float = 1e-4
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster rows of ``x`` into ``k`` groups. Returns (centres (k, D), assignment (N,))."""
    x = x.float()
    xn = (x * x).sum(1)
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    centres = x[kmeans_plus_plus(x, k, gen, x_norm=xn)].clone()
    scale = x.var(0).sum() + 1e-12
    for _ in range(iters):
        assign = _sq_dists(x, centres, xn).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype).unsqueeze(1)
        new = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        shift = (new - centres).pow(2).sum(1).max()
        centres = new
        if shift <= tol * scale:
            break
    assign = _sq_dists(x, centres, xn).argmin(1)
    return centres, assign


def kmeans_picks(x: torch.Tensor, k: int, *, seed: int = 0, iters: int = 20) -> torch.Tensor:
    """The ``k`` distinct row positions nearest to the k-means centres: per cluster, the member
    nearest its centre (so picks are distinct); an empty cluster is filled by the farthest
    unpicked point from its nearest centre."""
    n = x.shape[0]
    k = min(k, n)
    x = x.float()
    centres, assign = kmeans(x, k, iters=iters, seed=seed)
    d = _sq_dists(x, centres)
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
