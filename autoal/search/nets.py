"""The networks of AutoAL's search (DESIGN.md §3.4, §3.6).

- :class:`SearchNet`: a backbone of the task model's family with a K-way head giving the
  per-sample strategy logits Θ(x); w_k(x) = sigmoid(Θ_k(x)). Optionally (``num_scores > 0``)
  the candidates' rank scores enter the head next to the image features.
- FitNet: a plain classifier of the same family (:func:`build_fitnet`).

The loss prediction module on SearchNet's four stage maps is :class:`autoal.lpm.LossPredictionModule`.
"""

from __future__ import annotations

import torch
from torch import nn

from autoal.models import Backbone, build_model


class SearchNet(nn.Module):
    """Θ(x) = head(features(x)) [+ U · scores(x)]; ``weights`` returns w = sigmoid(Θ).

    ``detach_features`` (the "LPM only" ablation): the features entering the head are detached,
    so the search loss trains only the head and the backbone learns only from the LPM."""

    def __init__(self, backbone: Backbone, num_scores: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_candidates = backbone.num_outputs
        self.num_scores = int(num_scores)
        self.score_fc: nn.Linear | None = None
        if self.num_scores:
            self.score_fc = nn.Linear(self.num_scores, self.num_candidates, bias=False)
            nn.init.zeros_(self.score_fc.weight)

    def forward(
        self, x: torch.Tensor, scores: torch.Tensor | None = None, detach_features: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(Θ (N, K), the four stage maps)."""
        maps = self.backbone.stages(x)
        emb = self.backbone.pool(maps[-1])
        if detach_features:
            emb = emb.detach()
        logits = self.backbone.head(emb)
        if self.score_fc is not None:
            if scores is None:
                raise ValueError("this SearchNet takes the candidates' scores as input; pass scores=")
            logits = logits + self.score_fc(scores.to(logits.dtype))
        return logits, maps

    def weights(self, x: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.forward(x, scores)[0].float())

    def head_parameters(self) -> list[nn.Parameter]:
        """The K-way head (what the search loss trains even when the features are detached)."""
        ps = list(self.backbone.fc.parameters())
        if self.score_fc is not None:
            ps += list(self.score_fc.parameters())
        return ps

    @property
    def stage_channels(self) -> list[int]:
        return self.backbone.stage_channels


def build_searchnet(
    model: str, in_channels: int, num_candidates: int, image_size: int, *, width: int | None = None, num_scores: int = 0
) -> SearchNet:
    """SearchNet on a ``model`` backbone (no dropout in front of the K-way head)."""
    bb = build_model(model, in_channels, num_candidates, image_size, dropout=0.0, width=width)
    return SearchNet(bb, num_scores=num_scores)


def build_fitnet(
    model: str,
    in_channels: int,
    num_classes: int,
    image_size: int,
    *,
    width: int | None = None,
    dropout: float = 0.3,
    embedding_norm: bool = True,
) -> Backbone:
    """FitNet: a classifier of the task model's family (with the dropout layer that gives the
    Monte-Carlo samples of the candidates during the search)."""
    return build_model(
        model, in_channels, num_classes, image_size, dropout=dropout, width=width, embedding_norm=embedding_norm
    )
