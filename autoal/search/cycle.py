"""One round of AutoAL's search (DESIGN.md §3.2-3.6), as functions of
(nets, optimizers, data tensors, config, device) with no global state and no Ray, so that a
data-parallel (DDP) worker can call the same update loop.

A cycle (:func:`search_cycle`):

1. FitNet warm-up on A (the half of L that plays the labeled set).
2. V (the other half, playing the unlabeled pool) is cut into fixed mini-batches. For each
   batch the candidate model (FitNet after its warm-up by default, or a given cache of the task
   model) gives a :class:`~autoal.cache.PoolCache` of the batch — probabilities, embeddings,
   Monte-Carlo samples — from ONE forward pass; every candidate's indicator S_k (or rank score)
   and the GMM threshold θ are computed once per batch and reused by every update.
3. Alternating first-order updates over V for ``search_epochs`` epochs: SearchNet (+LPM) on
   batch n with FitNet's per-sample loss detached, then FitNet on batch n+1 weighted by the
   detached soft selection (paper Eqs. 7-9, DESIGN.md §3.4).

Every tensor of a batch (images, labels, S, scores, w, z, CE) is indexed by the same row
positions: nothing is shuffled independently.

Data parallelism: the update functions take an optional ``dist`` (a
:class:`~autoal.executors.ray_train_search.BatchSharding`, used by the Ray Train executor). With
``dist``, every worker computes a batch's candidate inputs on the whole batch, then runs the
forward/backward passes on its own slice of the rows; the soft count α is summed over the
workers (a differentiable all-reduce) so that the budget regularizer sees the whole batch, and
per-sample means are taken over the whole batch. ``dist=None`` is the in-process path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from autoal.bounds import bounded, choice
from autoal.cache import PoolCache, class_probabilities
from autoal.device import autocast
from autoal.models import Backbone
from autoal.lpm import LossPredictionModule, ranking_loss
from autoal.search.losses import aggregated_score, budget_regularizer, gmm_threshold, indicator_count, soft_selection
from autoal.search.nets import SearchNet

CANDIDATE_SCORES = ("indicator", "rank")
SEARCHNET_INPUTS = ("image", "image+scores")

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class SearchSettings:
    """The search's ``strategy.params`` keys (paper formulation) with their defaults and ranges,
    declared once: :class:`autoal.strategies.autoal.params.PaperParams` extends this class, and
    :class:`SearchConfig` adds the round's numbers to it."""

    lam: float = bounded(1.0, 0, low_open=True, note="λ of Eq. 6")
    lam_reg: float = bounded(2.0, 0, note="λ̄ of Eqs. 7-9")
    tau: float = bounded(0.1, 0, note="0 = the hard step")
    gmm_components: int = bounded(3, 1)
    gmm_samples: int = bounded(2000, 10)
    warmup_epochs: int = bounded(10, 0)
    search_epochs: int = bounded(8, 0)
    batch_size: int = bounded(64, 2)
    lpm: bool = True
    lpm_only: bool = False
    lpm_weight: float = bounded(1.0, 0)
    candidate_score: str = choice("indicator", CANDIDATE_SCORES)
    searchnet_input: str = choice("image", SEARCHNET_INPUTS)


@dataclass(kw_only=True)
class SearchConfig(SearchSettings):
    """Numbers of one round's search: the settings, the query fraction ``t`` = b / (|U| + |L|)
    and the Monte-Carlo samples of FitNet's candidate cache."""

    t: float
    mc_samples: int = 10

    @classmethod
    def of(cls, settings: SearchSettings, t: float, mc_samples: int) -> "SearchConfig":
        """The round's config from ``settings`` (any :class:`SearchSettings`, e.g. the strategy's
        params): every settings field copied by name."""
        return cls(t=t, mc_samples=mc_samples, **{f.name: getattr(settings, f.name) for f in fields(SearchSettings)})


@dataclass
class SearchNets:
    searchnet: SearchNet
    fitnet: Backbone
    lpm: LossPredictionModule | None = None


@dataclass
class SearchOptimizers:
    searchnet: torch.optim.Optimizer
    fitnet: torch.optim.Optimizer
    lpm: torch.optim.Optimizer | None = None


