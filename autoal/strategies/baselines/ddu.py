"""DDU: Deep Deterministic Uncertainty (Mukhoti, Kirsch, van Amersfoort, Torr, Gal, CVPR 2023)."""

from __future__ import annotations

import math

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.selection import top_n
from autoal.strategies.base import QueryContext, Strategy
from autoal.strategies.baselines._common import require_ctx
from autoal.strategies.registry import register_strategy
from autoal.errors import ConfigError

AGGREGATES = ("max", "logsumexp")


class GaussianDensity:
    """Gaussian discriminant analysis on features: one Gaussian per class (mean and full
    covariance from the labeled samples of that class), in float64.

    Covariances are made positive definite the way DDU's reference code does it: the smallest
    jitter from a ladder that lets every class's Cholesky factorization succeed is added to all
    diagonals. Here the ladder is 0, then 10⁻¹² … 10⁰ times the mean feature variance (scale-aware,
    where the reference code's absolute ladder 10⁻³⁰⁸ … 10⁻¹ ignores the feature scale). When a
    covariance is singular by construction (a class with no more samples than feature
    dimensions, the usual case in active learning), a factorization can still "succeed" on
    rounding-level pivots, and the densities would then rank by rounding noise; the ladder then
    starts at ``min_jitter`` times the mean variance instead. A class with fewer than two
    labeled samples takes the pooled within-class covariance; a class with none gets no
    density."""

    def __init__(
        self, features: torch.Tensor, labels: torch.Tensor, num_classes: int, min_jitter: float = 1e-6
    ) -> None:
        x = features.double()
        y = torch.as_tensor(labels, device=x.device).long()
        d = x.shape[1]
        present = [c for c in range(num_classes) if int((y == c).sum()) > 0]
        if not present:
            raise ValueError("DDU: no labeled samples to fit class densities on")
        self.classes = torch.tensor(present, device=x.device)
        means = torch.stack([x[y == c].mean(0) for c in present])
        centred = x - means[torch.searchsorted(self.classes, y)]
        dof = max(x.shape[0] - len(present), 1)
        pooled = centred.T @ centred / dof
        covs, deficient = [], False
        for i, c in enumerate(present):
            xc = x[y == c] - means[i]
            covs.append(xc.T @ xc / (xc.shape[0] - 1) if xc.shape[0] >= 2 else pooled)
            deficient |= (xc.shape[0] - 1 if xc.shape[0] >= 2 else dof) < d
        cov = torch.stack(covs)
        scale = float(torch.diagonal(pooled).mean()) if x.shape[0] > len(present) else 0.0
        scale = scale if scale > 0 else float(x.var(0, correction=0).mean()) or 1.0
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        self.jitter = None
        ladder = [0.0] + [10.0**e for e in range(-12, 1)]
        if deficient and min_jitter > 0:
            ladder = [float(min_jitter)] + [r for r in ladder if r > 1.000001 * float(min_jitter)]
        for rel in ladder:
            j = rel * scale
            chol, info = torch.linalg.cholesky_ex(cov + j * eye)
            if bool((info == 0).all()) and bool(torch.isfinite(chol).all()):
                self.jitter = j
                break
        if self.jitter is None:
            raise ValueError("DDU: class covariances stay singular with every jitter up to the feature variance")
        self.means = means
        self.chol = chol
        self.log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        self.dim = d

    def class_log_density(self, features: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """(N, C_present) log N(x | μ_c, Σ_c)."""
        x = features.double().to(self.means.device)
        out = []
        const = self.dim * math.log(2.0 * math.pi)
        for s in range(0, x.shape[0], chunk):
            xb = x[s : s + chunk]
            cols = []
            for c in range(self.means.shape[0]):
                sol = torch.linalg.solve_triangular(self.chol[c], (xb - self.means[c]).T, upper=False)
                cols.append(-0.5 * (const + self.log_det[c] + (sol * sol).sum(0)))
            out.append(torch.stack(cols, 1))
        return torch.cat(out) if out else torch.zeros(0, self.means.shape[0], dtype=x.dtype, device=x.device)

    def log_density(self, features: torch.Tensor, aggregate: str = "max") -> torch.Tensor:
        """Feature log-density: max over classes of the class log-densities, or their
        log-sum-exp (DDU's reference code, equal-weight mixture)."""
        ll = self.class_log_density(features)
        return ll.max(1).values if aggregate == "max" else torch.logsumexp(ll, 1)


@register_strategy("ddu")
class DDU(Strategy):
    """DDU (Mukhoti, Kirsch, van Amersfoort, Torr, Gal: "Deep Deterministic Uncertainty: A New
    Simple Baseline", CVPR 2023), as an acquisition function: epistemic uncertainty is a low
    feature-space density under a Gaussian discriminant analysis (one Gaussian per class) fitted
    on the labeled set's embeddings; the unlabeled samples of lowest density are queried first.

    Choices where the paper leaves room: (1) features are the task model's penultimate
    embeddings from the shared cache and the labeled cache; the task model is the platform's
    shared backbone, without the spectral normalization DDU pairs with it (a model change that
    would alter every other strategy's model too); (2) the density is the maximum over classes
    of the class log-density by default (``aggregate: logsumexp`` gives the reference code's
    equal-weight mixture); (3) singular covariances (fewer labeled samples per class than
    embedding dimensions) get the smallest jitter of a scale-aware ladder, at least
    ``min_jitter`` times the mean feature variance (see :class:`GaussianDensity`); (4) ties
    broken by the round's seeded order.
    """

    needs = frozenset({"embeddings", "labeled_cache", "dataset"})

    def __init__(self, aggregate: str = "max", min_jitter: float = 1e-6) -> None:
        if aggregate not in AGGREGATES:
            raise ConfigError(
                f"strategy (ddu).aggregate: unknown value {aggregate!r}; valid choices: {', '.join(AGGREGATES)}"
            )
        self.aggregate = aggregate
        self.min_jitter = float(min_jitter)
        self._density: GaussianDensity | None = None

    def fit(self, features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> GaussianDensity:
        self._density = GaussianDensity(features, labels, num_classes, self.min_jitter)
        return self._density

    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        if self._density is None:
            raise ValueError("strategy 'ddu' has no fitted density: call query(ctx) or fit() first")
        return -self._density.log_density(cache.embeddings, self.aggregate).float()

    def query(self, ctx: QueryContext) -> np.ndarray:
        """Fit the class-conditional Gaussians on L's embeddings, then rank U by density."""
        ctx = require_ctx(ctx, self.name, "labeled_cache", "dataset")
        lab = ctx.labeled_cache
        y = ctx.dataset.y_train[torch.as_tensor(lab.indices, dtype=torch.long)]
        self.fit(lab.embeddings, y, ctx.dataset.num_classes)
        ctx.log("ddu/jitter", float(self._density.jitter))
        return ctx.unlabeled[top_n(self.compute_score(ctx.cache), ctx.n, ctx.rng)]
