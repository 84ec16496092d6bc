"""The contract every backbone in autoal meets (task model, FitNet, SearchNet).

A network is split into ``stages`` (four feature maps, used by the loss prediction module of
Yoo & Kweon 2019), an ``embed`` step (global-average-pooled penultimate features, normalized per
sample when ``embedding_norm`` is on) and a ``head`` (dropout, then a linear classifier).
Monte-Carlo dropout samples (DESIGN.md §3.1) come from T passes of the head over cached
embeddings: one backbone pass, T cheap head passes (:mod:`autoal.mc`).

Why the embedding is normalized (DESIGN.md §3.1.1): with dropout in front of a linear head, the
spread of the MC logits grows with the squared norm of the embedding, and in these BatchNorm
CNNs the norm is strongly anti-correlated with uncertainty (Spearman of entropy vs norm −0.89 on
digits). Un-normalized, BALD and MeanSTD then track the norm and pick samples the model already
classifies correctly. A per-sample layer normalization (no affine parameters: a gain and bias
would be absorbed by the linear head) fixes the scale, so the MC spread reflects the head's
disagreement rather than the activation size.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from autoal.api_marker import developer_api
from autoal.mc import MCSummary, dropout_keep_mask, mc_dropout_summary


@developer_api
class Backbone(nn.Module):
    """Abstract base: subclasses build ``self.body`` (returns the 4 stage maps) and set
    ``self.embedding_dim``."""

    embedding_dim: int

    def __init__(self, num_outputs: int, dropout: float, embedding_norm: bool = True) -> None:
        super().__init__()
        self.num_outputs = num_outputs
        self.dropout_p = float(dropout)
        self.embedding_norm = bool(embedding_norm)

    def build_head(self) -> None:
        self.dropout = nn.Dropout(self.dropout_p)
        self.fc = nn.Linear(self.embedding_dim, self.num_outputs)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding, the head's input: global average pool of the last stage, then
        (``embedding_norm``) a per-sample layer normalization."""
        return self.embedding(self.stages(x)[-1])

    def embedding(self, last_map: torch.Tensor) -> torch.Tensor:
        """The embedding from the last stage's feature map."""
        e = self.pool(last_map)
        return F.layer_norm(e, e.shape[-1:]) if self.embedding_norm else e

    @staticmethod
    def pool(feature_map: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(feature_map, 1), 1)

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(emb))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the four stage maps from one pass (SearchNet + loss prediction)."""
        maps = self.stages(x)
        return self.head(self.embedding(maps[-1])), maps

    def mc_head(self, emb: torch.Tensor, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``samples`` logit draws with dropout active, from cached embeddings: (T, N, C).
        ``generator``, when given, must live on ``emb``'s device."""
        if self.dropout_p <= 0:
            return self.fc(emb).unsqueeze(0).expand(samples, -1, -1).clone()
        out = []
        for _ in range(samples):
            keep, scale = dropout_keep_mask(emb.shape, self.dropout_p, generator, emb.device)
            # the rescaling goes into the (small) weight matrix rather than over every embedding
            out.append(F.linear(emb * keep, self.fc.weight * scale, self.fc.bias))
        return torch.stack(out)

    def mc_summary(
        self, emb: torch.Tensor, samples: int, generator: torch.Generator | None = None, masks: str = "consistent"
    ) -> MCSummary:
        """Moments of ``samples`` dropout passes of the head over cached embeddings (see
        :func:`autoal.mc.mc_dropout_summary`); ``generator`` must live on ``emb``'s device."""
        return mc_dropout_summary(self.fc.weight, self.fc.bias, emb, samples, self.dropout_p, generator, masks)

    @property
    def stage_channels(self) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError
