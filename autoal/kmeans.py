"""Batched k-means in torch (greedy k-means++ seeding, Lloyd iterations), on CPU or GPU.

Used by the KMeans candidate (DESIGN.md §3.1) at k = b, so it runs once per round on the whole
pool and once per search batch; its cost decides whether "all seven candidates" cost more than
one. Nothing loops over samples in Python, and nothing inside the seeding waits for the device:

- seeding draws all its random numbers up front and samples by inverse CDF (cumulative sum +
  binary search), so one seeding step is a fixed sequence of kernels; on CUDA a few steps are
  captured once as a CUDA graph and replayed (k = 1,000 steps are otherwise bound by
  kernel-launch latency, not by arithmetic);
- squared distances come from one matrix product of augmented rows [x, ||x||², 1] and centres
  [−2c, 1, ||c||²], on rows centred by their mean (float32 keeps more of the small distances);
  one ``min`` per row block gives both the assignment and the distance.

Timings on CPU and GPU, against scikit-learn's ``KMeans``: bench/README.md, "Performance".
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch

from autoal.distances import augment_centres, augment_rows

log = logging.getLogger(__name__)

#: Elements of one (rows × centres) distance block; bounds the memory of an assignment pass.
BLOCK_ELEMENTS = 1 << 24
#: Seeding steps captured in one CUDA graph (replayed ⌈(k − 1)/STEPS_PER_GRAPH⌉ times).
STEPS_PER_GRAPH = 8
#: Below this k a CUDA graph does not pay for its capture.
MIN_K_FOR_GRAPH = 64


def _seed_uniforms(k: int, trials: int, generator: torch.Generator, device: torch.device, pad: int = 0) -> torch.Tensor:
    """All random numbers of a seeding, drawn before it starts: (k + pad, trials) in [0, 1)."""
    return torch.rand((k + pad, trials), generator=generator, device=device)


def _sample_by_weight(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Positions drawn with probability ∝ ``weights`` (≥ 0), one per uniform in ``u``, by inverse
    CDF. Zero-weight positions are never drawn unless every weight is zero (then position 0)."""
    cum = torch.cumsum(weights, 0)
    pos = torch.searchsorted(cum, u * cum[-1], right=True)
    return pos.clamp_max_(weights.shape[0] - 1)


def _as_centres_transposed(x_aug: torch.Tensor) -> torch.Tensor:
    """Every augmented row as a centre, transposed: [−2x, 1, ||x||²]ᵀ (D + 2, N), one pass."""
    n, d = x_aug.shape[0], x_aug.shape[1] - 2
    out = x_aug.new_empty(d + 2, n)
    torch.mul(x_aug[:, :d].T, -2.0, out=out[:d])
    out[d] = 1.0
    out[d + 1] = x_aug[:, d]
    return out


