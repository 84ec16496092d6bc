"""ResNet-18 (He et al. 2016) with the small-image stem used in the AL literature: a 3x3
stride-1 first convolution and no max-pool, for 32x32 (CIFAR, SVHN), 28x28 (MedMNIST) and
64x64 (TinyImageNet) inputs; 1- or 3-channel input; dropout before the classifier head."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from autoal.models.base import Backbone
from autoal.models.registry import register_model


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with stride s, computed as a stride-1 1x1 convolution of every s-th
    pixel (the same function and parameters). The strided 1x1 kernel's backward crashes the
    process in PyTorch's CPU kernels for channels-last inputs with few channels, an odd batch and
    more than one thread (torch 2.14, measured: 8 -> 16 channels at 32x32, batch 33, 2 threads)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        return F.conv2d(x[:, :, :: s[0], :: s[1]], self.weight)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(StridedPointwise(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Backbone):
    def __init__(
        self, in_channels: int, num_outputs: int, width: int = 64, dropout: float = 0.3, embedding_norm: bool = True
    ) -> None:
        super().__init__(num_outputs, dropout, embedding_norm)
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        layers = []
        cin = width
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.layers = nn.ModuleList(layers)
        self._stage_channels = widths
        self.embedding_dim = widths[-1]
        self.build_head()

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        maps = []
        for layer in self.layers:
            x = layer(x)
            maps.append(x)
        return maps

    @property
    def stage_channels(self) -> list[int]:
        return list(self._stage_channels)


@register_model("resnet18", default_width=64)
def resnet18(
    in_channels: int, num_outputs: int, image_size: int, *, width: int, dropout: float, embedding_norm: bool
) -> ResNet18:
    """ResNet-18 with the small-image stem; its layers do not depend on ``image_size``."""
    return ResNet18(in_channels, num_outputs, width=width, dropout=dropout, embedding_norm=embedding_norm)