@dataclass
class SearchBatch:
    """One mini-batch of V with its precomputed candidate inputs (rows aligned)."""

    x: torch.Tensor  # (N, C, H, W) normalized images
    y: torch.Tensor  # (N,) labels
    S: torch.Tensor  # (N, K) candidate indicators (or rank scores)
    theta: float  # GMM threshold on this batch
    scores: torch.Tensor | None = None  # (N, K) rank scores fed to SearchNet (image+scores)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class CycleStats:
    loss_warmup: float = float("nan")
    loss_fitnet: float = float("nan")
    loss_searchnet: float = float("nan")
    loss_lpm: float = float("nan")
    alpha: float = float("nan")
    alpha_target: float = float("nan")
    head_grad_norm: float = float("nan")
    seconds_candidates: float = 0.0
    seconds_updates: float = 0.0
    steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Candidate inputs
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def batch_cache(
    model: Backbone,
    x: torch.Tensor,
    mc_samples: int,
    generator: torch.Generator | None,
    indices: np.ndarray | None = None,
    mc_masks: str = "consistent",
) -> PoolCache:
    """The shared cache of §3.1 for an in-memory batch: one eval-mode backbone pass, then
    ``mc_samples`` dropout head passes over the embeddings. Restores the model's mode."""
    was_training = model.training
    model.eval()
    with autocast(x.device):
        emb = model.embed(x)
    emb = emb.float()
    logits = model.fc(emb)
    mc = model.mc_summary(emb, mc_samples, generator=generator, masks=mc_masks) if mc_samples > 0 else None
    model.train(was_training)
    idx = np.arange(len(x)) if indices is None else np.asarray(indices)
    return PoolCache(indices=idx, probs=class_probabilities(logits), embeddings=emb, logits=logits, mc=mc)


def candidate_matrix(
    candidates: Sequence[Any], cache: PoolCache, n: int, kind: str, rng: np.random.Generator
) -> torch.Tensor:
    """(N, K): column k is candidate k's indicator of its top ``n`` in ``cache`` (``kind`` =
    ``indicator``) or its rank score in [0, 1] (``rank``). Each candidate is evaluated once."""
    if kind not in CANDIDATE_SCORES:
        raise ValueError(f"candidate score must be one of {CANDIDATE_SCORES}; got {kind!r}")
    cols = [c.indicator(cache, n, rng) if kind == "indicator" else c.rank_score(cache, n, rng) for c in candidates]
    return torch.stack([c.float() for c in cols], 1)


def candidate_inputs(
    candidates: Sequence[Any],
    cache: PoolCache,
    n: int,
    t: float,
    cfg: SearchConfig,
    rng: np.random.Generator,
    seed: int,
) -> tuple[torch.Tensor, float, torch.Tensor | None]:
    """S (N, K), θ from the GMM on the vote fractions mean_k S_k, and SearchNet's score input."""
    S = candidate_matrix(candidates, cache, n, cfg.candidate_score, rng)
    scores = None
    if cfg.searchnet_input == "image+scores":
        scores = S if cfg.candidate_score == "rank" else candidate_matrix(candidates, cache, n, "rank", rng)
    theta = gmm_threshold(S.mean(1), t, cfg.gmm_components, cfg.gmm_samples, seed=seed)
    return S, theta, scores


