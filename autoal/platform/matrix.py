"""The quality matrix's tables and figures: settings × methods × paired seeds of AL runs.

Pure computation over run records (no Ray, no MLflow; matplotlib only inside the figure
functions, Agg backend): the sweep report hands in one record per finished run, and JSON-lines
files of runs (``bench/gpu_quality.py``'s, the legacy ``bench/quality.py`` files of
``bench/reference/``) are read by :func:`read_jsonl_runs`.

Per setting: each method's mean ± std AUBC and final accuracy over *its own* seeds (final
balanced accuracy too when the setting is long-tailed), its rank by mean AUBC, and its paired
difference to the setting's **best single strategy** (the single strategy with the highest mean
AUBC) over the seeds both ran: mean Δ, wins/ties/losses, the two-sided Wilcoxon signed-rank p
(Wilcoxon 1945; exact, :func:`wilcoxon_signed_rank_p`) and a percentile-bootstrap interval of
the mean Δ (Efron & Tibshirani 1993, §13.3; :func:`bootstrap_ci`). Across settings: each
method's mean rank over the settings it appears in, and a verdict per method and setting
(:func:`verdict`).

Record fields (:class:`MatrixRun`): ``setting``, ``method``, ``seed``, ``aubc``,
``final_accuracy`` (required); ``final_balanced_accuracy``, ``aubc_balanced``, ``long_tailed``,
``labels``, ``accuracy`` and the runtime split ``seconds_train``, ``seconds_score``,
``seconds_select``, ``seconds_search``, ``seconds_overhead`` (optional; seconds per run, the
parts disjoint — ``seconds_select`` must not include the search).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from autoal.errors import DataError

#: the runtime split: record field ``seconds_<part>`` -> legend label (stacked in this order)
RUNTIME_PARTS = {"train": "training", "score": "scoring", "select": "selection", "search": "search",
                 "overhead": "overhead"}
#: fewer paired seeds than this: no verdict ("no claim") and a caution next to p and the interval
MIN_PAIRS = 5
ALPHA = 0.05
#: verdicts of :func:`verdict`; the best single strategy itself is the "reference"
BETTER, WORSE, LEVEL, NO_CLAIM, REFERENCE = "better", "worse", "level", "no claim", "reference"
#: exact null distribution of the signed-rank statistic up to this many non-zero differences
EXACT_MAX = 200
#: settings of the legacy bench/quality.py files whose pool is long-tailed
LEGACY_LONG_TAILED = ("mnist_lt",)

_REQUIRED = ("setting", "method", "seed", "aubc", "final_accuracy")
_OPTIONAL = ("final_balanced_accuracy", "aubc_balanced", "long_tailed", "labels", "accuracy")


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatrixRun:
    """One finished AL run of the matrix. Optional metrics are None when absent (or NaN);
    ``seconds`` maps the parts of :data:`RUNTIME_PARTS` the record carries to seconds per run."""

    setting: str
    method: str
    seed: int
    aubc: float
    final_accuracy: float
    final_balanced_accuracy: float | None = None
    aubc_balanced: float | None = None
    long_tailed: bool = False
    labels: tuple[int, ...] = ()
    accuracy: tuple[float, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict, hash=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "run record") -> "MatrixRun":
        """Validate a record; a missing or bad field raises :class:`DataError` naming it and
        ``where`` (e.g. ``"runs.jsonl line 3"``). Unknown keys are ignored (records carry run
        ids, params, ...), except unknown ``seconds_*`` keys, which are a misspelt split."""
        if not isinstance(d, Mapping):
            raise DataError(f"{where}: expected a mapping of fields, got {type(d).__name__}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise DataError(f"{where}: missing field(s) {', '.join(missing)} (required: {', '.join(_REQUIRED)})")
        text = {k: d[k] for k in ("setting", "method")}
        for k, v in text.items():
            if not isinstance(v, str) or not v.strip():
                raise DataError(f"{where}: field {k!r} must be a non-empty string, got {v!r}")
        seconds: dict[str, float] = {}
        for k, v in d.items():
            if isinstance(k, str) and k.startswith("seconds_"):
                part = k[len("seconds_"):]
                if part not in RUNTIME_PARTS:
                    raise DataError(f"{where}: unknown field {k!r}; the runtime split is "
                                    f"{', '.join('seconds_' + p for p in RUNTIME_PARTS)}")
                if v is not None:
                    s = _number(v, k, where)
                    if not math.isfinite(s) or s < 0:
                        raise DataError(f"{where}: field {k!r} must be seconds >= 0, got {v!r}")
                    seconds[part] = s
        labels = _sequence(d.get("labels"), "labels", where, int)
        accuracy = _sequence(d.get("accuracy"), "accuracy", where, float)
        if labels and accuracy and len(labels) != len(accuracy):
            raise DataError(f"{where}: fields 'labels' and 'accuracy' differ in length "
                            f"({len(labels)} and {len(accuracy)})")
        lt = d.get("long_tailed", False)
        if not isinstance(lt, (bool, np.bool_)):
            raise DataError(f"{where}: field 'long_tailed' must be true or false, got {lt!r}")
        return cls(setting=text["setting"], method=text["method"], seed=_seed(d["seed"], where),
                   aubc=_fraction(d["aubc"], "aubc", where), final_accuracy=_fraction(d["final_accuracy"],
                                                                                   "final_accuracy", where),
                   final_balanced_accuracy=_optional_fraction(d.get("final_balanced_accuracy"),
                                                              "final_balanced_accuracy", where),
                   aubc_balanced=_optional_fraction(d.get("aubc_balanced"), "aubc_balanced", where),
                   long_tailed=bool(lt), labels=tuple(labels), accuracy=tuple(accuracy), seconds=seconds)


def _number(v: Any, name: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating, str)):
        raise DataError(f"{where}: field {name!r} must be a number, got {v!r}")
    try:
        return float(v)
    except ValueError:
        raise DataError(f"{where}: field {name!r} must be a number, got {v!r}") from None


def _fraction(v: Any, name: str, where: str) -> float:
    x = _number(v, name, where)
    if not (math.isfinite(x) and 0.0 <= x <= 1.0):
        raise DataError(f"{where}: field {name!r} must be a finite number in [0, 1], got {v!r}")
    return x


def _optional_fraction(v: Any, name: str, where: str) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return _fraction(v, name, where)


def _seed(v: Any, where: str) -> int:
    """An int, an integral float or a decimal string (MLflow keeps params as strings)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    raise DataError(f"{where}: field 'seed' must be an integer, got {v!r}")


