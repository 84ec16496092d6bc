"""Paired statistics of a report: each arm against a reference arm over the seeds both finished
(Wilcoxon signed-rank and paired t-test p-values, with the claim they allow), and the
win/loss matrix of every pair of arms."""

from __future__ import annotations

import warnings
from typing import Sequence

from autoal.platform.report.runs import is_missing
from autoal.platform.report.tables import markdown

MIN_PAIRS = 5  # below this many paired seeds, p-values are shown with a caution and never as significant


def paired_comparison(trials, reference: str, order: Sequence[str], metric: str = "aubc"):
    """Each arm against ``reference`` over the seeds both finished: mean and std of the paired
    differences (arm − reference), wins/ties/losses, Wilcoxon signed-rank and paired t p-values
    (NaN where undefined: fewer than 2 pairs, or all differences zero)."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    done = trials[trials["status"] == "FINISHED"]
    ref = done[done["arm"] == reference].set_index("seed")[metric]
    rows = []
    for arm in order:
        if arm == reference:
            continue
        other = done[done["arm"] == arm].set_index("seed")[metric]
        seeds = sorted(set(ref.index) & set(other.index))
        if not seeds:
            continue
        d = np.asarray([other[s] - ref[s] for s in seeds], dtype=float)
        p_w = p_t = float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(d) >= 2 and np.any(d != 0):
                try:
                    p_w = float(stats.wilcoxon(d).pvalue)
                except ValueError:
                    pass
                if np.std(d) > 0:
                    p_t = float(stats.ttest_rel([other[s] for s in seeds], [ref[s] for s in seeds]).pvalue)
        rows.append(
            {
                "arm": arm,
                "reference": reference,
                "metric": metric,
                "pairs": len(seeds),
                "mean_diff": float(d.mean()),
                "std_diff": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                "wins": int((d > 0).sum()),
                "ties": int((d == 0).sum()),
                "losses": int((d < 0).sum()),
                "p_wilcoxon": p_w,
                "p_ttest": p_t,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "arm",
            "reference",
            "metric",
            "pairs",
            "mean_diff",
            "std_diff",
            "wins",
            "ties",
            "losses",
            "p_wilcoxon",
            "p_ttest",
        ],
    )


def verdict(pairs: int, p_wilcoxon: float, alpha: float = 0.05) -> str:
    """What a paired comparison may claim: nothing below :data:`MIN_PAIRS` pairs (the Wilcoxon
    test cannot reach p < 0.05 with fewer than 6 pairs, and a t-test on 2-4 differences is
    noise), else significant or not at ``alpha`` (Wilcoxon signed-rank)."""
    if pairs < MIN_PAIRS:
        return f"too few pairs (n < {MIN_PAIRS}): no claim"
    if not is_missing(p_wilcoxon) and p_wilcoxon < alpha:
        return f"**significant** (Wilcoxon p < {alpha:g})"
    return "not significant"


def paired_markdown(paired) -> str:
    if paired.empty:
        return "_no paired seeds_"
    rows = [
        [
            r.arm,
            int(r.pairs),
            f"{r.mean_diff:+.4f} ± {r.std_diff:.4f}",
            f"{r.wins}/{r.ties}/{r.losses}",
            _p(r.p_wilcoxon) + ("⚠" if r.pairs < MIN_PAIRS else ""),
            _p(r.p_ttest) + ("⚠" if r.pairs < MIN_PAIRS else ""),
            verdict(int(r.pairs), r.p_wilcoxon),
        ]
        for r in paired.itertuples()
    ]
    return markdown(
        [
            "arm",
            "pairs",
            f"Δ{paired['metric'].iloc[0]} vs {paired['reference'].iloc[0]} (mean ± std)",
            "wins/ties/losses",
            "Wilcoxon p",
            "paired t p",
            "verdict",
        ],
        rows,
    )


def _p(v: float) -> str:
    return "–" if is_missing(v) else f"{v:.3g}"


def win_loss_matrix(trials, order: Sequence[str], metric: str = "aubc"):
    """(wins, pairs): wins[i][j] = seeds on which arm i's ``metric`` beat arm j's, over the
    seeds both finished (pairs[i][j])."""
    import numpy as np

    done = trials[trials["status"] == "FINISHED"]
    by_arm = {a: done[done["arm"] == a].set_index("seed")[metric] for a in order}
    n = len(order)
    wins, pairs = np.zeros((n, n), dtype=int), np.zeros((n, n), dtype=int)
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            if i == j:
                continue
            seeds = sorted(set(by_arm[a].index) & set(by_arm[b].index))
            pairs[i, j] = len(seeds)
            wins[i, j] = sum(1 for s in seeds if by_arm[a][s] > by_arm[b][s])
    return wins, pairs
