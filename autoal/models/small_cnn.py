"""A small four-stage CNN for tiny inputs (digits 8x8, MNIST-size 28x28) and for tests."""

from __future__ import annotations

import torch
from torch import nn

from autoal.models.base import Backbone
from autoal.models.registry import register_model


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def pooled_stages(image_size: int) -> list[bool]:
    """Which of the four stages halve the resolution (2x2 max-pool) for inputs ``image_size``
    pixels wide: the 2nd from 8 pixels, the 3rd from 16, the 4th from 28."""
    return [False, image_size >= 8, image_size >= 16, image_size >= 28]


def min_side(image_size: int) -> int:
    """The smallest height/width the pools accept: each halving needs at least 2 pixels left."""
    return 2 ** sum(pooled_stages(image_size))


class SmallCNN(Backbone):
    """Four conv-BN-ReLU stages of widths (w, 2w, 4w, 4w); stages 2, 3 and 4 halve the resolution
    when the input is at least 8, 16 and 28 pixels wide (:func:`pooled_stages`)."""

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        width: int = 16,
        dropout: float = 0.3,
        image_size: int = 8,
        embedding_norm: bool = True,
    ) -> None:
        super().__init__(num_outputs, dropout, embedding_norm)
        widths = [width, 2 * width, 4 * width, 4 * width]
        pools = pooled_stages(image_size)
        chans = [in_channels] + widths
        self.blocks = nn.ModuleList(_block(chans[i], chans[i + 1], pools[i]) for i in range(4))
        self._stage_channels = widths
        self.embedding_dim = widths[-1]
        self.build_head()

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    @property
    def stage_channels(self) -> list[int]:
        return list(self._stage_channels)


@register_model("small_cnn", default_width=16, min_side=min_side)
def small_cnn(
    in_channels: int, num_outputs: int, image_size: int, *, width: int, dropout: float, embedding_norm: bool
) -> SmallCNN:
    return SmallCNN(
        in_channels, num_outputs, width=width, dropout=dropout, image_size=image_size, embedding_norm=embedding_norm
    )