def split_labeled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random half split of L's row positions into A (plays L) and V (plays U) (§3.2)."""
    perm = rng.permutation(n)
    half = n // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def batch_rows(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A seeded partition of range(n) into mini-batches of at most ``batch_size``; a tail of
    fewer than 2 rows (BatchNorm needs 2) joins the previous batch."""
    perm = rng.permutation(n)
    parts = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(parts) > 1 and len(parts[-1]) < 2:
        tail = parts.pop()  # (popped first: an index taken before the pop would name another batch)
        parts[-1] = np.concatenate([parts[-1], tail])
    return parts


def prepare_batches(
    fitnet: Backbone,
    x_v: torch.Tensor,
    y_v: torch.Tensor,
    cfg: SearchConfig,
    candidates: Sequence[Any],
    rng: np.random.Generator,
    seed: int,
    v_cache: PoolCache | None = None,
) -> list[SearchBatch]:
    """Cut V into batches and compute each batch's candidate inputs once. The candidate model is
    FitNet (one eval forward per batch) unless ``v_cache`` (row-aligned with ``x_v``, e.g. from
    the task model) is given."""
    out = []
    gen = torch.Generator(device=x_v.device).manual_seed(int(seed))
    for j, rows in enumerate(batch_rows(len(y_v), cfg.batch_size, rng)):
        r = torch.as_tensor(rows, dtype=torch.long, device=x_v.device)
        x, y = x_v[r], y_v[r]
        cache = v_cache.subset(rows) if v_cache is not None else batch_cache(fitnet, x, cfg.mc_samples, gen)
        n = indicator_count(cfg.t, len(rows))
        S, theta, scores = candidate_inputs(candidates, cache, n, cfg.t, cfg, rng, seed=seed + j)
        out.append(
            SearchBatch(x=x, y=y, S=S.to(x.device), theta=theta, scores=None if scores is None else scores.to(x.device))
        )
    return out


# ---------------------------------------------------------------------------------------------
# Updates
# ---------------------------------------------------------------------------------------------
def _batch_mean(v: torch.Tensor, n_rows: int, dist: Any = None) -> torch.Tensor:
    """Mean of a per-sample quantity over a batch of ``n_rows`` (over all workers with ``dist``)."""
    return v.mean() if dist is None else dist.mean(v, n_rows)


def train_fitnet(
    fitnet: Backbone,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    augment: Augment | None = None,
    aug_gen: torch.Generator | None = None,
    dist: Any = None,
) -> float:
    """FitNet warm-up: plain cross-entropy on (x, y) for ``epochs`` epochs. Returns the last
    epoch's mean loss."""
    fitnet.train()
    last = float("nan")
    for _ in range(int(epochs)):
        total, count = 0.0, 0
        for rows in batch_rows(len(y), batch_size, rng):
            if len(rows) < 2:
                continue
            r = torch.as_tensor(rows, dtype=torch.long, device=x.device)
            if dist is not None:
                r = r[dist.local_rows(len(rows))]
            xb = x[r] if augment is None else augment(x[r], aug_gen)
            with autocast(x.device):
                logits = fitnet(xb)
            if dist is None:
                loss = F.cross_entropy(logits.float(), y[r])
            else:
                loss = dist.mean(F.cross_entropy(logits.float(), y[r], reduction="none"), len(rows))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(rows)
            count += len(rows)
        last = total / max(count, 1)
    return last


def selection_terms(
    searchnet: SearchNet, batch: SearchBatch, cfg: SearchConfig, *, detach_features: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """w, S̄, z and the SearchNet stage maps on a batch (SearchNet in its current mode)."""
    with autocast(batch.x.device):
        logits, maps = searchnet(batch.x, batch.scores, detach_features=detach_features)
    w = torch.sigmoid(logits.float())
    sbar = aggregated_score(w, batch.S, batch.theta, cfg.lam)
    z = soft_selection(sbar, cfg.tau)
    return w, sbar, z, maps


def searchnet_step(
    nets: SearchNets, opts: SearchOptimizers, batch: SearchBatch, cfg: SearchConfig, dist: Any = None
) -> dict[str, float]:
    """One SearchNet (+LPM) update: L_S = −mean(z · CE_F.detach()) − λ̄·R(α) (+ LPM ranking
    loss · ``lpm_weight``). Returns the losses, α, the budget tB and the head's gradient norm."""
    sn, fn = nets.searchnet, nets.fitnet
    n_rows = len(batch)
    if dist is not None:
        batch = dist.shard(batch)
    sn.train()
    with torch.no_grad():
        was = fn.training
        fn.eval()
        with autocast(batch.x.device):
            ce = F.cross_entropy(fn(batch.x).float(), batch.y, reduction="none")
        fn.train(was)
    _, _, z, maps = selection_terms(sn, batch, cfg, detach_features=cfg.lpm_only)
    alpha = z.sum() if dist is None else dist.sum(z.sum(), n_rows)
    target = cfg.t * n_rows
    reg = budget_regularizer(alpha, cfg.t, n_rows)
    loss_s = -_batch_mean(z * ce, n_rows, dist) - cfg.lam_reg * reg
    total = loss_s
    loss_l = torch.zeros(())
    if nets.lpm is not None:
        nets.lpm.train()
        loss_l = ranking_loss(nets.lpm(maps), ce)
        total = total + cfg.lpm_weight * loss_l
    opts.searchnet.zero_grad(set_to_none=True)
    if opts.lpm is not None:
        opts.lpm.zero_grad(set_to_none=True)
    total.backward()
    grads = [p.grad for p in sn.head_parameters() if p.grad is not None]
    gnorm = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads))) if grads else 0.0
    opts.searchnet.step()
    if opts.lpm is not None:
        opts.lpm.step()
    return {
        "loss_searchnet": float(loss_s.detach()),
        "loss_lpm": float(loss_l.detach()),
        "alpha": float(alpha.detach()),
        "alpha_target": float(target),
        "head_grad_norm": gnorm,
    }


