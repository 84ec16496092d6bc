"""autoal's search space (DESIGN.md §3.9): mixtures of the candidates' rank scores, as pure
functions.

Every candidate k gives each sample x a rank score r_k(x) ∈ [0, 1] (1 = queried first). The
aggregated score is

    S̄(x) = Σ_k ω_k(x) r_k(x),   ω(x) = softmax over k of (G_k + h_k(x)),

with G the global log-weights (learned across rounds) and h(x) an optional per-sample part. The
weights are normalized over candidates, so the space holds every single candidate (ω one-hot
gives exactly its ranking) and every convex mixture between them; unlike the indicator vote of
the paper's Eq. 6, a sample's score does not grow with the number of candidates that happen to
agree on it.

Correlated candidates (Entropy, LeastConfidence and Margin rank U almost alike; so do BALD and
MeanSTD) would otherwise count several times in any mixture: :func:`decorrelated_weights`
divides each weight by the number of its correlated peers, so m identical candidates together
weigh what one of them would.
"""

from __future__ import annotations

import numpy as np
import torch


def rank_correlation(ranks: torch.Tensor) -> torch.Tensor:
    """(K, K) Pearson correlation of the rows of ``ranks`` (K, N); for rank scores that are
    ranks this is Spearman's correlation. A constant row correlates 0 with the others."""
    r = ranks.float() - ranks.float().mean(1, keepdim=True)
    norm = r.norm(dim=1, keepdim=True)
    r = r / norm.clamp_min(1e-12)
    c = r @ r.T
    c.fill_diagonal_(1.0)
    return c


def decorrelated_weights(pi: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
    """ω_k ∝ π_k / n_k with n_k = Σ_j max(0, corr_kj) the (soft) number of candidates that rank
    like k, itself included; normalized to sum to 1 (``pi`` (K,) or (N, K)).

    m identical candidates with weight π each together weigh what one of them would (m · π/m);
    an uncorrelated candidate keeps its own weight, and every ω_k still follows its π_k."""
    n = corr.clamp_min(0).sum(1).to(pi.dtype)
    w = pi / n.clamp_min(1.0)
    return w / w.sum(-1, keepdim=True).clamp_min(1e-30)


def mixture_scores(ranks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """S̄ = Σ_k ω_k r_k: ``ranks`` (K, N); ``weights`` (K,) global or (N, K) per sample → (N,)."""
    if weights.dim() == 1:
        return weights.to(ranks.dtype) @ ranks
    return (weights.to(ranks.dtype) * ranks.T).sum(1)


def hedge_update(
    log_weights: torch.Tensor, gains: torch.Tensor, rate: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Exponential weights (Hedge; Freund & Schapire 1997) on standardized gains: the log-weight
    of each candidate moves by ``rate`` × (its gain − the mean gain) / (the gains' spread), so one
    round's evidence shifts the mixture by a bounded amount however the gains are scaled.

    ``weights`` (default uniform) weigh the candidates in that mean and spread: with the
    decorrelated weights a family of near-identical candidates counts once, and a candidate
    that differs from six agreeing ones is not made an outlier by their agreement alone.
    Non-finite gains leave the log-weights unchanged."""
    g = gains.double()
    if not torch.isfinite(g).all() or g.numel() < 2:
        return log_weights
    w = torch.full_like(g, 1.0 / g.numel()) if weights is None else weights.double() / weights.double().sum()
    mean = (w * g).sum()
    spread = (w * (g - mean).square()).sum().sqrt()
    if float(spread) <= 1e-12:
        return log_weights
    out = log_weights.double() + float(rate) * (g - mean) / spread
    return (out - out.max()).to(log_weights.dtype)


def prior_log_weights(names: list[str], prior: dict[str, float] | None) -> torch.Tensor:
    """Log of the prior weights (uniform when ``prior`` is None; candidates it omits get 0)."""
    if prior is None:
        return torch.zeros(len(names))
    w = np.array([float(prior.get(n, 0.0)) for n in names], dtype=np.float64)
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(w / w.sum())).float().clamp_min(-30.0)


def allocate(weights: torch.Tensor, n: int) -> list[int]:
    """Split a batch of ``n`` picks among candidates in proportion to ``weights`` (K,): floors,
    then one more for the largest remainders (ties to the larger weight)."""
    w = weights.double().clamp_min(0)
    w = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1.0 / w.numel())
    exact = w * n
    counts = torch.floor(exact).long()
    short = n - int(counts.sum())
    order = sorted(range(len(w)), key=lambda k: (-(float(exact[k]) - int(counts[k])), -float(w[k]), k))
    for k in order[:short]:
        counts[k] += 1
    return counts.tolist()


def portfolio_picks(ranks: torch.Tensor, weights: torch.Tensor, n: int, rng: np.random.Generator) -> np.ndarray:
    """A batch made of each candidate's own best picks: candidate k contributes its
    ``allocate(weights, n)[k]`` highest-ranked samples not already taken, the candidates in
    order of weight (ties in a rank broken by a seeded order). One-hot weights give exactly that
    candidate's top n; unlike a mixture of scores, a set-selecting candidate (KMeans, TypiClust)
    keeps the samples it chose rather than those that rank well on average."""
    counts = allocate(weights, n)
    tie = torch.from_numpy(rng.random(ranks.shape[1])).to(ranks.device, torch.float32)
    taken = torch.zeros(ranks.shape[1], dtype=torch.bool, device=ranks.device)
    out: list[int] = []
    for k in sorted(range(len(counts)), key=lambda k: (-float(weights[k]), k)):
        if counts[k] == 0:
            continue
        s = ranks[k].float() + 1e-6 * tie
        s = torch.where(taken, torch.full_like(s, -float("inf")), s)
        top = torch.topk(s, counts[k]).indices
        taken[top] = True
        out += top.tolist()
    return np.asarray(out, dtype=np.int64)
