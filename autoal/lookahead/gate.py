"""The per-sample part of autoal's search (DESIGN.md §3.9): a small network h(x) over
features that transfer from V to the pool — the candidates' rank scores and the task model's
own uncertainty — whose output shifts the global log-weights per sample,
ω(x) = softmax(G + h(x)). The image is not an input: a network that reads images has to learn
from a few dozen samples of V what it then applies to thousands of pool images (the paper's
SearchNet; its weights varied by 0.002-0.004 per sample on digits).

It is trained on the look-ahead's partitions of V with first-order sample values: a gradient
step of the head on x changes the held-out cross-entropy by −η⟨∇CE_H, ∇CE_x⟩, and for the
softmax head the gradients factor as (p − y) ⊗ [e, 1], so

    value_r(x) = mean_{h ∈ H_r} (p_x − y_x)·(p_h − y_h) · (e_x·e_h + 1)

(the agreement of x's last-layer gradient with the held-out gradient). The gate maximizes the
value of a soft top-b' of each simulated pool P_r under S̄ = Σ_k ω_k(x) r_k(x).
"""

from __future__ import annotations

import torch
from torch import nn


def sample_features(ranks: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """(N, K + 2): the K rank scores, the normalized entropy H(p)/log C and the margin
    1 − (p₁ − p₂), all in [0, 1]."""
    c = probs.shape[1]
    ent = -torch.special.xlogy(probs, probs).sum(1) / torch.log(torch.tensor(float(max(c, 2))))
    top2 = probs.topk(min(2, c), dim=1).values
    margin = 1.0 - (top2[:, 0] - (top2[:, 1] if c > 1 else 0.0))
    return torch.cat([ranks.T.float(), ent.unsqueeze(1).float(), margin.unsqueeze(1).float()], 1)


def first_order_values(emb: torch.Tensor, probs: torch.Tensor, y: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """(R, N): value_r(x) of the module docstring for every row x, with ``held`` (R, N) the
    held-out masks H_r."""
    a = probs.float() - torch.nn.functional.one_hot(y, probs.shape[1]).float()  # (N, C)
    m = (a @ a.T) * (emb.float() @ emb.float().T + 1.0)  # (N, N)
    h = held.float()
    return (h @ m) / h.sum(1, keepdim=True).clamp_min(1.0)


class RankGate(nn.Module):
    """h(x): features (N, F) → per-sample log-weight shifts (N, K); one hidden layer."""

    def __init__(self, num_features: int, num_candidates: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.Tanh(), nn.Linear(hidden, num_candidates))
        # default (non-zero) initialization of both layers: a zero output layer would start the
        # gradient of the first layer at exactly zero

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats)


def soft_top(scores: torch.Tensor, pool: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """(R, N) soft membership of each row in the top ``k`` of ``scores`` within ``pool[r]``:
    sigmoid((S̄ − θ_r)/τ) with θ_r midway between the k-th and (k+1)-th largest scores of the
    pool (detached), 0 outside the pool."""
    s = scores.unsqueeze(0).expand(pool.shape[0], -1)
    masked = torch.where(pool, s.detach(), torch.full_like(s, -float("inf")))
    top = masked.topk(k + 1, dim=1).values
    theta = 0.5 * (top[:, k - 1] + top[:, k])
    theta = torch.where(torch.isfinite(theta), theta, top[:, k - 1])
    return torch.sigmoid((s - theta.unsqueeze(1)) / tau) * pool.float()


def gate_loss(
    gate: RankGate,
    log_weights: torch.Tensor,
    feats: torch.Tensor,
    ranks: torch.Tensor,
    values: torch.Tensor,
    pool: torch.Tensor,
    picks: int,
    tau: float,
) -> torch.Tensor:
    """−(mean over partitions of the value of a soft top-``picks`` of each simulated pool), the
    values standardized so the loss scale does not depend on the data."""
    w = torch.softmax(log_weights.unsqueeze(0) + gate(feats), dim=1)  # (N, K)
    sbar = (w * ranks.T).sum(1)
    z = soft_top(sbar, pool, picks, tau)
    v = values / values[pool].std().clamp_min(1e-12)
    return -(z * v).sum(1).mean() / picks