def _sequence(v: Any, name: str, where: str, kind: type) -> list:
    if v is None:
        return []
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        raise DataError(f"{where}: field {name!r} must be a list of numbers, got {v!r}")
    out = []
    for i, x in enumerate(v):
        num = _number(x, f"{name}[{i}]", where)
        if kind is int and not num.is_integer():
            raise DataError(f"{where}: field '{name}[{i}]' must be an integer, got {x!r}")
        out.append(kind(num))
    return out


def method_name(arm: str, setting: str | None) -> str:
    """The method an arm stands for across settings: the arm's label without its setting part
    (``setting=digits,strategy=margin`` → ``margin``)."""
    parts = [p for p in str(arm).split(",") if not (p.startswith("setting=") and (setting is None or p == f"setting={setting}"))]
    if len(parts) == 1 and parts[0].startswith("strategy="):
        return parts[0].split("=", 1)[1]
    return ",".join(parts) or str(arm)


def as_runs(runs: Iterable[MatrixRun | Mapping[str, Any]]) -> list[MatrixRun]:
    """Records as :class:`MatrixRun` (dicts validated, named by their position)."""
    return [r if isinstance(r, MatrixRun) else MatrixRun.from_dict(r, f"run record {i}") for i, r in enumerate(runs)]


def merge_runs(*groups: Iterable[MatrixRun | Mapping[str, Any]]) -> list[MatrixRun]:
    """Concatenate groups of runs; a later run of the same (setting, method, seed) replaces an
    earlier one (a re-run supersedes the original)."""
    out: dict[tuple[str, str, int], MatrixRun] = {}
    for g in groups:
        for r in as_runs(g):
            out.pop((r.setting, r.method, r.seed), None)
            out[(r.setting, r.method, r.seed)] = r
    return list(out.values())


#: the legacy files' method names that the sweeps name otherwise (the paper formulation is the
#: sweep's strategy option ``autoal_paper``)
LEGACY_METHOD_NAMES = {"autoal[paper]": "autoal_paper"}


