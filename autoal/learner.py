"""The owner of the task model (in the spirit of baal's ``ModelWrapper``): it builds the model from
the config, trains it on a labeled set, evaluates it on the test split and scores samples into the
round's :class:`~autoal.cache.PoolCache`. The loop, the labeling project, the benchmarks and the
strategies that train models of their own (LPL, ENSvarR, AutoAL) all go through it, so a model is
built and trained the same way everywhere."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from autoal.cache import PoolCache, compute_cache
from autoal.config import ModelConfig, RunConfig
from autoal.data.base import ALDataset
from autoal.device import prepare_model, resolve_device
from autoal.errors import ConfigError, DataError
from autoal.executors.ray_scoring import RayScorer
from autoal.models import Backbone, ModuleAdapter, build_model
from autoal.models.registry import check_model_input, min_image_side
from autoal.seeding import seed_torch
from autoal.training import TrainConfig, evaluate, train_model

Scorer = Callable[..., PoolCache]  # compute_cache's signature; autoal.executors.ray_scoring.RayScorer


class Learner:
    """The task model's recipe on one data set. ``scorer`` computes caches (default: in this
    process; :func:`default_scorer` picks the Ray actors of ``scoring.executor=ray``).
    ``template``: a user's model (:class:`~autoal.models.ModuleAdapter`, or any ``nn.Module``,
    adapted with ``model_cfg``'s dropout) that every new model is a fresh copy of, in place of the
    family ``model_cfg.name``."""

    def __init__(
        self,
        dataset: ALDataset,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        *,
        device: torch.device,
        mc_samples: int = 0,
        mc_masks: str = "consistent",
        scoring_batch_size: int = 1024,
        scorer: Scorer | None = None,
        template: torch.nn.Module | None = None,
    ) -> None:
        self.dataset = dataset
        self.model_cfg = model_cfg
        self.train_cfg = train_cfg
        self.device = device
        self.mc_samples = int(mc_samples)
        self.mc_masks = mc_masks
        self.scoring_batch_size = int(scoring_batch_size)
        self.scorer = scorer if scorer is not None else compute_cache
        self._images: torch.Tensor | None = None
        self.template: ModuleAdapter | None = None
        if template is not None:
            adapted = (
                template if isinstance(template, ModuleAdapter) else ModuleAdapter(template, dropout=model_cfg.dropout)
            )
            adapted.probe(dataset.eval_transform(dataset.x_train[:2]))  # the contract, before any training
            if adapted.num_outputs != dataset.num_classes:
                raise ConfigError(
                    f"model: the {adapted.module_class}'s head {adapted.head_name!r} has "
                    f"{adapted.num_outputs} outputs; the data set {dataset.name!r} has "
                    f"{dataset.num_classes} classes"
                )
            self.template = adapted
        else:
            where = f"{dataset.name} ({dataset.source})" if dataset.source else dataset.name
            check_model_input(model_cfg.name, dataset.kind, f"the data set {where}")
            if dataset.kind == "images":
                check_image_size(dataset, model_cfg.name)

    @classmethod
    def from_config(
        cls, cfg: RunConfig, dataset: ALDataset, scorer: Scorer | None = None, template: torch.nn.Module | None = None
    ) -> "Learner":
        """The learner a run config describes; a CUDA device that is not there is a ConfigError."""
        device = resolve_device(cfg.runtime.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"runtime.device: {cfg.runtime.device!r} requested but no CUDA device is visible; "
                "use runtime.device=auto or cpu"
            )
        return cls(
            dataset,
            cfg.model,
            cfg.train,
            device=device,
            mc_samples=cfg.al.mc_samples,
            mc_masks=cfg.al.mc_masks,
            scoring_batch_size=cfg.scoring.batch_size,
            scorer=scorer if scorer is not None else default_scorer(cfg),
            template=template,
        )

    def check_needs(self, strategy: Any) -> None:
        """A strategy that reads MC-dropout summaries needs ``al.mc_samples >= 1``; one that reads
        feature maps needs a user's module to name its stages; one that needs images (a
        convolutional model of its own: VAAL) refuses feature data."""
        if "images" in strategy.needs and self.dataset.kind != "images":
            raise ConfigError(
                f"strategy {strategy.name!r} models the samples as images (N, C, H, W) with a "
                f"convolutional network of its own; the data set {self.dataset.name!r} holds "
                f"{self.dataset.describe_kind()}: choose another strategy"
            )
        if "mc" in strategy.needs and self.mc_samples < 1:
            raise ConfigError(
                f"al.mc_samples: strategy {strategy.name!r} needs Monte-Carlo dropout samples; "
                f"set al.mc_samples >= 1 (got {self.mc_samples})"
            )
        if "stages" in strategy.needs and self.template is not None and not self.template.stage_names:
            raise ConfigError(
                f"model: strategy {strategy.name!r} reads the task model's feature maps; name the "
                f"{self.template.module_class}'s stage submodules (ModuleAdapter(module, stages=[...]))"
            )

    @property
    def images(self) -> torch.Tensor:
        """The pool, moved to the device once and kept there."""
        if self._images is None:
            self._images = self.dataset.x_train.to(self.device)
        return self._images

    def new_model(self, seed: int) -> Backbone:
        """A freshly initialized task model (seeded), on the device, channels-last."""
        seed_torch(seed)
        if self.template is not None:
            return prepare_model(self.template.fresh(), self.device)
        m = self.model_cfg
        model = build_model(
            m.name,
            self.dataset.in_channels,
            self.dataset.num_classes,
            self.dataset.image_size,
            dropout=m.dropout,
            width=m.width,
            embedding_norm=m.embedding_norm,
            depth=m.depth,
        )
        return prepare_model(model, self.device)

    def model_identity(self) -> dict[str, Any]:
        """What identifies the task model (part of a run's fingerprint): the family and its
        config, or the adapted module's :meth:`~autoal.models.ModuleAdapter.identity`."""
        if self.template is not None:
            return {"adapter": self.template.identity()}
        m = self.model_cfg
        out = {"name": m.name, "width": m.width, "dropout": m.dropout, "embedding_norm": m.embedding_norm}
        return out if m.depth is None else {**out, "depth": m.depth}

    def train(self, model: torch.nn.Module, indices: np.ndarray, seed: int, progress=None) -> list[float]:
        """Train ``model`` on the pool samples ``indices`` with the task recipe; per-epoch losses."""
        return train_model(
            model,
            self.dataset,
            indices,
            self.train_cfg,
            device=self.device,
            seed=seed,
            images=self.images,
            progress=progress,
        )

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Accuracy and balanced accuracy on the test split."""
        return evaluate(model, self.dataset, device=self.device)

    def score(self, model: Backbone, indices: np.ndarray, seed: int) -> PoolCache:
        """The cache (probabilities, embeddings, MC summaries) of the pool samples ``indices``."""
        return self.scorer(
            model,
            self.dataset,
            indices,
            mc_samples=self.mc_samples,
            batch_size=self.scoring_batch_size,
            device=self.device,
            seed=seed,
            images=self.images,
            mc_masks=self.mc_masks,
        )


def check_image_size(dataset: ALDataset, model_name: str) -> None:
    """DataError unless the data set's images are at least as tall and wide as the model family
    ``model_name`` needs (:func:`~autoal.models.registry.min_image_side`): checked when the
    learner is built, before a run writes anything, rather than failing inside a convolution."""
    h, w = int(dataset.x_train.shape[2]), int(dataset.x_train.shape[3])
    need = min_image_side(model_name, dataset.image_size)
    if h < need or w < need:
        where = f"{dataset.name} ({dataset.source})" if dataset.source else dataset.name
        raise DataError(
            f"{where}: images are {h}x{w} pixels (height x width); model {model_name!r} needs at least "
            f"{need}x{need} for images {w} pixels wide; resize or pad the images, or choose another "
            "model.name (resnet18 accepts 1x1)"
        )


def default_scorer(cfg: RunConfig) -> Scorer:
    """``scoring.executor``: ``local`` (this process) or ``ray`` (data-parallel Ray actors)."""
    if cfg.scoring.executor == "local":
        return compute_cache
    if cfg.scoring.executor == "ray":
        return RayScorer(
            num_actors=cfg.scoring.num_actors, gpus_per_actor=cfg.scoring.gpus_per_actor, num_cpus=cfg.scoring.num_cpus
        )
    raise ConfigError(f"scoring.executor: unknown executor {cfg.scoring.executor!r}; valid choices: local, ray")