def fitnet_step(
    nets: SearchNets,
    opts: SearchOptimizers,
    batch: SearchBatch,
    cfg: SearchConfig,
    augment: Augment | None = None,
    aug_gen: torch.Generator | None = None,
    dist: Any = None,
) -> dict[str, float]:
    """One FitNet update: L_F = mean(z.detach() · CE_F) + λ̄·R(α) (R is constant for FitNet)."""
    fn = nets.fitnet
    n_rows = len(batch)
    if dist is not None:
        batch = dist.shard(batch)
    with torch.no_grad():
        _, _, z, _ = selection_terms(nets.searchnet, batch, cfg)
        alpha = z.sum() if dist is None else dist.sum(z.sum(), n_rows)
        reg = budget_regularizer(alpha, cfg.t, n_rows)
    fn.train()
    xb = batch.x if augment is None else augment(batch.x, aug_gen)
    with autocast(xb.device):
        logits = fn(xb)
    ce = F.cross_entropy(logits.float(), batch.y, reduction="none")
    loss = _batch_mean(z.detach() * ce, n_rows, dist) + cfg.lam_reg * reg
    opts.fitnet.zero_grad(set_to_none=True)
    loss.backward()
    opts.fitnet.step()
    return {"loss_fitnet": float(loss.detach())}


def search_cycle(
    nets: SearchNets,
    opts: SearchOptimizers,
    a: tuple[torch.Tensor, torch.Tensor],
    v: tuple[torch.Tensor, torch.Tensor],
    cfg: SearchConfig,
    candidates: Sequence[Any],
    *,
    seed: int,
    v_cache: PoolCache | None = None,
    augment: Augment | None = None,
    dist: Any = None,
) -> CycleStats:
    """One cycle: FitNet warm-up on A, candidate inputs per V batch (once), then alternating
    SearchNet/FitNet updates over V (SearchNet on batch n, FitNet on batch n+1).

    ``dist`` (data-parallel workers): candidate inputs are still computed on whole batches (the
    same on every worker); the updates run on each worker's slice of every batch."""
    rng = np.random.default_rng(int(seed))
    device = a[0].device
    aug_gen = torch.Generator(device=device).manual_seed(int(seed) + 1) if augment is not None else None
    st = CycleStats()
    t0 = time.perf_counter()
    if len(a[1]) >= 2:
        st.loss_warmup = train_fitnet(
            nets.fitnet, opts.fitnet, a[0], a[1], cfg.warmup_epochs, cfg.batch_size, rng, augment, aug_gen, dist=dist
        )
    t1 = time.perf_counter()
    batches = [
        b for b in prepare_batches(nets.fitnet, v[0], v[1], cfg, candidates, rng, seed + 7, v_cache) if len(b) >= 2
    ]
    t2 = time.perf_counter()
    st.seconds_candidates = t2 - t1
    m = len(batches)
    last: list[dict[str, float]] = []
    for _ in range(int(cfg.search_epochs)):
        last = []
        for j in range(m):
            rec = searchnet_step(nets, opts, batches[j], cfg, dist=dist)
            rec.update(fitnet_step(nets, opts, batches[(j + 1) % m], cfg, augment, aug_gen, dist=dist))
            last.append(rec)
            st.steps += 1
    st.seconds_updates = (t1 - t0) + (time.perf_counter() - t2)
    if last:
        for key in ("loss_fitnet", "loss_searchnet", "loss_lpm", "alpha", "alpha_target"):
            setattr(st, key, float(np.mean([r[key] for r in last])))
        st.head_grad_norm = last[-1]["head_grad_norm"]
    if batches:
        st.extra["theta"] = float(np.mean([b.theta for b in batches]))
    return st


