"""ENSvarR: variation ratio over an ensemble of independently trained networks (Beluch,
Genewein, Nürnberger, Köhler, CVPR 2018)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from autoal.errors import ConfigError
from autoal.executors.ray_ensemble import member_votes_on_ray, ray_running
from autoal.progress import epoch_progress
from autoal.selection import top_n
from autoal.strategies.base import QueryContext, RayResources, Strategy
from autoal.strategies.baselines._common import require_ctx, sub_seed
from autoal.strategies.registry import register_strategy


def variation_ratio(votes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """1 − (count of the modal class)/M over M members' predicted labels ``votes`` (M, N)."""
    m = votes.shape[0]
    counts = torch.nn.functional.one_hot(votes.long(), num_classes).sum(0)  # (N, C)
    return 1.0 - counts.max(1).values.float() / m


@register_strategy("ens_var_r")
class EnsembleVarRatio(Strategy):
    """ENSvarR (Beluch, Genewein, Nürnberger, Köhler: "The Power of Ensembles for Active
    Learning in Image Classification", CVPR 2018).

    ``ensemble_size`` task models are trained independently on L (same architecture and
    training schedule as the loop's task model, different seeds: different initializations,
    mini-batch orders, augmentations and dropout masks); each votes its predicted class on
    every unlabeled sample; the acquisition is the variation ratio 1 − f_m/M, where f_m is the
    number of members voting the modal class. The top b are queried.

    Choices where the paper leaves room: (1) member 0 is the round's task model (its votes come
    from the shared cache) unless ``reuse_task_model`` is false; the other members are fresh
    models from ``ctx.learner`` (``new_model``, ``train``, ``score``) with seeds derived from the
    round's seed and the member index; (2) members
    retrain from scratch every round (the paper's setting); (3) the variation ratio takes M + 1
    discrete values, and ties are broken by the round's seeded order (no secondary score);
    (4) default size 5.

    When Ray is initialized (``ray.is_initialized()``) and the context carries the loop's train
    config, members train in parallel as Ray tasks (:mod:`autoal.executors.ray_ensemble`)
    of ``ray_num_cpus`` CPUs and ``ray_num_gpus`` GPUs (default: a 1/members share of a GPU
    when the loop runs on CUDA and the cluster has GPUs, else none). Each task receives the
    member's initialized weights and the driver's RNG state after initialization and trains with
    the loop's train config, so picks equal the sequential path's for the same seed. The tasks'
    resources are declared (:meth:`ray_resources`), so a sweep's trials reserve them.

    Progress: stage ``ens_var_r/members`` (one unit per member trained here, as each finishes)
    and, on the sequential path, ``ens_var_r/train`` (the current member's epochs).
    """

    needs = frozenset({"model", "dataset"})

    def __init__(
        self,
        ensemble_size: int = 5,
        reuse_task_model: bool = True,
        ray_num_cpus: float = 1.0,
        ray_num_gpus: float | None = None,
        score_batch_size: int = 1024,
    ) -> None:
        if int(ensemble_size) < 1:
            raise ConfigError(f"strategy (ens_var_r).ensemble_size: must be >= 1; got {ensemble_size!r}")
        self.ensemble_size = int(ensemble_size)
        self.reuse_task_model = bool(reuse_task_model)
        self.ray_num_cpus = float(ray_num_cpus)
        self.ray_num_gpus = ray_num_gpus
        self.score_batch_size = int(score_batch_size)
        self.last_backend = "none"
        self.last_votes: torch.Tensor | None = None

    @classmethod
    def ray_resources(cls, params: Mapping[str, Any]) -> RayResources:
        """The members' Ray tasks, children of the trial: one bundle, where they run one after
        another, of ``ray_num_cpus`` CPUs and ``ray_num_gpus`` GPUs (unset or 0: half the
        trial's GPU); none where no member trains outside the task model."""
        members = int(params.get("ensemble_size", 5)) - (1 if params.get("reuse_task_model", True) else 0)
        if members < 1:
            return RayResources()
        return RayResources(
            task_bundles=(
                {"CPU": float(params.get("ray_num_cpus", 1.0) or 0), "GPU": params.get("ray_num_gpus") or None},
            )
        )

    def member_seeds(self, seed: int) -> list[int]:
        start = 1 if self.reuse_task_model else 0
        return [sub_seed(seed, m) for m in range(start, self.ensemble_size)]

    def votes(self, ctx: QueryContext) -> torch.Tensor:
        """(M, N) predicted labels of the members over ``ctx.cache``."""
        cache = ctx.cache
        rows = [cache.probs.argmax(1).cpu()] if self.reuse_task_model else []
        seeds = self.member_seeds(ctx.seed)
        if seeds:
            # off-process members train with the learner's recipe, exactly as its train() does
            if ray_running() and ctx.learner is not None:
                rows += self._votes_ray(ctx, seeds)
                self.last_backend = "ray"
            else:
                rows += self._votes_sequential(ctx, seeds)
                self.last_backend = "sequential"
        self.last_votes = torch.stack([torch.as_tensor(r, dtype=torch.long) for r in rows])
        return self.last_votes

    def _votes_sequential(self, ctx: QueryContext, seeds: list[int]) -> list[torch.Tensor]:
        learner = require_ctx(ctx, self.name, "learner").learner
        out = []
        epochs = learner.train_cfg.epochs_for(len(ctx.labeled))
        ctx.progress("ens_var_r/members", 0, len(seeds))
        for m, s in enumerate(seeds):
            model = learner.new_model(s)
            learner.train(model, ctx.labeled, s, progress=epoch_progress(ctx.progress, "ens_var_r/train", epochs))
            out.append(learner.score(model, ctx.unlabeled, s).probs.argmax(1).cpu())
            del model
            ctx.progress("ens_var_r/members", m + 1, len(seeds))
        return out

    def _votes_ray(self, ctx: QueryContext, seeds: list[int]) -> list[torch.Tensor]:
        ctx = require_ctx(ctx, self.name, "learner", "dataset")
        return member_votes_on_ray(
            ctx.learner,
            ctx.dataset,
            ctx.labeled,
            ctx.unlabeled,
            seeds,
            use_cuda=ctx.device.type == "cuda",
            num_cpus=self.ray_num_cpus,
            num_gpus=self.ray_num_gpus,
            batch_size=self.score_batch_size,
            progress=lambda done, total: ctx.progress("ens_var_r/members", done, total),
        )

    def query(self, ctx: QueryContext) -> np.ndarray:
        v = self.votes(ctx)
        vr = variation_ratio(v, ctx.cache.probs.shape[1])
        ctx.log("ens_var_r/mean_var_ratio", float(vr.mean()) if len(vr) else float("nan"))
        ctx.log("ens_var_r/member_agreement", float((vr == 0).float().mean()) if len(vr) else float("nan"))
        return ctx.unlabeled[top_n(vr, ctx.n, ctx.rng)]
