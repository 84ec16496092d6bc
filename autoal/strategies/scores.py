"""Pure score functions of the shared cache (DESIGN.md §3.1). Higher = query first.

``p`` is (N, C) class probabilities; ``mc`` is the :class:`~autoal.mc.MCSummary` of T
Monte-Carlo dropout samples (build one from explicit samples (T, N, C) with
``MCSummary.from_samples``). Every function is NaN-free when a probability underflows to 0
(``xlogy(0, 0) = 0``)."""

from __future__ import annotations

import torch

from autoal.mc import MCSummary


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


def bald(mc: MCSummary) -> torch.Tensor:
    """Mutual information (Houlsby et al. 2011; Gal et al. 2017): H(mean_t p_t) − mean_t H(p_t)."""
    return (entropy(mc.mean_probs) - mc.mean_entropy).clamp_min(0)


def var_ratio(mc: MCSummary) -> torch.Tensor:
    """Variation ratio over T dropout samples: 1 − (count of the modal predicted class)/T."""
    return 1.0 - mc.modal_fraction


def mean_std(mc: MCSummary) -> torch.Tensor:
    """Mean over classes of the (population) standard deviation over the T samples."""
    return mc.std_probs.mean(-1)
