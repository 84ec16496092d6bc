"""How often the credit rule's long-tail guard can see a long tail in its first labeled set
(issue 22; DESIGN.md §3.10 step 4). A simulation, no training.

The guard fires when Pearson's χ² test on the class counts of the first (random) labeled set
rejects a uniform class prior at ``imbalance_alpha``. Those counts are a draw without
replacement from the pool; the pool is the long-tail profile ``dataset.imbalance_ratio`` builds
(``autoal.data.subset.long_tail_quotas``). This module draws many first sets from such pools and
reports, per imbalance ratio R and first-set size n:

- ``chi2``: the fraction of first sets on which the guard fires (R = 1: its false-fire rate);
- ``lrt``: the same for the likelihood-ratio test of a uniform prior against the exponential
  profile itself (counts sorted, the ratio fitted by maximum likelihood on a grid), with its
  threshold set by simulation so that it fires on balanced pools exactly as often as χ² does.
  It knows the shape of the tail, so it bounds what any test on the first set's counts could
  gain over χ².

    python bench/guard_power.py                        # the table of bench/README.md
    python bench/guard_power.py --sizes 20 50 --ratios 1 5 10 --alpha 0.2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoal.data.subset import long_tail_quotas  # noqa: E402
from autoal.strategies.autoal.label_credit import imbalance_pvalues  # noqa: E402


def first_set_counts(quotas: list[int], n: int, trials: int, rng: np.random.Generator) -> np.ndarray:
    """``trials`` class-count vectors of n samples drawn without replacement from a pool holding
    ``quotas[c]`` samples of class c."""
    if n > sum(quotas):
        raise ValueError(f"first-set size {n} exceeds the pool ({sum(quotas)} samples)")
    return rng.multivariate_hypergeometric(np.asarray(quotas, dtype=np.int64), n, size=trials)


def _profile_log_shares(num_classes: int, ratios: np.ndarray) -> np.ndarray:
    """log class shares of the exponential profile, classes by rank, one row per ratio."""
    rank = np.arange(num_classes) / max(num_classes - 1, 1)
    w = ratios[:, None] ** (-rank[None, :])
    return np.log(w / w.sum(1, keepdims=True))


def lrt_statistic(counts: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per row of ``counts``: max over the profile's ratio R ≥ 1 (a grid) of the multinomial
    log-likelihood of the sorted counts, minus that of a uniform prior (R = 1, the grid's first
    point). 0 when the uniform prior fits best."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    grid = np.geomspace(1.0, 1000.0, 200) if grid is None else np.asarray(grid, dtype=np.float64)
    if grid[0] != 1.0:
        raise ValueError("the ratio grid must start at 1 (the uniform prior)")
    ranked = -np.sort(-counts, axis=1)
    ll = ranked @ _profile_log_shares(counts.shape[1], grid).T
    return ll.max(1) - ll[:, 0]


def guard_power(
    ratios: list[float],
    sizes: list[int],
    *,
    num_classes: int = 10,
    n_max: int = 500,
    alpha: float = 0.2,
    trials: int = 20000,
    seed: int = 0,
) -> list[dict]:
    """One row per (ratio, first-set size): the fraction of first sets on which the χ² guard at
    ``alpha`` fires, and the fraction on which the likelihood-ratio test fires at the same
    false-fire rate (its threshold: the quantile of its statistic on balanced pools of the same
    size). Pools follow ``long_tail_quotas(n_max, ratio, num_classes)``."""
    rng = np.random.default_rng(seed)
    pvalue = imbalance_pvalues
    rows = []
    for n in sizes:
        null = first_set_counts(long_tail_quotas(n_max, 1.0, num_classes), n, trials, rng)
        false_fire = float((pvalue(null) < alpha).mean())
        threshold = float(np.quantile(lrt_statistic(null), 1.0 - false_fire)) if false_fire > 0 else np.inf
        for ratio in ratios:
            counts = first_set_counts(long_tail_quotas(n_max, ratio, num_classes), n, trials, rng)
            rows.append(
                {
                    "ratio": float(ratio),
                    "first_set": int(n),
                    "chi2": float((pvalue(counts) < alpha).mean()),
                    "lrt": float((lrt_statistic(counts) > threshold).mean()),
                }
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ratios", type=float, nargs="+", default=[1, 2, 5, 10, 20, 50, 100])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--n-max", type=int, default=500, help="samples of the largest class in the pool")
    ap.add_argument("--alpha", type=float, default=0.2, help="the guard's level (strategy.params.imbalance_alpha)")
    ap.add_argument("--trials", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rows = guard_power(
        a.ratios, a.sizes, num_classes=a.classes, n_max=a.n_max, alpha=a.alpha, trials=a.trials, seed=a.seed
    )
    print(
        f"| first set | imbalance ratio | χ² guard fires (α = {a.alpha:g}) | likelihood-ratio test, same false-fire rate |"
    )
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['first_set']} | {r['ratio']:g} | {r['chi2']:.3f} | {r['lrt']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
