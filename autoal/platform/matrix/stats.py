"""The matrix's paired statistics: the exact Wilcoxon signed-rank p (Wilcoxon 1945), the
percentile bootstrap interval of a mean difference (Efron & Tibshirani 1993, §13.3) and the
verdict a comparison may claim."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: fewer paired seeds than this: no verdict ("no claim") and a caution next to p and the interval
MIN_PAIRS = 5
ALPHA = 0.05
#: verdicts of :func:`verdict`; the best single strategy itself is the "reference"
BETTER, WORSE, LEVEL, NO_CLAIM, REFERENCE = "better", "worse", "level", "no claim", "reference"
#: exact null distribution of the signed-rank statistic up to this many non-zero differences
EXACT_MAX = 200


def wilcoxon_signed_rank_p(diffs: Sequence[float]) -> float:
    """Two-sided p of the Wilcoxon signed-rank test (Wilcoxon 1945) of paired differences.

    Zero differences are dropped (Wilcoxon's treatment, scipy's default ``zero_method``);
    |d| equal to 12 decimals are ties and get mid-ranks. The null distribution of T+ (the sum
    of the positive differences' ranks) is computed exactly, ties included, for up to
    :data:`EXACT_MAX` non-zero differences (without ties this is scipy's exact p); above, the
    normal approximation. p = min(1, 2·min(P(T+ ≤ t), P(T+ ≥ t))). NaN for fewer than 2
    differences; 1.0 when all are zero (no evidence of a difference). With 5 pairs the
    smallest p is 2/32 = 0.0625, so p < 0.05 needs at least 6 pairs."""
    from scipy.stats import norm, rankdata

    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return float("nan")
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    ranks2 = np.rint(2 * rankdata(np.round(np.abs(d), 12), method="average")).astype(np.int64)  # 2·mid-rank
    t2 = int(ranks2[d > 0].sum())
    total2 = int(ranks2.sum())
    if d.size > EXACT_MAX:
        z = (t2 - total2 / 2) / math.sqrt(float((ranks2.astype(float) ** 2).sum()) / 4)
        return float(min(1.0, 2 * norm.sf(abs(z))))
    dist = np.zeros(total2 + 1)
    dist[0] = 1.0
    for r in ranks2:  # each rank enters T+ with probability 1/2, independently
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:-r]
        dist = 0.5 * (dist + shifted)
    lower, upper = float(dist[: t2 + 1].sum()), float(dist[t2:].sum())
    return float(min(1.0, 2 * min(lower, upper)))


def bootstrap_ci(
    diffs: Sequence[float], resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (Efron & Tibshirani 1993, §13.3):
    ``resamples`` resamples with replacement drawn by ``numpy.random.default_rng(seed)``, so the
    same input gives the same interval. (NaN, NaN) for no differences; a point for one."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"bootstrap_ci: level must be in (0, 1) and resamples >= 1, got {level}, {resamples}")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def verdict(n: int, mean_diff: float, p: float, alpha: float = ALPHA, min_pairs: int = MIN_PAIRS) -> str:
    """What a paired comparison with the best single strategy may claim: "no claim" with fewer
    than ``min_pairs`` pairs; "better"/"worse" (by the sign of the mean Δ) when the Wilcoxon
    p < ``alpha``; otherwise "level" (no detectable difference). The exact test cannot reach
    p < 0.05 on 5 pairs, so at the default n ≥ 5 a claim needs 6 or more paired seeds."""
    if n < min_pairs:
        return NO_CLAIM
    if math.isfinite(p) and p < alpha and mean_diff != 0:
        return BETTER if mean_diff > 0 else WORSE
    return LEVEL
