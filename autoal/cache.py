"""The per-round shared cache (DESIGN.md §3.1): one backbone pass of the task model over a set
of samples gives class probabilities, penultimate embeddings, and the moments of T Monte-Carlo
dropout samples of the class probabilities from T head passes over the cached embeddings
(:mod:`autoal.mc`). Every candidate strategy is a pure function of this cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autoal.data.base import ALDataset
from autoal.device import autocast, inference_batch, prepare_batch
from autoal.mc import MCSummary, class_probabilities
from autoal.models.base import Backbone

__all__ = [
    "PoolCache",
    "class_probabilities",
    "embed_pool",
    "cache_from_embeddings",
    "compute_cache",
    "class_cache_bytes",
]


def class_cache_bytes(n_pool: int, num_classes: int, mc: bool) -> int:
    """The class-sized part of a round's pool cache in float32: probabilities and logits, and with
    MC dropout the mean and std of the T passes' probabilities — four (N, C) arrays at most, held
    together while a strategy scores. (The embeddings, (N, D), do not grow with the classes.)"""
    return 4 * int(n_pool) * int(num_classes) * (4 if mc else 2)


@dataclass
class PoolCache:
    """Model outputs for the samples ``indices`` (dataset pool indices), row-aligned.

    probs: (N, C) softmax probabilities; embeddings: (N, D); logits: (N, C); mc: the moments
    of T Monte-Carlo dropout samples (:class:`~autoal.mc.MCSummary`) or None."""

    indices: np.ndarray
    probs: torch.Tensor
    embeddings: torch.Tensor
    logits: torch.Tensor
    mc: MCSummary | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, rows: np.ndarray | torch.Tensor) -> "PoolCache":
        """The cache restricted to the given row positions (not dataset indices)."""
        r = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=self.probs.device)
        return PoolCache(
            indices=self.indices[np.asarray(rows)],
            probs=self.probs[r],
            embeddings=self.embeddings[r],
            logits=self.logits[r],
            mc=None if self.mc is None else self.mc.subset(r),
        )

    def to(self, device: torch.device | str) -> "PoolCache":
        return PoolCache(
            self.indices,
            self.probs.to(device),
            self.embeddings.to(device),
            self.logits.to(device),
            None if self.mc is None else self.mc.to(device),
        )

    @staticmethod
    def concat(parts: list["PoolCache"]) -> "PoolCache":
        """Join shards (e.g. from parallel scoring actors) in the given order."""
        mc = None if parts[0].mc is None else MCSummary.concat([p.mc for p in parts])
        return PoolCache(
            np.concatenate([p.indices for p in parts]),
            torch.cat([p.probs for p in parts]),
            torch.cat([p.embeddings for p in parts]),
            torch.cat([p.logits for p in parts]),
            mc,
        )


@torch.no_grad()
def embed_pool(
    model: Backbone,
    dataset: ALDataset,
    indices: np.ndarray,
    *,
    batch_size: int = 1024,
    device: torch.device | None = None,
    images: torch.Tensor | None = None,
) -> torch.Tensor:
    """The backbone pass: eval-mode embeddings of ``dataset.x_train[indices]`` under the
    evaluation transform, in chunks of ``batch_size`` (float32, on ``device``; on CPU at most
    :data:`~autoal.device.CPU_INFERENCE_CHUNK` images, whose activations stay in cache)."""
    device = device or next(model.parameters()).device
    batch_size = inference_batch(batch_size, device)
    model.eval()
    source = images if images is not None else dataset.x_train
    idx_t = torch.from_numpy(np.asarray(indices, dtype=np.int64))
    embs = []
    for start in range(0, len(idx_t), batch_size):
        sel = idx_t[start : start + batch_size]
        xb = prepare_batch(source[sel.to(source.device)], device)
        with autocast(device):
            embs.append(model.embed(dataset.eval_transform(xb)).float())
    return torch.cat(embs) if embs else torch.zeros(0, model.embedding_dim, device=device)


@torch.no_grad()
def cache_from_embeddings(
    model: Backbone,
    indices: np.ndarray,
    embeddings: torch.Tensor,
    *,
    mc_samples: int = 500,
    seed: int = 0,
    mc_masks: str = "consistent",
) -> PoolCache:
    """The head passes: logits, probabilities and the moments of ``mc_samples`` dropout passes
    from cached embeddings (one seeded generator over the whole set, so shards joined before
    this step give exactly the single-process result)."""
    model.eval()
    logits = model.fc(embeddings)
    probs = class_probabilities(logits)
    mc = None
    if mc_samples > 0:
        gen = torch.Generator(device=embeddings.device).manual_seed(int(seed))
        mc = model.mc_summary(embeddings, mc_samples, generator=gen, masks=mc_masks)
    return PoolCache(
        indices=np.asarray(indices, dtype=np.int64), probs=probs, embeddings=embeddings, logits=logits, mc=mc
    )


def compute_cache(
    model: Backbone,
    dataset: ALDataset,
    indices: np.ndarray,
    *,
    mc_samples: int = 500,
    batch_size: int = 1024,
    device: torch.device | None = None,
    seed: int = 0,
    images: torch.Tensor | None = None,
    mc_masks: str = "consistent",
) -> PoolCache:
    """One eval-mode backbone pass over ``dataset.x_train[indices]`` (evaluation transform only),
    then ``mc_samples`` dropout head passes over the embeddings. Deterministic for a given seed.

    ``images`` may supply the pool already resident on ``device`` (GPU path)."""
    emb = embed_pool(model, dataset, indices, batch_size=batch_size, device=device, images=images)
    return cache_from_embeddings(model, indices, emb, mc_samples=mc_samples, seed=seed, mc_masks=mc_masks)
