"""A label-free embedding of the pool for coverage strategies (DESIGN.md §3.10).

With 20 labels the task model's embedding is shaped by 20 samples; clusters drawn in it say more
about those samples than about the pool. Coverage (TypiClust, KMeans, Coreset) needs distances
that reflect the data, not the labels: here the top principal components of the pixels, computed
once per run from the whole pool (labeled and unlabeled), deterministic for a given data set and
seed. (TypiClust's authors use a self-supervised encoder; PCA is its cheapest stand-in and costs a
second on MNIST-sized pools.) :func:`joint_embedding` puts such a space beside the task model's
embedding, each scaled alike (the credit rule's ``coverage_space: joint``).
"""

from __future__ import annotations

import torch

#: images per chunk when flattening a pool to float (bounds the float copy's memory)
CHUNK = 8192


@torch.no_grad()
def pixel_pca(images: torch.Tensor, dim: int, seed: int = 0) -> torch.Tensor:
    """(N, min(dim, D, N)) coordinates of ``images`` ((N, ...) uint8 or float) on their top
    principal components, pixels scaled to [0, 1] for uint8; randomized SVD
    (:func:`torch.pca_lowrank`, 4 power iterations) under a fixed seed, signs fixed so that each
    component's largest-magnitude coordinate is positive (the same result on every call)."""
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(f"pixel_pca: expected a non-empty batch of samples; got shape {tuple(images.shape)}")
    n = images.shape[0]
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    x = torch.cat([images[i : i + CHUNK].reshape(min(CHUNK, n - i), -1).float() / scale for i in range(0, n, CHUNK)])
    q = max(1, min(int(dim), x.shape[1], n))
    mean = x.mean(0, keepdim=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        _, _, v = torch.pca_lowrank(x - mean, q=q, center=False, niter=4)
    z = (x - mean) @ v[:, :q]
    sign = torch.sign(z.gather(0, z.abs().argmax(0, keepdim=True)))
    sign[sign == 0] = 1.0
    return z * sign


def _unit_spread(pool: torch.Tensor, labeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both blocks centred on their joint mean and scaled so that a point's mean squared distance
    to it is 1 (a block of any dimension then weighs the same in a concatenation)."""
    allx = torch.cat([pool, labeled]).float()
    mean = allx.mean(0, keepdim=True)
    spread = ((allx - mean) ** 2).sum(1).mean().sqrt().clamp_min(1e-12)
    return (pool.float() - mean) / spread, (labeled.float() - mean) / spread


def joint_embedding(
    *spaces: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The concatenation of several embeddings of the same (pool, labeled) samples, each centred
    and scaled to a unit root-mean-square distance from its mean first, so that squared distances
    are the sum of the spaces' normalized squared distances: a sample far from the labeled set in
    any space stays far."""
    if not spaces:
        raise ValueError("joint_embedding: expected at least one (pool, labeled) pair")
    blocks = [_unit_spread(p, l) for p, l in spaces]
    return torch.cat([b[0] for b in blocks], 1), torch.cat([b[1] for b in blocks], 1)
