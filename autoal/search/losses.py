"""The math of AutoAL's differentiable search (Wang, Zhan & Huang, ICML 2025; DESIGN.md §3.3-3.4),
as pure functions.

Notation: a set X of N samples (a mini-batch of V during the search, the unlabeled pool U at
selection), K candidate strategies, ``S`` the (N, K) matrix of candidate indicators S_k(x) (or
rank scores), ``w`` the (N, K) SearchNet weights w_k(x) = sigmoid(Θ_k(x)), ``t`` the query
fraction and θ the threshold. Row i of every tensor belongs to the same sample.
"""

from __future__ import annotations

import math

import numpy as np
import torch


# ---------------------------------------------------------------------------------------------
# Threshold θ (paper Eqs. 2-4)
# ---------------------------------------------------------------------------------------------
def fit_gmm_1d(
    s: np.ndarray, components: int, *, var_floor: float, iters: int = 100, tol: float = 1e-7
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood 1-D Gaussian mixture by EM (paper Eq. 2: p(s) = Σ_j π_j N(s; μ_j, σ_j²)).

    EM runs on the distinct values of ``s`` weighted by their counts: equal values get equal
    responsibilities, so every step is the same as on the full data (the same fixed point and
    iterates), at a cost of O(distinct values) instead of O(N). The vote fractions AutoAL fits
    take at most K + 1 distinct values. Deterministic: the means start at evenly spaced distinct
    values, so the fit does not depend on the order of ``s``. Every variance is floored at
    ``var_floor``. Returns (weights π, means μ, variances σ²), each of shape (g,)."""
    uniq, counts = np.unique(np.asarray(s, dtype=np.float64).ravel(), return_counts=True)
    w = counts / counts.sum()
    x = uniq
    g = int(max(1, min(components, uniq.size)))
    mu = uniq[np.round(np.linspace(0, uniq.size - 1, g)).astype(int)].copy()
    mean = float((w * x).sum())
    var = np.full(g, max(float((w * (x - mean) ** 2).sum()), var_floor))
    pi = np.full(g, 1.0 / g)
    prev = -np.inf
    for _ in range(iters):
        # E step (log-domain responsibilities of each distinct value)
        logp = -0.5 * ((x[:, None] - mu) ** 2 / var + np.log(2 * np.pi * var)) + np.log(pi)
        mx = logp.max(1, keepdims=True)
        lse = mx + np.log(np.exp(logp - mx).sum(1, keepdims=True))
        resp = np.exp(logp - lse) * w[:, None]  # responsibilities times the value's share of s
        ll = float((w * lse[:, 0]).sum())
        # M step
        nk = resp.sum(0) + 1e-12
        pi = nk / nk.sum()
        mu = (resp * x[:, None]).sum(0) / nk
        var = np.maximum((resp * (x[:, None] - mu) ** 2).sum(0) / nk, var_floor)
        if abs(ll - prev) < tol:
            break
        prev = ll
    return pi, mu, var


def gmm_threshold(
    s: np.ndarray | torch.Tensor,
    t: float,
    components: int = 3,
    n_samples: int = 2000,
    seed: int = 0,
    var_floor: float = 1e-2,
) -> float:
    """θ of paper Eqs. 2-4: fit a ``components``-component Gaussian mixture to the vote fractions
    s(x) = mean_k S_k(x) of a set (Eq. 2), draw ``n_samples`` values from it with a seeded
    generator (Eq. 3), and return the (1 − t) quantile of the draws (Eq. 4), so that about a
    fraction t of the mixture's mass lies above θ.

    The variance of every component is floored at ``(var_floor · scale)²`` with ``scale`` the
    data's standard deviation (or 1e-3 · max(1, max|s|) when s is constant), so a near-constant
    s still gives a finite, defined θ. The fit is invariant to the order of ``s``. Numpy EM on
    the distinct values (see :func:`fit_gmm_1d`); θ is fitted for every search batch and once
    over U at selection, so its cost is measured in ``bench/perf.py`` (``gmm_threshold``)."""
    x = (s.detach().float().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s, dtype=np.float64)).ravel()
    if x.size == 0:
        raise ValueError("gmm_threshold needs at least one value")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"gmm_threshold: t must lie in [0, 1]; got {t}")
    scale = float(x.std())
    if scale <= 1e-12:
        scale = 1e-3 * max(1.0, float(np.abs(x).max()))
    pi, mu, var = fit_gmm_1d(x, components, var_floor=(var_floor * scale) ** 2)
    rng = np.random.default_rng(int(seed))
    comp = rng.choice(len(pi), size=int(n_samples), p=pi / pi.sum())
    draws = rng.normal(mu[comp], np.sqrt(var[comp]))
    return float(np.quantile(draws, 1.0 - t))


# ---------------------------------------------------------------------------------------------
# Score, soft selection, regularizer (paper Eqs. 5-9)
# ---------------------------------------------------------------------------------------------
def aggregated_score(w: torch.Tensor, S: torch.Tensor, theta: float | torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """S̄(x) = λ · Σ_k w_k(x) · (S_k(x) − θ)  (paper Eqs. 5-6). ``w``, ``S``: (N, K) → (N,).

    A per-sample function: permuting the rows of ``w`` and ``S`` permutes the result the same way."""
    if w.shape != S.shape:
        raise ValueError(f"aggregated_score: w {tuple(w.shape)} and S {tuple(S.shape)} must have the same shape")
    return lam * (w * (S.to(w.dtype) - theta)).sum(-1)


def soft_selection(score: torch.Tensor, tau: float) -> torch.Tensor:
    """z(x) = sigmoid(S̄(x) / τ) ∈ (0, 1): the differentiable relaxation of "x is selected".

    ``tau == 0`` is the hard step 1[S̄ > 0] of the released code (which used sigmoid(1e11·(p − θ)))
    with an exactly zero gradient: it keeps the graph (so a loss built on it can still be
    back-propagated) but no signal reaches the SearchNet through it — the ablation of Fig. 3's
    "does the relaxation matter" question."""
    if tau < 0:
        raise ValueError(f"soft_selection: tau must be >= 0; got {tau}")
    if tau == 0:
        return (score > 0).to(score.dtype) + 0.0 * score
    return torch.sigmoid(score / tau)


def budget_regularizer(alpha: torch.Tensor, t: float, B: float) -> torch.Tensor:
    """R(α) = 1 / (1 + exp(0.5 · |α − tB|)) − 0.5  (paper Eqs. 7-9), α = Σ_x z(x) the soft count.

    R ≤ 0 everywhere and R = 0 exactly at α = tB, the budget of a batch of size B. ``alpha``
    should be a tensor: a regularizer computed from a Python float (as in the released code)
    has no gradient."""
    alpha = alpha if isinstance(alpha, torch.Tensor) else torch.as_tensor(float(alpha))
    return torch.sigmoid(-0.5 * (alpha - t * B).abs()) - 0.5


def indicator_count(t: float, size: int) -> int:
    """n = ⌈t·|X|⌉, at least 1 (and at most |X|): how many samples a candidate marks in X."""
    return int(min(size, max(1, math.ceil(t * size - 1e-9))))
