"""Backbones: ``build_model(name, ...)`` returns a :class:`Backbone`."""
from __future__ import annotations

from autoal.errors import ConfigError
from autoal.models.base import Backbone
from autoal.models.resnet import ResNet18
from autoal.models.small_cnn import SmallCNN

MODEL_NAMES = ("small_cnn", "resnet18")


def build_model(name: str, in_channels: int, num_outputs: int, image_size: int,
                dropout: float = 0.3, width: int | None = None) -> Backbone:
    """Build a backbone by name; ``width`` defaults to 16 (small_cnn) or 64 (resnet18)."""
    if name == "small_cnn":
        return SmallCNN(in_channels, num_outputs, width=width or 16, dropout=dropout, image_size=image_size)
    if name == "resnet18":
        return ResNet18(in_channels, num_outputs, width=width or 64, dropout=dropout)
    raise ConfigError(f"model.name: unknown model {name!r}; valid choices: {', '.join(MODEL_NAMES)}")


__all__ = ["Backbone", "ResNet18", "SmallCNN", "build_model", "MODEL_NAMES"]
