"""Learning loss for active learning (Yoo & Kweon, CVPR 2019)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from autoal.device import autocast, prepare_batch
from autoal.lpm import LossPredictionModule, ranking_loss
from autoal.models.base import Backbone
from autoal.selection import top_n
from autoal.strategies.base import QueryContext, Strategy, restore, saved_mapping
from autoal.strategies.baselines._common import cpu_state, loop_train_config, require_ctx
from autoal.strategies.registry import register_strategy
from autoal.training import epoch_batches, make_optimizer


def train_joint(
    model: Backbone,
    lpm: LossPredictionModule,
    dataset: Any,
    indices: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    weight: float,
    margin: float,
    detach_epoch: int,
    device: torch.device,
    seed: int,
    progress: Callable[..., None] | None = None,
) -> dict[str, list[float]]:
    """Train the task model and the loss prediction module together on ``indices``:
    loss = mean CE + weight · ranking loss(predicted loss, CE.detach()). From epoch
    ``detach_epoch`` on, the stage maps enter the module detached, so the ranking loss no longer
    reaches the backbone (the paper stops that gradient after 120 of 200 epochs). Mini-batches
    come from a seeded permutation per epoch and the data set's training transform, as in
    :func:`autoal.training.train_model`. Returns the per-epoch mean CE and ranking losses.
    ``progress(done, total, ce=..., rank=...)`` is called after every epoch."""
    gen = torch.Generator().manual_seed(int(seed))
    aug_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    opt_m = make_optimizer(model.parameters(), optimizer, lr, momentum, weight_decay)
    opt_l = make_optimizer(lpm.parameters(), optimizer, lr, momentum, weight_decay)
    model.train()
    lpm.train()
    n = len(idx)
    hist: dict[str, list[float]] = {"ce": [], "rank": []}
    for epoch in range(int(epochs)):
        perm = idx[torch.randperm(n, generator=gen)]
        tot_ce = tot_rank = 0.0
        count = 0
        for sel in epoch_batches(perm, batch_size):  # near-equal sizes, no tail of a few samples
            if len(sel) < 2 and n >= 2:
                continue
            xb = prepare_batch(dataset.x_train[sel], device)
            yb = dataset.y_train[sel].to(device)
            with autocast(device):
                logits, maps = model.forward_with_stages(dataset.train_transform(xb, generator=aug_gen))
                if epoch >= detach_epoch:
                    maps = [m.detach() for m in maps]
                pred = lpm(maps)
            ce = F.cross_entropy(logits.float(), yb, reduction="none")
            rank = ranking_loss(pred.float(), ce.detach(), margin)
            loss = ce.mean() + weight * rank
            opt_m.zero_grad(set_to_none=True)
            opt_l.zero_grad(set_to_none=True)
            loss.backward()
            opt_m.step()
            opt_l.step()
            tot_ce += float(ce.mean().detach()) * len(sel)
            tot_rank += float(rank.detach()) * len(sel)
            count += len(sel)
        hist["ce"].append(tot_ce / max(count, 1))
        hist["rank"].append(tot_rank / max(count, 1))
        if progress is not None:
            progress(epoch + 1, int(epochs), ce=hist["ce"][-1], rank=hist["rank"][-1])
    return hist


@torch.no_grad()
def predict_loss(
    model: Backbone,
    lpm: LossPredictionModule,
    dataset: Any,
    indices: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Predicted losses of ``dataset.x_train[indices]`` (eval mode, evaluation transform)."""
    model.eval()
    lpm.eval()
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    out = []
    for start in range(0, len(idx), batch_size):
        xb = prepare_batch(dataset.x_train[idx[start : start + batch_size]], device)
        with autocast(device):
            out.append(lpm(model.stages(dataset.eval_transform(xb))).float())
    return torch.cat(out) if out else torch.zeros(0, device=device)


