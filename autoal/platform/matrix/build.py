"""The matrix (:func:`build_matrix`): per setting each method's mean ± std over its own seeds,
its rank, and its paired difference to the setting's best single strategy; mean ranks across
settings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from autoal.errors import DataError
from autoal.platform.matrix.records import MatrixRun, as_runs
from autoal.platform.matrix.stats import ALPHA, MIN_PAIRS, REFERENCE, bootstrap_ci, verdict, wilcoxon_signed_rank_p


@dataclass(frozen=True)
class MethodStats:
    """One method in one setting, over its own seeds (std: sample std, NaN below 2 seeds)."""

    method: str
    seeds: tuple[int, ...]
    aubc_mean: float
    aubc_std: float
    final_accuracy_mean: float
    final_accuracy_std: float
    final_balanced_accuracy_mean: float
    final_balanced_accuracy_std: float
    aubc_balanced_mean: float
    aubc_balanced_std: float
    rank: int


@dataclass(frozen=True)
class PairedDiff:
    """``method`` − ``reference`` (AUBC) over the ``seeds`` both ran."""

    method: str
    reference: str
    seeds: tuple[int, ...]
    mean_diff: float
    wins: int
    ties: int
    losses: int
    p_wilcoxon: float
    ci_low: float
    ci_high: float
    verdict: str

    @property
    def n(self) -> int:
        return len(self.seeds)


@dataclass(frozen=True)
class SettingTable:
    setting: str
    long_tailed: bool
    stats: dict[str, MethodStats]  # rank order
    best_single: str | None
    paired: dict[str, PairedDiff]  # every method (the best single's own entry: verdict "reference")

    @property
    def ranking(self) -> list[str]:
        return list(self.stats)


@dataclass(frozen=True)
class MatrixReport:
    settings: dict[str, SettingTable]
    methods: tuple[str, ...]
    single_strategies: frozenset[str]
    mean_rank: dict[str, float]  # over the settings a method appears in
    runs: tuple[MatrixRun, ...]
    alpha: float = ALPHA
    min_pairs: int = MIN_PAIRS
    resamples: int = 10_000
    level: float = 0.95

    def verdicts(self) -> dict[str, dict[str, str]]:
        """method -> setting -> verdict, for the settings where the method and a best single
        strategy exist."""
        return {m: {s: t.paired[m].verdict for s, t in self.settings.items() if m in t.paired} for m in self.methods}


def _mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")


def _ordered(names: Iterable[str], order: Sequence[str] | None) -> list[str]:
    seen = list(dict.fromkeys(names))
    first = [n for n in (order or []) if n in seen]
    return first + [n for n in seen if n not in first]


def build_matrix(
    runs: Iterable[MatrixRun | Mapping[str, Any]],
    single_strategies: Iterable[str] | None = None,
    *,
    order: Sequence[str] | None = None,
    setting_order: Sequence[str] | None = None,
    alpha: float = ALPHA,
    min_pairs: int = MIN_PAIRS,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> MatrixReport:
    """The matrix's statistics from run records (dicts are validated by :meth:`MatrixRun.from_dict`).

    ``single_strategies``: the methods that count as single strategies (the best of them in a
    setting is the reference of the paired comparisons); default every method whose name does
    not start with "autoal". ``order``/``setting_order``: methods/settings listed first, in this
    order (the rest in order of first appearance). Two runs of one (setting, method, seed) are
    an error (:func:`merge_runs` resolves re-runs). Every bootstrap uses ``seed``."""
    rs = as_runs(runs)
    if not rs:
        raise DataError("no run records: the quality matrix needs at least one run")
    seen: dict[tuple[str, str, int], int] = {}
    for i, r in enumerate(rs):
        key = (r.setting, r.method, r.seed)
        if key in seen:
            raise DataError(
                f"run records {seen[key]} and {i}: two runs of setting {r.setting!r}, method "
                f"{r.method!r}, seed {r.seed} (merge_runs keeps the later one)"
            )
        seen[key] = i
    methods = _ordered((r.method for r in rs), order)
    singles = (
        frozenset(single_strategies)
        if single_strategies is not None
        else frozenset(m for m in methods if not m.startswith("autoal"))
    )
    settings = {}
    for s in _ordered((r.setting for r in rs), setting_order):
        sub = [r for r in rs if r.setting == s]
        flags = {r.long_tailed for r in sub}
        if len(flags) > 1:
            raise DataError(f"setting {s!r}: some runs are marked long-tailed and some not")
        settings[s] = _setting_table(s, sub, methods, singles, alpha, min_pairs, resamples, level, seed)
    mean_rank = {}
    for m in methods:
        ranks = [t.stats[m].rank for t in settings.values() if m in t.stats]
        mean_rank[m] = float(np.mean(ranks))
    return MatrixReport(
        settings=settings,
        methods=tuple(methods),
        single_strategies=singles,
        mean_rank=mean_rank,
        runs=tuple(rs),
        alpha=alpha,
        min_pairs=min_pairs,
        resamples=resamples,
        level=level,
    )


def _setting_table(
    setting: str,
    runs: list[MatrixRun],
    methods: list[str],
    singles: frozenset[str],
    alpha: float,
    min_pairs: int,
    resamples: int,
    level: float,
    seed: int,
) -> SettingTable:
    by = {m: {r.seed: r for r in runs if r.method == m} for m in methods}
    by = {m: v for m, v in by.items() if v}
    stats = {}
    for m, seeds in by.items():
        rr = [seeds[k] for k in sorted(seeds)]
        a, f = _mean_std([r.aubc for r in rr]), _mean_std([r.final_accuracy for r in rr])
        fb, ab = _mean_std([r.final_balanced_accuracy for r in rr]), _mean_std([r.aubc_balanced for r in rr])
        stats[m] = (tuple(sorted(seeds)), a, f, fb, ab)
    # competition ranking ("1224") by mean AUBC; equal means share the better rank
    means = {m: v[1][0] for m, v in stats.items()}
    ranked = sorted(stats, key=lambda m: -means[m])
    table = {
        m: MethodStats(m, v[0], *v[1], *v[2], *v[3], *v[4], rank=1 + sum(means[o] > means[m] for o in stats))
        for m in ranked
        for v in [stats[m]]
    }
    cands = [m for m in methods if m in singles and m in by]
    best = max(cands, key=lambda m: means[m]) if cands else None  # ties: the first in method order
    paired = {}
    if best is not None:
        for m in by:
            shared = tuple(sorted(set(by[m]) & set(by[best])))
            d = [by[m][k].aubc - by[best][k].aubc for k in shared]
            mean_d = float(np.mean(d)) if d else float("nan")
            if m == best:
                p, ci, v = float("nan"), (float("nan"), float("nan")), REFERENCE
            else:
                p = wilcoxon_signed_rank_p(d)
                ci = bootstrap_ci(d, resamples, level, seed)
                v = verdict(len(d), mean_d, p, alpha, min_pairs)
            paired[m] = PairedDiff(
                m,
                best,
                shared,
                mean_d,
                sum(x > 0 for x in d),
                sum(x == 0 for x in d),
                sum(x < 0 for x in d),
                p,
                ci[0],
                ci[1],
                v,
            )
    return SettingTable(setting, bool(runs[0].long_tailed), table, best, paired)
