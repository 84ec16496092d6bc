"""The matrix as Markdown: the mean-AUBC summary, the methods against each setting's best single
strategy, one detail table per setting and the verdicts."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from autoal.platform.matrix.build import MatrixReport, PairedDiff
from autoal.platform.matrix.stats import NO_CLAIM, REFERENCE


def signed(x: float, digits: int = 4) -> str:
    """``x`` with its sign and a true minus sign (−0.0120, +0.0031); — for NaN or infinity."""
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
            cells.append(
                "—"
                if pd is None or pd.n == 0
                else f"{signed(pd.mean_diff)}, {_wl(pd)}, {_p(pd.p_wilcoxon)}"
                + (" ⚠" if pd.n < report.min_pairs else "")
            )
        rows.append(cells)
    return _table(["setting", "best single (std)", *(f"{m}: Δ, W/L, p" for m in methods)], rows)


def setting_rows(report: MatrixReport, setting: str) -> list[str]:
    """One setting's detail table: per method (rank order) seeds, AUBC, final accuracy (and the
    balanced metrics when long-tailed), and Δ to the best single strategy with W/T/L, p, the
    bootstrap interval and the verdict."""
    t = report.settings[setting]
    lt = t.long_tailed
    pct = f"{100 * report.level:g} %"
    head = (
        ["rank", "method", "seeds", "AUBC", "final acc"]
        + (["final bal. acc", "AUBC (bal.)"] if lt else [])
        + ["Δ AUBC vs best single (n)", "W/T/L", "Wilcoxon p", f"{pct} CI of Δ", "verdict"]
    )
    rows = []
    for m, st in t.stats.items():
        name = f"**{m}**" if st.rank == 1 else m
        cells = [
            str(st.rank),
            name,
            str(len(st.seeds)),
            _pm(st.aubc_mean, st.aubc_std),
            _pm(st.final_accuracy_mean, st.final_accuracy_std),
        ]
        if lt:
            cells += [
                _pm(st.final_balanced_accuracy_mean, st.final_balanced_accuracy_std),
                _pm(st.aubc_balanced_mean, st.aubc_balanced_std),
            ]
        pd = t.paired.get(m)
        if pd is None:
            cells += ["—"] * 5
        elif pd.verdict == REFERENCE:
            cells += ["reference", "", "", "", REFERENCE]
        elif pd.n == 0:
            cells += ["no shared seeds (0)", "", "", "", NO_CLAIM]
        else:
            warn = " ⚠" if pd.n < report.min_pairs else ""
            cells += [
                f"{signed(pd.mean_diff)} ({pd.n})",
                f"{pd.wins}/{pd.ties}/{pd.losses}",
                _p(pd.p_wilcoxon) + warn,
                f"[{signed(pd.ci_low)}, {signed(pd.ci_high)}]{warn}",
                pd.verdict,
            ]
        rows.append(cells)
    return _table(head, rows)


def matrix_markdown(report: MatrixReport, title: str = "Quality matrix") -> str:
    """The matrix as markdown: the mean-AUBC summary (rank, best bold, mean rank), the
    non-single methods against each setting's best single strategy, one detail table per
    setting, and the verdicts (rule stated, cautions where n < ``min_pairs``)."""
    counts = {len(t.stats) for t in report.settings.values()}
    among = f"rank among {counts.pop()} methods" if len(counts) == 1 else "rank within the setting"
    singles = sorted(m for m in report.methods if m in report.single_strategies)
    lines = [
        f"# {title}",
        "",
        f"Single strategies (candidates for the best single strategy of a setting): {', '.join(singles) or '—'}. "
        f"Means are over each method's own seeds; Δ compares a method with the setting's best single "
        f"strategy seed by seed over the seeds both ran (n). Verdict: **better**/**worse** when the "
        f"two-sided Wilcoxon signed-rank p < {report.alpha:g} with n ≥ {report.min_pairs} pairs, "
        f"**level** otherwise, **no claim** below {report.min_pairs} pairs (⚠: p and interval say little). "
        f"Intervals: percentile bootstrap of the mean Δ, {report.resamples:,} resamples.",
        "",
        f"## Mean AUBC ({among}) per setting",
        "",
        *summary_rows(report),
        "",
    ]
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
            lines += [
                "",
                f"⚠ fewer than {report.min_pairs} paired seeds with {t.best_single}: {', '.join(few)} "
                "(no claim; their p-values and intervals say little).",
            ]
        lines.append("")
    settings = list(report.settings)
    verdicts = report.verdicts()
    lines += [
        "## Verdicts against the best single strategy",
        "",
        *_table(["method", *settings], [[m, *(verdicts[m].get(s, "—") for s in settings)] for m in report.methods]),
        "",
    ]
    return "\n".join(lines)
