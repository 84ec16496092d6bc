"""Backbones: ``build_model(name, ...)`` returns a :class:`Backbone`; each family is one module
that registers a builder (:func:`register_model`)."""

from __future__ import annotations

from autoal.models.adapter import ModuleAdapter, new_like, same_build
from autoal.models.base import Backbone
from autoal.models.mlp import MLP
from autoal.models.registry import ModelFamily, build_model, model_family, model_names, register_model
from autoal.models.resnet import ResNet18
from autoal.models.small_cnn import SmallCNN

__all__ = [
    "MLP",
    "Backbone",
    "ModelFamily",
    "ModuleAdapter",
    "ResNet18",
    "SmallCNN",
    "build_model",
    "model_family",
    "model_names",
    "new_like",
    "register_model",
    "same_build",
]
