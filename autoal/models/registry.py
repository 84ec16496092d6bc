"""Backbone registry: ``build_model(name, ...)`` by the names in config. A backbone family is one
module of :mod:`autoal.models` with a builder registered by :func:`register_model`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from autoal.api_marker import public_api
from autoal.errors import ConfigError
from autoal.models.base import Backbone
from autoal.registry import Registry

Builder = Callable[..., Backbone]


@dataclass(frozen=True)
class ModelFamily:
    """A registered backbone: its ``builder(in_channels, num_outputs, image_size, *, width,
    dropout, embedding_norm) -> Backbone``, the width used when the config gives none and
    ``min_side(image_size)``: the smallest height and width (pixels) its layers accept for images
    ``image_size`` pixels wide (None: 1); ``inputs``: the kinds of data it reads
    (:attr:`autoal.data.ALDataset.kind`: ``images``, ``features``); ``default_depth``: for a
    family with a ``depth`` option (its builder takes ``depth=``), the depth used when the config
    gives none (None: no depth option)."""

    name: str
    builder: Builder
    default_width: int
    min_side: Optional[Callable[[int], int]] = None
    inputs: tuple[str, ...] = ("images",)
    default_depth: Optional[int] = None


MODELS: Registry[ModelFamily] = Registry("model", "model.name", "autoal.models")


@public_api
def register_model(
    name: str,
    *,
    default_width: int,
    min_side: Callable[[int], int] | None = None,
    inputs: tuple[str, ...] = ("images",),
    default_depth: int | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator on a builder function: register the backbone family ``name`` (``min_side``,
    ``inputs``, ``default_depth``: see :class:`ModelFamily`)."""

    def deco(fn: Builder) -> Builder:
        MODELS.register(name)(ModelFamily(name, fn, int(default_width), min_side, tuple(inputs), default_depth))
        return fn

    return deco


def model_names() -> list[str]:
    return MODELS.names()


def model_family(name: str) -> ModelFamily:
    """The family ``name``; an unknown name raises ConfigError listing the choices."""
    return MODELS.get(name)


def min_image_side(name: str, image_size: int) -> int:
    """The smallest image height and width the family ``name`` accepts for images
    ``image_size`` pixels wide."""
    family = model_family(name)
    return 1 if family.min_side is None else int(family.min_side(int(image_size)))


def build_model(
    name: str,
    in_channels: int,
    num_outputs: int,
    image_size: int,
    dropout: float = 0.3,
    width: int | None = None,
    embedding_norm: bool = True,
    depth: int | None = None,
) -> Backbone:
    """Build a backbone by name; ``width`` defaults to the family's (16 for ``small_cnn``, 64 for
    ``resnet18``, 128 for ``mlp``); ``embedding_norm`` normalizes the embedding per sample (see
    :mod:`autoal.models.base`); ``depth`` (families with a depth option: ``mlp``) defaults to
    the family's.

    The model records its constructor arguments as ``model.spec`` (a plain dict), so that
    another process can rebuild it with ``build_model(**model.spec)`` and load its weights."""
    family = model_family(name)
    extra = {}
    if depth is not None:
        if family.default_depth is None:
            raise ConfigError(
                f"model.depth: model {name!r} has no depth option (set it for: "
                f"{', '.join(n for n in model_names() if model_family(n).default_depth is not None)})"
            )
        extra["depth"] = int(depth)
    m = family.builder(
        int(in_channels),
        int(num_outputs),
        int(image_size),
        width=int(width or family.default_width),
        dropout=float(dropout),
        embedding_norm=bool(embedding_norm),
        **extra,
    )
    m.spec = {
        "name": name,
        "in_channels": int(in_channels),
        "num_outputs": int(num_outputs),
        "image_size": int(image_size),
        "dropout": float(dropout),
        "width": width,
        "embedding_norm": bool(embedding_norm),
        **extra,
    }
    return m


def check_model_input(name: str, kind: str, where: str) -> None:
    """ConfigError unless the family ``name`` reads data of ``kind`` (``images`` or
    ``features``), naming the families that do."""
    family = model_family(name)
    if kind in family.inputs:
        return
    fits = [n for n in model_names() if kind in model_family(n).inputs]
    hint = {
        "features": "feature data (N, D) needs a model for feature vectors",
        "images": "images need a model for images (or flatten them into features: x.reshape(len(x), -1))",
    }[kind]
    raise ConfigError(
        f"model.name: model {name!r} reads {' and '.join(family.inputs)}, but {where} holds {kind}; "
        f"{hint}: model={' or model='.join(fits)}"
    )
