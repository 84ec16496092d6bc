"""The loss prediction module and its ranking loss (Yoo & Kweon, "Learning Loss for Active
Learning", CVPR 2019), shared by the LPL baseline (:mod:`autoal.strategies.baselines.lpl`) and
AutoAL's paper formulation (:mod:`autoal.search.cycle`)."""

from __future__ import annotations

import torch
from torch import nn

from autoal.models.base import Backbone


class LossPredictionModule(nn.Module):
    """Predicted loss l̂(x) from a backbone's stage maps (Yoo & Kweon 2019, Fig. 2): each map is
    global-average pooled, passed through Linear(c_i, hidden) and a ReLU; the results are
    concatenated and Linear(stages · hidden, 1) predicts the loss. Maps are read in float32, so
    the module works on bf16 maps under autocast."""

    def __init__(self, stage_channels: list[int], hidden: int = 128) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(c, hidden) for c in stage_channels)
        self.out = nn.Linear(hidden * len(stage_channels), 1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        feats = [torch.relu(fc(Backbone.pool(m.float()))) for fc, m in zip(self.fcs, maps)]
        return self.out(torch.cat(feats, 1)).squeeze(1)


def ranking_loss(pred: torch.Tensor, target: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Yoo & Kweon's pairwise margin ranking loss (Eq. 2): sample i of the batch is paired with
    sample B−1−i, and per pair max(0, −sign(l_i − l_j) · (l̂_i − l̂_j) + ξ), averaged over the
    ⌊B/2⌋ pairs (a tie counts as sign −1, as in the paper's code). ``target`` is detached. In an
    odd batch the middle sample has no partner; a batch of one gives a zero loss that is still
    connected to the graph."""
    m = pred.shape[0] // 2
    if m == 0:
        return pred.sum() * 0.0
    dp = (pred - pred.flip(0))[:m]
    dt = (target - target.flip(0))[:m].detach()
    sign = 2.0 * (dt > 0).to(dp.dtype) - 1.0
    return torch.clamp(margin - sign * dp, min=0).mean()