def read_jsonl_runs(path: str | Path, long_tailed: Sequence[str] = LEGACY_LONG_TAILED,
                    rename: Mapping[str, str] | None = None) -> list[MatrixRun]:
    """The runs of a JSON-lines file of ``bench/gpu_quality.py`` or the legacy ``bench/quality.py``
    (one run a line, e.g. ``bench/reference/quality_runs_2026-11-30.jsonl``) as records, each
    read by :func:`run_from_record`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"{path}: cannot read the runs file ({e.strerror or e})") from None
    runs = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {no}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        runs.append(run_from_record(rec, where, long_tailed, rename))
    return runs


def run_from_record(rec: Mapping[str, Any], where: str = "run record",
                    long_tailed: Sequence[str] = LEGACY_LONG_TAILED,
                    rename: Mapping[str, str] | None = None) -> MatrixRun:
    """One JSON-lines record as :func:`read_jsonl_runs` reads it: long-tailed by its own
    ``long_tailed`` field where it has one, else when its setting is named in ``long_tailed``;
    methods renamed by ``rename`` (e.g. :data:`LEGACY_METHOD_NAMES`). The runtime fields (per-round
    means, overlapping parts) are not a disjoint split and are left out."""
    keep = {k: rec[k] for k in (*_REQUIRED, *_OPTIONAL) if k in rec}
    if "setting" in keep and "long_tailed" not in keep:
        keep["long_tailed"] = keep["setting"] in long_tailed
    if rename and keep.get("method") in rename:
        keep["method"] = rename[keep["method"]]
    return MatrixRun.from_dict(keep, where)


# ---------------------------------------------------------------------------------------------
# paired statistics
# ---------------------------------------------------------------------------------------------
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
    lower, upper = float(dist[:t2 + 1].sum()), float(dist[t2:].sum())
    return float(min(1.0, 2 * min(lower, upper)))


def bootstrap_ci(diffs: Sequence[float], resamples: int = 10_000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
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


# ---------------------------------------------------------------------------------------------
# the matrix
# ---------------------------------------------------------------------------------------------
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


def build_matrix(runs: Iterable[MatrixRun | Mapping[str, Any]], single_strategies: Iterable[str] | None = None, *,
                 order: Sequence[str] | None = None, setting_order: Sequence[str] | None = None,
                 alpha: float = ALPHA, min_pairs: int = MIN_PAIRS, resamples: int = 10_000,
                 level: float = 0.95, seed: int = 0) -> MatrixReport:
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
            raise DataError(f"run records {seen[key]} and {i}: two runs of setting {r.setting!r}, method "
                            f"{r.method!r}, seed {r.seed} (merge_runs keeps the later one)")
        seen[key] = i
    methods = _ordered((r.method for r in rs), order)
    singles = frozenset(single_strategies) if single_strategies is not None else \
        frozenset(m for m in methods if not m.startswith("autoal"))
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
    return MatrixReport(settings=settings, methods=tuple(methods), single_strategies=singles, mean_rank=mean_rank,
                        runs=tuple(rs), alpha=alpha, min_pairs=min_pairs, resamples=resamples, level=level)


def _setting_table(setting: str, runs: list[MatrixRun], methods: list[str], singles: frozenset[str], alpha: float,
                   min_pairs: int, resamples: int, level: float, seed: int) -> SettingTable:
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
    table = {m: MethodStats(m, v[0], *v[1], *v[2], *v[3], *v[4],
                            rank=1 + sum(means[o] > means[m] for o in stats)) for m in ranked for v in [stats[m]]}
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
            paired[m] = PairedDiff(m, best, shared, mean_d, sum(x > 0 for x in d), sum(x == 0 for x in d),
                                   sum(x < 0 for x in d), p, ci[0], ci[1], v)
    return SettingTable(setting, bool(runs[0].long_tailed), table, best, paired)


# ---------------------------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------------------------
def _signed(x: float, digits: int = 4) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.{digits}f}".replace("-", "−")


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if math.isfinite(std) else f"{mean:.4f} ± —"


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.3f}"


def _wl(pd: PairedDiff) -> str:
    return f"{pd.wins}/{pd.losses}" + (f" ({pd.ties} tie{'s' if pd.ties > 1 else ''})" if pd.ties else "")


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def summary_rows(report: MatrixReport) -> list[str]:
    """The mean-AUBC table (method × setting, ``mean (rank)``, rank 1 and the best mean rank in
    bold, — where a method did not run), as markdown lines."""
    settings = list(report.settings)
    best_rank = min(report.mean_rank.values())
    rows = []
    for m in report.methods:
        cells = [m]
        for s in settings:
            st = report.settings[s].stats.get(m)
            cell = "—" if st is None else f"{st.aubc_mean:.4f} ({st.rank})"
            cells.append(f"**{cell}**" if st is not None and st.rank == 1 else cell)
        r = f"{report.mean_rank[m]:.1f}"
        cells.append(f"**{r}**" if report.mean_rank[m] == best_rank else r)
        rows.append(cells)
    return _table(["method", *settings, "mean rank"], rows)


def against_best_rows(report: MatrixReport, methods: Sequence[str] | None = None) -> list[str]:
    """Per setting: the best single strategy (mean, std) and each of ``methods`` (default: the
    methods that are not single strategies) against it: ``Δ, W/L, p``."""
    methods = [m for m in (methods if methods is not None else report.methods) if m not in report.single_strategies]
    rows = []
    for s, t in report.settings.items():
        if t.best_single is None:
            continue
        b = t.stats[t.best_single]
        cells = [s, f"{t.best_single} {b.aubc_mean:.4f} ({b.aubc_std:.3f})"]
        for m in methods:
            pd = t.paired.get(m)
            cells.append("—" if pd is None or pd.n == 0 else
                         f"{_signed(pd.mean_diff)}, {_wl(pd)}, {_p(pd.p_wilcoxon)}" + (" ⚠" if pd.n < report.min_pairs
                                                                                         else ""))
        rows.append(cells)
    return _table(["setting", "best single (std)", *(f"{m}: Δ, W/L, p" for m in methods)], rows)


def setting_rows(report: MatrixReport, setting: str) -> list[str]:
    """One setting's detail table: per method (rank order) seeds, AUBC, final accuracy (and the
    balanced metrics when long-tailed), and Δ to the best single strategy with W/T/L, p, the
    bootstrap interval and the verdict."""
    t = report.settings[setting]
    lt = t.long_tailed
    pct = f"{100 * report.level:g} %"
    head = ["rank", "method", "seeds", "AUBC", "final acc"] + (["final bal. acc", "AUBC (bal.)"] if lt else []) + \
        ["Δ AUBC vs best single (n)", "W/T/L", "Wilcoxon p", f"{pct} CI of Δ", "verdict"]
    rows = []
    for m, st in t.stats.items():
        name = f"**{m}**" if st.rank == 1 else m
        cells = [str(st.rank), name, str(len(st.seeds)), _pm(st.aubc_mean, st.aubc_std),
                 _pm(st.final_accuracy_mean, st.final_accuracy_std)]
        if lt:
            cells += [_pm(st.final_balanced_accuracy_mean, st.final_balanced_accuracy_std),
                      _pm(st.aubc_balanced_mean, st.aubc_balanced_std)]
        pd = t.paired.get(m)
        if pd is None:
            cells += ["—"] * 5
        elif pd.verdict == REFERENCE:
            cells += ["reference", "", "", "", REFERENCE]
        elif pd.n == 0:
            cells += ["no shared seeds (0)", "", "", "", NO_CLAIM]
        else:
            warn = " ⚠" if pd.n < report.min_pairs else ""
            cells += [f"{_signed(pd.mean_diff)} ({pd.n})", f"{pd.wins}/{pd.ties}/{pd.losses}", _p(pd.p_wilcoxon) + warn,
                      f"[{_signed(pd.ci_low)}, {_signed(pd.ci_high)}]{warn}", pd.verdict]
        rows.append(cells)
    return _table(head, rows)


def matrix_markdown(report: MatrixReport, title: str = "Quality matrix") -> str:
    """The matrix as markdown: the mean-AUBC summary (rank, best bold, mean rank), the
    non-single methods against each setting's best single strategy, one detail table per
    setting, and the verdicts (rule stated, cautions where n < ``min_pairs``)."""
    counts = {len(t.stats) for t in report.settings.values()}
    among = f"rank among {counts.pop()} methods" if len(counts) == 1 else "rank within the setting"
    singles = sorted(m for m in report.methods if m in report.single_strategies)
    lines = [f"# {title}", "",
             f"Single strategies (candidates for the best single strategy of a setting): {', '.join(singles) or '—'}. "
             f"Means are over each method's own seeds; Δ compares a method with the setting's best single "
             f"strategy seed by seed over the seeds both ran (n). Verdict: **better**/**worse** when the "
             f"two-sided Wilcoxon signed-rank p < {report.alpha:g} with n ≥ {report.min_pairs} pairs, "
             f"**level** otherwise, **no claim** below {report.min_pairs} pairs (⚠: p and interval say little). "
             f"Intervals: percentile bootstrap of the mean Δ, {report.resamples:,} resamples.", "",
             f"## Mean AUBC ({among}) per setting", "", *summary_rows(report), ""]
    if any(m not in report.single_strategies for m in report.methods):
        lines += ["## Against the best single strategy of each setting", "", *against_best_rows(report), ""]
    for s, t in report.settings.items():
        ns = sorted({len(st.seeds) for st in t.stats.values()})
        seeds = f"{ns[0]} seeds per method" if len(ns) == 1 else f"{ns[0]}-{ns[-1]} seeds per method"
        best = f"best single strategy: **{t.best_single}**" if t.best_single else "no single strategy ran"
        lines += [f"## {s}", "", f"{'Long-tailed pool; ' if t.long_tailed else ''}{seeds}; {best}.", ""]
        few = [m for m, pd in t.paired.items() if pd.verdict != REFERENCE and pd.n < report.min_pairs]
        lines += setting_rows(report, s)
        if few:
            lines += ["", f"⚠ fewer than {report.min_pairs} paired seeds with {t.best_single}: {', '.join(few)} "
                      "(no claim; their p-values and intervals say little)."]
        lines.append("")
    settings = list(report.settings)
    verdicts = report.verdicts()
    lines += ["## Verdicts against the best single strategy", "",
              *_table(["method", *settings], [[m, *(verdicts[m].get(s, "—") for s in settings)]
                                              for m in report.methods]), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def heat_map(report: MatrixReport, path: str | Path, baseline: str = "random") -> Path | None:
    """Settings × methods: mean AUBC minus ``baseline``'s (Random) in colour, each method's rank
    in the setting as text. In a setting without the baseline, the difference is to the best
    single strategy instead (the row label says so); a setting with neither is left out. None
    when no setting can be drawn."""
    rows = [(s, baseline if baseline in t.stats else t.best_single) for s, t in report.settings.items()]
    rows = [(s, ref) for s, ref in rows if ref is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autoal.plots import save_figure

    methods = list(report.methods)
    grid = np.full((len(rows), len(methods)), np.nan)
    ranks = np.zeros(grid.shape, dtype=int)
    for i, (s, ref) in enumerate(rows):
        st = report.settings[s].stats
        for j, m in enumerate(methods):
            if m in st:
                grid[i, j] = st[m].aubc_mean - st[ref].aubc_mean
                ranks[i, j] = st[m].rank
    lim = float(np.nanmax(np.abs(grid))) or 1.0
    fig, ax = plt.subplots(figsize=(1.0 * len(methods) + 2.8, 0.7 * len(rows) + 1.9), dpi=120)
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([s if ref == baseline else f"{s}\n(− {ref})" for s, ref in rows], fontsize=8)
    for i in range(len(rows)):
        for j in range(len(methods)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{_signed(grid[i, j], 3)}\n#{ranks[i, j]}", ha="center", va="center", fontsize=7,
                        color="white" if abs(grid[i, j]) > 0.6 * lim else "black")
    other = any(ref != baseline for _, ref in rows)
    fig.colorbar(im, ax=ax, label=f"AUBC − {baseline}" + (" (or − best single)" if other else ""))
    ax.set_title(f"mean AUBC above {baseline} (#: rank in the setting, 1 = best)", fontsize=9)
    return save_figure(fig, path)


def runtime_means(runs: MatrixReport | Iterable[MatrixRun | Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """setting -> method -> part -> mean seconds per run, over the runs that carry a runtime
    split (a part a run lacks counts 0 s: e.g. no search outside AutoAL); empty when none does."""
    rs = list(runs.runs) if isinstance(runs, MatrixReport) else as_runs(runs)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for s in dict.fromkeys(r.setting for r in rs):
        for m in dict.fromkeys(r.method for r in rs if r.setting == s):
            split = [r.seconds for r in rs if r.setting == s and r.method == m and r.seconds]
            if split:
                out.setdefault(s, {})[m] = {p: float(np.mean([x.get(p, 0.0) for x in split])) for p in RUNTIME_PARTS}
    return out


def runtime_split(runs: MatrixReport | Iterable[MatrixRun | Mapping[str, Any]], path: str | Path) -> Path | None:
    """Stacked bars of :func:`runtime_means`: one panel per setting, one bar per method (training,
    scoring, selection, search, overhead; mean seconds per run). None when no run carries a split."""
    means = runtime_means(runs)
    if not means:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autoal.plots import save_figure

    n = len(means)
    cols = min(n, 2)
    nrows = math.ceil(n / cols)
    width = max(len(v) for v in means.values())
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * max(4.0, 0.6 * width + 1.6), 3.4 * nrows), dpi=120,
                             squeeze=False)
    colours = plt.get_cmap("tab10")
    for k, (s, per_method) in enumerate(means.items()):
        ax = axes[k // cols][k % cols]
        names = list(per_method)
        bottom = np.zeros(len(names))
        for c, (part, label) in enumerate(RUNTIME_PARTS.items()):
            vals = np.array([per_method[m][part] for m in names])
            ax.bar(range(len(names)), vals, bottom=bottom, color=colours(c), label=label, width=0.75)
            bottom += vals
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("seconds per run (mean)", fontsize=8)
        ax.set_title(s, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    for k in range(n, nrows * cols):
        axes[k // cols][k % cols].set_visible(False)
    return save_figure(fig, path)
