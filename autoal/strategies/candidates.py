"""Random and the seven candidate strategies of AutoAL's pool, in the paper's order:
Entropy, Margin, LeastConfidence, KMeans, BALD, VarRatio, MeanSTD (DESIGN.md §2, §3.1)."""

from __future__ import annotations

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.distances import sq_dists
from autoal.kmeans import kmeans_picks
from autoal.mc import MCSummary
from autoal.strategies import scores
from autoal.strategies.base import PoolStrategy, ScoreStrategy
from autoal.strategies.registry import register_strategy

#: The paper's order; candidate pools of size 1/3/5/7 take prefixes of it.
PAPER_CANDIDATES = ("entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std")


@register_strategy("random")
class RandomSampling(ScoreStrategy):
    """Uniform random sampling, seeded by the round's RNG."""

    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        return torch.zeros(len(cache), device=cache.probs.device)  # all ties: the seeded order decides


@register_strategy("entropy")
class EntropySampling(ScoreStrategy):
    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        return scores.entropy(cache.probs)


@register_strategy("margin")
class MarginSampling(ScoreStrategy):
    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        return scores.margin(cache.probs)


@register_strategy("least_confidence")
class LeastConfidence(ScoreStrategy):
    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        return scores.least_confidence(cache.probs)


@register_strategy("bald")
class BALD(ScoreStrategy):
    needs = frozenset({"mc"})

    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        return scores.bald(_mc(cache, self.name))


@register_strategy("var_ratio")
class VarRatio(ScoreStrategy):
    needs = frozenset({"mc"})

    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        return scores.var_ratio(_mc(cache, self.name))


@register_strategy("mean_std")
class MeanSTD(ScoreStrategy):
    needs = frozenset({"mc"})

    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        return scores.mean_std(_mc(cache, self.name))


@register_strategy("kmeans")
class KMeansSampling(PoolStrategy):
    """k-means with k = n on the embeddings; the member nearest each centre is picked (an
    indicator, not a ranking). Its rank score is 1 on the picks and, elsewhere, decreases with
    the distance to the nearest centre."""

    needs = frozenset({"embeddings"})

    def __init__(self, iters: int = 20) -> None:
        self.iters = iters

    def select_positions(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> np.ndarray:
        seed = int(rng.integers(0, 2**31 - 1))
        return kmeans_picks(cache.embeddings, n, seed=seed, iters=self.iters).cpu().numpy()

    def rank_score(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> torch.Tensor:
        """1 on the picks; elsewhere in [0, 1), decreasing with the distance to the nearest pick."""
        picks = torch.as_tensor(self.select_positions(cache, n, rng), device=cache.embeddings.device)
        emb = cache.embeddings.float()
        d = sq_dists(emb, emb[picks]).min(1).values
        m = len(d)
        order = torch.argsort(d, stable=True)
        r = torch.empty(m, device=emb.device)
        r[order] = torch.linspace(0.999, 0.0, m, device=emb.device) if m > 1 else torch.zeros(1, device=emb.device)
        r[picks] = 1.0
        return r


def _mc(cache: PoolCache, name: str) -> MCSummary:
    if cache.mc is None:
        raise ValueError(f"strategy {name!r} needs Monte-Carlo dropout samples: set al.mc_samples > 0")
    return cache.mc
