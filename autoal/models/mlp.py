"""A multilayer perceptron for feature data (tabular rows, (N, D) float vectors).

``depth`` hidden layers of ``width`` units (Linear, then ReLU). Each hidden layer's output is one
of the backbone's stages, shaped (N, width, 1, 1) — a 1x1 feature map — so that everything written
for the stage maps of a CNN (the loss prediction module of Yoo & Kweon 2019, AutoAL's SearchNet)
reads them unchanged. The embedding is the last hidden layer (layer-normalized per sample with
``embedding_norm``, :mod:`autoal.models.base`); the head is dropout then a linear classifier, as
for every backbone, so the MC-dropout strategies apply. No BatchNorm: the first rounds train on
20 rows.
"""

from __future__ import annotations

import torch
from torch import nn

from autoal.models.base import Backbone
from autoal.models.registry import register_model

#: hidden layers when the config gives no ``model.depth``
DEFAULT_DEPTH = 2


class MLP(Backbone):
    """``depth`` x (Linear(width), ReLU) on (N, D) inputs; stages are the hidden layers as
    (N, width, 1, 1) maps."""

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        width: int = 128,
        depth: int = DEFAULT_DEPTH,
        dropout: float = 0.3,
        embedding_norm: bool = True,
    ) -> None:
        super().__init__(num_outputs, dropout, embedding_norm)
        if depth < 1:
            raise ValueError(f"MLP: depth must be >= 1, got {depth}")
        dims = [in_features] + [width] * depth
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(dims[i], dims[i + 1]), nn.ReLU(inplace=True)) for i in range(depth)
        )
        self.embedding_dim = width
        self._stage_channels = [width] * depth
        self.build_head()

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = torch.flatten(x, 1)
        maps = []
        for layer in self.layers:
            x = layer(x)
            maps.append(x[:, :, None, None])
        return maps

    @property
    def stage_channels(self) -> list[int]:
        return list(self._stage_channels)


@register_model("mlp", default_width=128, inputs=("features",), default_depth=DEFAULT_DEPTH)
def mlp(
    in_channels: int,
    num_outputs: int,
    image_size: int,
    *,
    width: int,
    dropout: float,
    embedding_norm: bool,
    depth: int = DEFAULT_DEPTH,
) -> MLP:
    """For features (N, D), ``in_channels`` is D and ``image_size`` 1
    (:attr:`autoal.data.ALDataset.in_channels`)."""
    return MLP(
        in_channels * image_size * image_size,
        num_outputs,
        width=width,
        depth=depth,
        dropout=dropout,
        embedding_norm=embedding_norm,
    )