@register_strategy("lpl")
class LearningLoss(Strategy):
    """Learning loss (Yoo & Kweon: "Learning Loss for Active Learning", CVPR 2019).

    A loss prediction module (LPM) reads the task model's four stage outputs and is trained
    jointly with it on L, with the paper's margin ranking loss against the per-sample
    cross-entropy (weight λ, margin ξ); the samples of U with the highest predicted loss are
    queried. Each round the strategy trains its own fresh task model (``ctx.learner.new_model``)
    together with a fresh LPM on L, with the loop's training schedule unless overridden here.

    Choices where the paper leaves room (and differences to it): (1) the jointly trained model
    is used for scoring only — the loop's own task model (trained without the LPM) is the one
    evaluated, as for every other strategy; (2) epochs, batch size, optimizer, learning rate,
    momentum and weight decay default to the loop's ``train`` config (the paper: SGD, lr 0.1,
    200 epochs, batch 128), and the LPM uses the same optimizer kind and learning rate as the
    backbone (as in the paper); the paper's step decay of the learning rate is not applied, as
    the loop's training has none; (3) the gradient from the LPM into the backbone stops at
    ``detach_epoch`` (default: 60 % of the epochs, the paper's 120 of 200); (4) the paper scores
    a random subset of ``subset`` = 10,000 unlabeled samples and queries the top b of it
    (0 = the whole pool); (5) LPM hidden size 128, λ = 1, ξ = 1 (the paper's); (6) with
    ``warm_start`` the model and LPM carry over between rounds (and are saved for resume);
    by default both start fresh each round. Progress: stage ``lpl/train``, one unit per epoch.
    """

    needs = frozenset({"model", "dataset", "stages"})

    def __init__(
        self,
        weight: float = 1.0,
        margin: float = 1.0,
        hidden: int = 128,
        detach_epoch: int | None = None,
        subset: int = 10000,
        epochs: int | None = None,
        batch_size: int | None = None,
        optimizer: str | None = None,
        lr: float | None = None,
        momentum: float | None = None,
        weight_decay: float | None = None,
        warm_start: bool = False,
        score_batch_size: int = 1024,
    ) -> None:
        self.weight = float(weight)
        self.margin = float(margin)
        self.hidden = int(hidden)
        self.detach_epoch = detach_epoch
        self.subset = int(subset)
        self.overrides = {
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
        }
        self.warm_start = bool(warm_start)
        self.score_batch_size = int(score_batch_size)
        self._saved: dict[str, Any] | None = None
        self.last_history: dict[str, list[float]] = {}

    def train_settings(self, ctx: QueryContext) -> dict[str, Any]:
        base = loop_train_config(ctx)
        s = {k: (getattr(base, k) if v is None else v) for k, v in self.overrides.items()}
        s["detach_epoch"] = int(round(0.6 * s["epochs"])) if self.detach_epoch is None else int(self.detach_epoch)
        return s

    def fit(self, ctx: QueryContext) -> tuple[Backbone, LossPredictionModule]:
        """Train a task model and its LPM jointly on the labeled set (fresh or warm-started)."""
        ctx = require_ctx(ctx, self.name, "learner", "dataset")
        model = ctx.learner.new_model(ctx.seed)
        lpm = LossPredictionModule(model.stage_channels, self.hidden).to(ctx.device)
        if self.warm_start and self._saved is not None:
            restore(model, self._saved["model"], "LPL task model")
            restore(lpm, self._saved["lpm"], "loss prediction module")
        s = self.train_settings(ctx)
        self.last_history = train_joint(
            model,
            lpm,
            ctx.dataset,
            ctx.labeled,
            weight=self.weight,
            margin=self.margin,
            device=ctx.device,
            seed=ctx.seed,
            **s,
            progress=lambda done, total, **info: ctx.progress("lpl/train", done, total, **info),
        )
        if self.warm_start:
            self._saved = {"model": cpu_state(model), "lpm": cpu_state(lpm)}
        return model, lpm

    def query(self, ctx: QueryContext) -> np.ndarray:
        ctx = require_ctx(ctx, self.name, "learner", "dataset")
        cache, n, rng = ctx.cache, ctx.n, ctx.rng
        model, lpm = self.fit(ctx)
        m = len(cache)
        if 0 < self.subset < m:
            rows = np.sort(rng.choice(m, size=max(self.subset, n), replace=False))
        else:
            rows = np.arange(m)
        pred = predict_loss(
            model, lpm, ctx.dataset, cache.indices[rows], device=ctx.device, batch_size=self.score_batch_size
        )
        if self.last_history.get("rank"):
            ctx.log("lpl/rank_loss", self.last_history["rank"][-1])
            ctx.log("lpl/ce_loss", self.last_history["ce"][-1])
        return ctx.unlabeled[rows[top_n(pred, n, rng)]]

    def state_dict(self) -> dict[str, Any]:
        return {"saved": self._saved} if self._saved is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = saved_mapping(state, "saved")
        if saved is not None:
            saved_mapping(saved, "model", optional=False)
            saved_mapping(saved, "lpm", optional=False)
        self._saved = saved
