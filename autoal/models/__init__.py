"""Backbones: ``build_model(name, ...)`` returns a :class:`Backbone`."""
from __future__ import annotations

from autoal.errors import ConfigError
from autoal.models.base import Backbone
from autoal.models.resnet import ResNet18
from autoal.models.small_cnn import SmallCNN

MODEL_NAMES = ("small_cnn", "resnet18")


def build_model(name: str, in_channels: int, num_outputs: int, image_size: int,
                dropout: float = 0.3, width: int | None = None, embedding_norm: bool = True) -> Backbone:
    """Build a backbone by name; ``width`` defaults to 16 (small_cnn) or 64 (resnet18);
    ``embedding_norm`` normalizes the embedding per sample (see :mod:`autoal.models.base`).

    The model records its constructor arguments as ``model.spec`` (a plain dict), so that
    another process can rebuild it with ``build_model(**model.spec)`` and load its weights."""
    if name == "small_cnn":
        m: Backbone = SmallCNN(in_channels, num_outputs, width=width or 16, dropout=dropout, image_size=image_size,
                               embedding_norm=embedding_norm)
    elif name == "resnet18":
        m = ResNet18(in_channels, num_outputs, width=width or 64, dropout=dropout, embedding_norm=embedding_norm)
    else:
        raise ConfigError(f"model.name: unknown model {name!r}; valid choices: {', '.join(MODEL_NAMES)}")
    m.spec = {"name": name, "in_channels": int(in_channels), "num_outputs": int(num_outputs),
              "image_size": int(image_size), "dropout": float(dropout), "width": width,
              "embedding_norm": bool(embedding_norm)}
    return m


__all__ = ["Backbone", "ResNet18", "SmallCNN", "build_model", "MODEL_NAMES"]
