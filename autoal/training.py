"""Training and evaluation of the task model on the labeled set."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from autoal.bounds import bounded
from autoal.data.base import ALDataset
from autoal.device import autocast, inference_batch, prepare_batch
from autoal.errors import ConfigError, TrainingDiverged
from autoal.metrics import accuracy, balanced_accuracy

OPTIMIZERS = ("adam", "sgd")
#: upper bounds that keep a typo from turning into hours of work or a run that cannot learn
MAX_EPOCHS = 100_000
MAX_LR = 10.0


@dataclass
class TrainConfig:
    """Task-model training (per round): epochs over L, mini-batch size, optimizer and its
    learning rate, momentum (SGD) and weight decay. ``min_steps`` (0 = off) raises the number of
    epochs so that a round takes at least that many optimizer steps: with a few labels an epoch
    is one step, and 50 steps leave the small CNN at 25 % on MNIST with 40 labels where 200
    steps reach 50 %."""

    epochs: int = bounded(50, 1, MAX_EPOCHS)
    min_steps: int = bounded(0, 0, note="0 = off")
    batch_size: int = bounded(64, 1)
    optimizer: str = "adam"
    lr: float = bounded(1e-3, 0, MAX_LR, low_open=True)
    momentum: float = bounded(0.9, 0, 1, high_open=True)
    weight_decay: float = bounded(5e-4, 0, 1)

    def validate(self) -> None:
        """The choices; the numbers' ranges are the fields' bounds (:func:`autoal.bounds.check_bounds`)."""
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"train.optimizer: unknown optimizer {self.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}"
            )

    def epochs_for(self, n: int) -> int:
        """Epochs over ``n`` samples: ``epochs``, or more to reach ``min_steps`` optimizer steps."""
        if n <= 0 or not self.min_steps:
            return int(self.epochs)
        per_epoch = max(1, -(-n // min(int(self.batch_size), n)))
        return max(int(self.epochs), -(-int(self.min_steps) // per_epoch))


def epoch_batches(perm: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    """One epoch's mini-batches: ``perm`` cut into ⌈n / batch_size⌉ consecutive batches whose sizes
    differ by at most one (130 samples at 64: 44, 43, 43), never a full batches-plus-a-remainder
    split (64, 64, 2). A tail of a few samples is a step on a gradient and BatchNorm statistics from
    a handful of images, taken in every epoch and last in the last one: on digits_lt, at 130 labels,
    57 % of runs lost more than 0.03 accuracy in that round (bench/README.md, "Even batches")."""
    n = int(perm.shape[0])
    if n == 0:
        return ()
    return torch.tensor_split(perm, -(-n // max(1, min(int(batch_size), n))))


def make_optimizer(params, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"optimizer: unknown optimizer {name!r}; valid choices: {', '.join(OPTIMIZERS)}")


def train_model(
    model: torch.nn.Module,
    dataset: ALDataset,
    indices: np.ndarray,
    cfg: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    images: torch.Tensor | None = None,
    progress=None,
) -> list[float]:
    """Train ``model`` on ``dataset.x_train[indices]`` with the training transform.

    Mini-batches are drawn by a seeded permutation each epoch and cut into batches of near-equal
    size (:func:`epoch_batches`). Returns the mean loss of each
    epoch. ``images`` may supply the pool already resident on ``device``. ``progress`` is an
    optional callable ``(epoch, loss)`` called after each epoch. A non-finite epoch loss, or
    non-finite weights at the end, raise :class:`~autoal.errors.TrainingDiverged` (checked once
    per epoch, where the loss is read anyway: no sync per step)."""
    gen = torch.Generator().manual_seed(int(seed))
    aug_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)
    source = images if images is not None else dataset.x_train
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    y_all = dataset.y_train
    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    model.train()
    losses = []
    n = len(idx)
    epochs = cfg.epochs_for(n)
    steps = 0
    for epoch in range(epochs):
        first_step = steps + 1
        perm = idx[torch.randperm(n, generator=gen)]
        total = torch.zeros((), device=device)
        count = 0
        for sel in epoch_batches(perm, cfg.batch_size):
            if len(sel) < 2 and n >= 2:  # BatchNorm needs 2 samples (batch_size 1); such a batch is skipped
                continue
            xb = prepare_batch(source[sel.to(source.device)], device)
            yb = y_all[sel].to(device)
            with autocast(device):
                logits = model(dataset.train_transform(xb, generator=aug_gen))
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            total += loss.detach() * len(sel)  # stays on the device: no sync per step
            count += len(sel)
        losses.append(float(total) / max(count, 1))
        if not math.isfinite(losses[-1]):
            where = f"step {steps}" if first_step == steps else f"steps {first_step}-{steps}"
            raise _diverged(
                cfg, f"the training loss is {losses[-1]} in epoch {epoch + 1} of {epochs} (optimizer {where})"
            )
        if progress is not None:
            progress(epoch, losses[-1])
    weights = [p for p in model.parameters() if p.is_floating_point()]
    if weights and not bool(torch.stack([torch.isfinite(p).all() for p in weights]).all()):
        raise _diverged(cfg, f"the weights are not finite after {epochs} epochs ({steps} optimizer steps)")
    return losses


def _diverged(cfg: TrainConfig, what: str) -> TrainingDiverged:
    return TrainingDiverged(
        f"training diverged: {what}; lower train.lr (now {cfg.lr:g} with train.optimizer="
        f"{cfg.optimizer}, train.weight_decay={cfg.weight_decay:g})"
    )


@torch.no_grad()
def predict(
    model: torch.nn.Module, dataset: ALDataset, x: torch.Tensor, *, device: torch.device, batch_size: int = 1024
) -> np.ndarray:
    model.eval()
    preds = []
    batch_size = inference_batch(batch_size, device)  # CPU: chunks that stay in cache
    for start in range(0, len(x), batch_size):
        xb = prepare_batch(x[start : start + batch_size], device)
        with autocast(device):
            preds.append(model(dataset.eval_transform(xb)).argmax(1).cpu())
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def evaluate(model: torch.nn.Module, dataset: ALDataset, *, device: torch.device) -> dict[str, float]:
    """Test accuracy and balanced accuracy."""
    pred = predict(model, dataset, dataset.x_test, device=device)
    y = dataset.y_test.numpy()
    return {"accuracy": accuracy(y, pred), "balanced_accuracy": balanced_accuracy(y, pred)}