def kmeans_plus_plus(
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    n_trials: int | None = None,
    use_graph: bool | None = None,
    x_aug: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; the greedy variant with
    2 + ⌊ln k⌋ candidates per step, as scikit-learn uses): row positions of k seeds.

    Each step draws its candidates with probability ∝ D(x)² (the squared distance to the nearest
    seed so far), keeps the one that lowers the potential Σ D² most, and updates D². All
    candidates of a step are evaluated in one matrix product. ``generator`` must live on ``x``'s
    device. With fewer than k distinct points some seeds repeat; :func:`kmeans_picks` then fills
    the empty clusters. ``use_graph`` (default: on CUDA when k ≥ ``MIN_K_FOR_GRAPH``) replays
    the step as a CUDA graph (same steps; cuBLAS may pick other kernels under capture, so large
    inputs can round, and break a near-tie, differently). ``x_aug`` may supply
    :func:`augment_rows` of ``x``."""
    n = x.shape[0]
    trials = n_trials or 2 + int(math.log(max(k, 1)))
    graph = (x.is_cuda and k >= MIN_K_FOR_GRAPH) if use_graph is None else bool(use_graph and x.is_cuda)
    pad = STEPS_PER_GRAPH if graph else 0
    u = _seed_uniforms(k, trials, generator, x.device, pad)
    xa = augment_rows(x.float()) if x_aug is None else x_aug
    # rows of xa times columns of [−2x, 1, ||x||²]ᵀ are squared distances: a step's product is
    # (trials × (D + 2)) @ ((D + 2) × N), its left side a plain row gather
    xct = _as_centres_transposed(xa)

    chosen = torch.zeros(k + pad, dtype=torch.long, device=x.device)
    chosen[:1] = (u[0, :1] * n).long().clamp_max_(n - 1)
    d2 = torch.mm(xa.index_select(0, chosen[:1]), xct).squeeze(0).clamp_min_(0)
    step = torch.ones(1, dtype=torch.long, device=x.device)

    def one_step() -> None:
        cand = _sample_by_weight(d2, u.index_select(0, step).squeeze(0))  # (trials,)
        dc = torch.mm(xa.index_select(0, cand), xct)  # (trials, N)
        torch.minimum(dc, d2.unsqueeze(0), out=dc)
        best = dc.sum(1).argmin().view(1)  # lowest potential
        chosen.index_copy_(0, step, cand.index_select(0, best))
        torch.clamp_min(dc.index_select(0, best).squeeze(0), 0, out=d2)  # rounding can dip below 0
        step.add_(1)

    if k > 1:
        if graph:
            _replay_as_graph(one_step, k - 1)
        else:
            for _ in range(k - 1):
                one_step()
    return chosen[:k]


def _replay_as_graph(one_step: Callable[[], None], steps: int) -> None:
    """Run ``one_step`` ``steps`` times (or up to STEPS_PER_GRAPH − 1 more: the caller pads its
    buffers): a few eager steps warm up the kernels, then STEPS_PER_GRAPH steps are captured in
    one CUDA graph and replayed."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    warm = min(steps, 2)
    with torch.cuda.stream(side):
        for _ in range(warm):
            one_step()
    torch.cuda.current_stream().wait_stream(side)
    left = steps - warm
    if left <= 0:
        return
    g = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(g):
            for _ in range(STEPS_PER_GRAPH):
                one_step()
    except RuntimeError as err:  # capture records without running, so no step ran: go on eagerly
        log.warning("k-means++ seeding: CUDA graph capture failed (%s); running the steps eagerly", err)
        for _ in range(left):
            one_step()
        return
    for _ in range(math.ceil(left / STEPS_PER_GRAPH)):
        g.replay()
    del g