# ---------------------------------------------------------------------------------------------
# Selection (§3.7)
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def searchnet_weights(
    searchnet: SearchNet, x: torch.Tensor, scores: torch.Tensor | None = None, batch_size: int = 1024
) -> torch.Tensor:
    """w = sigmoid(Θ) for every row of ``x`` with SearchNet in eval mode (a per-sample function)."""
    was = searchnet.training
    searchnet.eval()
    out = []
    for s in range(0, len(x), batch_size):
        sc = None if scores is None else scores[s : s + batch_size]
        with autocast(x.device):
            logits, _ = searchnet(x[s : s + batch_size], sc)
        out.append(torch.sigmoid(logits.float()))
    searchnet.train(was)
    return torch.cat(out) if out else torch.zeros(0, searchnet.num_candidates, device=x.device)


def selection_scores(
    searchnet: SearchNet,
    x: torch.Tensor,
    S: torch.Tensor,
    theta: float,
    lam: float,
    scores: torch.Tensor | None = None,
    batch_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(S̄ (N,), w (N, K)) over a pool: S̄(x) = λ Σ_k w_k(x)(S_k(x) − θ) with SearchNet's w."""
    w = searchnet_weights(searchnet, x, scores, batch_size)
    return aggregated_score(w, S.to(w.device), theta, lam), w


def pool_scores(
    searchnet: SearchNet,
    candidates: Sequence[Any],
    cache: PoolCache,
    x: torch.Tensor,
    n: int,
    *,
    lam: float,
    candidate_score: str = "indicator",
    searchnet_input: str = "image",
    gmm_components: int = 3,
    gmm_samples: int = 2000,
    seed: int = 0,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """The selection scores of §3.7 on a pool (rows of ``cache`` and ``x`` aligned): each
    candidate marks its top ``n`` (or gives rank scores), θ from the GMM on the vote fractions
    with t = n / |pool|, w from SearchNet (eval mode), S̄ = λ Σ_k w_k (S_k − θ).

    Returns ``{"sbar", "w", "S", "theta"}``. Every score is a per-sample function of the pool's
    rows, so permuting the pool permutes S̄ the same way (up to the candidates' own
    tie-breaking; k-means seeding is positional)."""
    rng = np.random.default_rng(int(seed))
    S = candidate_matrix(candidates, cache, n, candidate_score, rng).to(x.device)
    scores = None
    if searchnet_input == "image+scores":
        scores = S if candidate_score == "rank" else candidate_matrix(candidates, cache, n, "rank", rng).to(x.device)
    theta = gmm_threshold(S.mean(1), n / max(len(cache), 1), gmm_components, gmm_samples, seed=int(seed) + 1)
    sbar, w = selection_scores(searchnet, x, S, theta, lam, scores, batch_size)
    return {"sbar": sbar, "w": w, "S": S, "theta": theta}


def make_optimizers(
    nets: SearchNets,
    *,
    fitnet_lr: float,
    searchnet_lr: float,
    lpm_lr: float,
    searchnet_optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
) -> SearchOptimizers:
    """FitNet: Adam; SearchNet: SGD (or Adam); LPM: same kind as SearchNet (paper §3.6 lrs)."""

    def mk(params, lr, kind):
        if kind == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    return SearchOptimizers(
        searchnet=mk(nets.searchnet.parameters(), searchnet_lr, searchnet_optimizer),
        fitnet=torch.optim.Adam(nets.fitnet.parameters(), lr=fitnet_lr, weight_decay=weight_decay),
        lpm=None if nets.lpm is None else mk(nets.lpm.parameters(), lpm_lr, searchnet_optimizer),
    )


def query_fraction(b: int, pool_size: int) -> float:
    """t = b / (|U| + |L|) (DESIGN.md §2)."""
    return float(b) / float(max(pool_size, 1))


__all__ = [
    "SearchSettings",
    "SearchConfig",
    "SearchNets",
    "SearchOptimizers",
    "SearchBatch",
    "CycleStats",
    "batch_cache",
    "candidate_matrix",
    "candidate_inputs",
    "split_labeled",
    "batch_rows",
    "prepare_batches",
    "train_fitnet",
    "searchnet_step",
    "fitnet_step",
    "search_cycle",
    "searchnet_weights",
    "selection_scores",
    "pool_scores",
    "make_optimizers",
    "query_fraction",
]
