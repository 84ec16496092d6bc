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


def dropout_keep_mask(shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None,
                      device: torch.device) -> tuple[torch.Tensor, float]:
    """An inverted-dropout keep mask (Srivastava et al. 2014) and its rescaling 1/q, where q is
    the keep probability 1 − p rounded to a multiple of 2⁻¹⁶.

    Each element compares one 16-bit lane of a 64-bit random word against a threshold, so a mask
    of n elements costs n/4 random draws instead of n float draws (4-5× faster on CPU, where MC
    dropout's masks otherwise dominate the T head passes)."""
    n = 1
    for s in shape:
        n *= int(s)
    keep_units = max(1, min(65536, round((1.0 - p) * 65536)))
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None, generator=generator)
    lanes = words.view(torch.int16)[:n].view(shape)  # uniform on [−32768, 32767]
    return lanes < keep_units - 32768, 65536.0 / keep_units


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
        if self.dropout_p <= 0:
            return self.fc(emb).unsqueeze(0).expand(samples, -1, -1).clone()
        out = []
        for _ in range(samples):
            keep, scale = dropout_keep_mask(emb.shape, self.dropout_p, generator, emb.device)
            # the rescaling goes into the (small) weight matrix rather than over every embedding
            out.append(F.linear(emb * keep, self.fc.weight * scale, self.fc.bias))
        return torch.stack(out)

    @property
    def stage_channels(self) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError
