"""Pure score functions of the shared cache (DESIGN.md §3.1). Higher = query first.

``p`` is (N, C) class probabilities; ``mc`` is (T, N, C) Monte-Carlo dropout samples.
Every function is NaN-free when a probability underflows to 0 (``xlogy(0, 0) = 0``)."""
from __future__ import annotations

import torch


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy H(p) = −Σ_c p_c log p_c."""
    return -torch.special.xlogy(p, p).sum(-1)


def margin(p: torch.Tensor) -> torch.Tensor:
    """−(p₁ − p₂): the negated gap between the two most probable classes."""
    top2 = torch.topk(p, 2, dim=-1).values
    return -(top2[..., 0] - top2[..., 1])


def least_confidence(p: torch.Tensor) -> torch.Tensor:
    """1 − p₁."""
    return 1.0 - p.max(-1).values


def bald(mc: torch.Tensor) -> torch.Tensor:
    """Mutual information (Houlsby et al. 2011; Gal et al. 2017): H(mean_t p_t) − mean_t H(p_t)."""
    return (entropy(mc.mean(0)) - entropy(mc).mean(0)).clamp_min(0)


def var_ratio(mc: torch.Tensor) -> torch.Tensor:
    """Variation ratio over T dropout samples: 1 − (count of the modal predicted class)/T."""
    t, _, c = mc.shape
    top = mc.argmax(-1).T  # (N, T): each sample's predicted class per dropout draw
    votes = torch.zeros(top.shape[0], c, device=mc.device).scatter_add_(1, top, torch.ones(top.shape, device=mc.device))
    return 1.0 - votes.max(-1).values / t


def mean_std(mc: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the (population) standard deviation over the T samples."""
    centred = mc - mc.mean(0)
    return centred.square_().mean(0).sqrt_().mean(-1)
