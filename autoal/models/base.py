"""The contract every backbone in autoal meets (task model, FitNet, SearchNet).

A network is split into ``stages`` (four feature maps, used by the loss prediction module of
Yoo & Kweon 2019), an ``embed`` step (global-average-pooled penultimate features) and a ``head``
(dropout, then a linear classifier). Monte-Carlo dropout samples (DESIGN.md §3.1) come from T
passes of the head over cached embeddings: one backbone pass, T cheap head passes.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class Backbone(nn.Module):
    """Abstract base: subclasses build ``self.body`` (returns the 4 stage maps) and set
    ``self.embedding_dim``."""

    embedding_dim: int

    def __init__(self, num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.num_outputs = num_outputs
        self.dropout_p = float(dropout)

    def build_head(self) -> None:
        self.dropout = nn.Dropout(self.dropout_p)
        self.fc = nn.Linear(self.embedding_dim, self.num_outputs)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: global average pool of the last stage."""
        return self.pool(self.stages(x)[-1])

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
        return self.head(self.pool(maps[-1])), maps

    def mc_head(self, emb: torch.Tensor, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``samples`` logit draws with dropout active, from cached embeddings: (T, N, C).
        ``generator``, when given, must live on ``emb``'s device."""
        p = self.dropout_p
        out = []
        for _ in range(samples):
            if p > 0:
                keep = torch.rand(emb.shape, generator=generator, device=emb.device) >= p
                dropped = emb * keep / (1.0 - p)
            else:
                dropped = emb
            out.append(self.fc(dropped))
        return torch.stack(out)

    @property
    def stage_channels(self) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError
