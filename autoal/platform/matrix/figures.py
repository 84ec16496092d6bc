"""The matrix's figures (matplotlib imported inside, Agg backend): the heat map of AUBC above
Random per setting and method, and the run-time split per setting."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from autoal.platform.matrix.build import MatrixReport
from autoal.platform.matrix.markdown import signed
from autoal.platform.matrix.records import RUNTIME_PARTS, MatrixRun, as_runs


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
                ax.text(
                    j,
                    i,
                    f"{signed(grid[i, j], 3)}\n#{ranks[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(grid[i, j]) > 0.6 * lim else "black",
                )
    other = any(ref != baseline for _, ref in rows)
    fig.colorbar(im, ax=ax, label=f"AUBC − {baseline}" + (" (or − best single)" if other else ""))
    ax.set_title(f"mean AUBC above {baseline} (#: rank in the setting, 1 = best)", fontsize=9)
    return save_figure(fig, path)


def runtime_means(
    runs: MatrixReport | Iterable[MatrixRun | Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, float]]]:
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
    fig, axes = plt.subplots(
        nrows, cols, figsize=(cols * max(4.0, 0.6 * width + 1.6), 3.4 * nrows), dpi=120, squeeze=False
    )
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