def assign_to_nearest(x_aug: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every row (given augmented, :func:`~autoal.distances.augment_rows`): (squared distance
    to its nearest centre, that centre's index), in row blocks of at most ``BLOCK_ELEMENTS``."""
    ct = augment_centres(centres).T
    rows = max(1, BLOCK_ELEMENTS // max(1, centres.shape[0]))
    parts = [row_min(torch.mm(x_aug[s : s + rows], ct)) for s in range(0, x_aug.shape[0], rows)]
    if not parts:
        return x_aug.new_zeros(0), torch.zeros(0, dtype=torch.long, device=x_aug.device)
    v = torch.cat([p[0] for p in parts]).clamp_min_(0)
    return v, torch.cat([p[1] for p in parts])


#: Above this many columns the index sums of :func:`row_min` could leave float32's exact integers.
_MAX_COLUMNS_FOR_INDEX_SUM = 4096


def row_min(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``d`` (R, K): (its minimum, the position of its first minimum), as
    ``d.min(1)`` gives them; consumes ``d``.

    On CPU torch's ``min`` with indices costs 9× the ``amin`` alone (6.5 ms against 0.7 ms for
    20,000 × 100), which made it most of a Lloyd iteration. There the position comes from one
    matrix product instead: with s = sign(d − min d) (0 at a minimum, 1 elsewhere),
    [Σ_j j·s_j, Σ_j s_j] = s·[j, 1]; a row with a single minimum has it at
    K(K − 1)/2 − Σ_j j·s_j (sums of integers below 2²⁴, exact in float32). Rows with tied
    minima (duplicate centres) take the first zero of s."""
    k = d.shape[1]
    if d.is_cuda or k > _MAX_COLUMNS_FOR_INDEX_SUM:
        m = d.min(1)
        return m.values, m.indices
    v = d.amin(1)
    s = d.sub_(v.unsqueeze(1)).sign_()
    j = torch.arange(k, dtype=s.dtype, device=s.device)
    sums = torch.mm(s, torch.stack([j, torch.ones_like(j)], 1))
    idx = (k * (k - 1) // 2 - sums[:, 0]).long()
    tied = sums[:, 1] < k - 1
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        idx[rows] = (s[rows] == 0).to(torch.uint8).argmax(1)
    return v, idx


def kmeans(
    x: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0, tol: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster rows of ``x`` into ``k`` groups: greedy k-means++ seeds, then at most ``iters``
    Lloyd iterations. Stops, as scikit-learn does, when no assignment changes or when the summed
    squared centre shift falls to ``tol`` × the mean per-feature variance. An empty cluster keeps
    its centre. Returns (centres (k, D), assignment (N,))."""
    centres, _, assign = _kmeans(x, k, iters, seed, tol)
    return centres, assign


def _kmeans(
    x: torch.Tensor, k: int, iters: int, seed: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`kmeans`; also returns every row's squared distance to its centre."""
    with torch.autocast(x.device.type, enabled=False):
        mean, xc, xa = _centred(x)
        gen = torch.Generator(device=x.device).manual_seed(int(seed))
        seeds = kmeans_plus_plus(xc, k, gen, x_aug=xa)
        centres, dist, assign = _lloyd(xc, xa, xc.index_select(0, seeds), iters, tol)
    return centres + mean, dist, assign


def _centred(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the mean row, the centred rows, their :func:`augment_rows`). Centred rows keep ||x||²
    small next to the distances, so less of float32 is lost in ||x||² − 2x·c + ||c||². The
    centred rows are kept contiguous as well: ``index_add_`` over a strided view of the
    augmented rows is 7× slower on CPU."""
    x = x.float()
    mean = x.mean(0) if x.shape[0] else x.new_zeros(x.shape[1:])
    xc = x - mean
    return mean, xc, augment_rows(xc)


def lloyd(
    x: torch.Tensor, centres: torch.Tensor, *, iters: int = 20, tol: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``iters`` Lloyd iterations from the given centres; stops as :func:`kmeans`
    documents. Returns (centres, assignment)."""
    with torch.autocast(x.device.type, enabled=False):
        mean, xc, xa = _centred(x)
        c, _, assign = _lloyd(xc, xa, centres.float() - mean, iters, tol)
    return c + mean, assign


def _lloyd(
    x: torch.Tensor, xa: torch.Tensor, centres: torch.Tensor, iters: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lloyd on centred rows ``x`` (and their augmented form ``xa``): (centres, squared distance
    to own centre, assignment).
    (Hamerly's bounds were tried: on 64-d embeddings at k = 100 they still had to recompute
    55-75 % of the rows every iteration and made it slower.)"""
    n, d = x.shape
    k = centres.shape[0]
    dist, assign = assign_to_nearest(xa, centres)
    # the rows are centred, so the mean per-feature variance is the mean squared row norm / D
    tol_abs = tol * xa[:, d].sum() / max(1, n * d)
    for _ in range(iters):
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype).unsqueeze(1)
        new = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        shift = (new - centres).square_().sum()
        centres = new
        dist, new_assign = assign_to_nearest(xa, centres)
        done = (shift <= tol_abs) | (new_assign == assign).all()
        assign = new_assign
        if bool(done):  # one host synchronization per iteration
            break
    return centres, dist, assign


def kmeans_picks(x: torch.Tensor, k: int, *, seed: int = 0, iters: int = 20) -> torch.Tensor:
    """The ``k`` distinct row positions nearest to the k-means centres: per cluster, the member
    nearest its centre (so picks are distinct); an empty cluster is filled by the farthest
    unpicked point from its nearest centre."""
    n = x.shape[0]
    k = min(k, n)
    x = x.float()
    _, own, assign = _kmeans(x, k, iters, seed, 1e-4)
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
        far = torch.where(taken, torch.full_like(own, -1.0), own)
        extra = torch.argsort(far, descending=True, stable=True)[: k - picks.numel()]
        picks = torch.cat([picks, extra])
    return picks
