"""The report's figures (matplotlib, Agg backend): learning curves, per-round traces (AutoAL's
weights, shares and credit), AUBC per swept key, the runtime split, the win/loss heat map and
the labeled set's classes per round."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from autoal.plots import learning_curve, save_figure
from autoal.platform.report.paired import win_loss_matrix
from autoal.platform.report.runs import is_missing
from autoal.tracking import mlflow_client


def plot_learning_curves(df, path: str | Path, order: Sequence[str], title: str = "") -> Path | None:
    """Accuracy vs labels per arm over its finished runs, mean ± std; None when none finished."""
    done = df[df["status"] == "FINISHED"]
    curves = {}
    for arm in order:
        g = done[done["arm"] == arm]
        if g.empty:
            continue
        agg = g.groupby("round").agg(labels=("labels", "mean"), mean=("accuracy", "mean"), std=("accuracy", "std"))
        curves[arm] = (agg["labels"].tolist(), agg["mean"].tolist(), agg["std"].fillna(0.0).tolist())
    if not curves:
        return None
    return learning_curve(path, curves, title=title)


def plot_trace(
    df,
    path: str | Path,
    order: Sequence[str],
    prefix: str | tuple[str, ...] = "w_mean/",
    ylabel: str = "mean weight w_k",
    title: str = "",
) -> Path | None:
    """Per-round means over seeds of the ``<prefix><candidate>`` metrics (any of several
    prefixes: each arm plots the ones it logged), one panel per arm that logged them; None when
    no arm did."""
    prefixes = (prefix,) if isinstance(prefix, str) else tuple(prefix)
    cols = sorted(c for c in df.columns if c.startswith(prefixes))
    if not cols:
        return None
    done = df[df["status"] == "FINISHED"]
    arms = [a for a in order if not done[done["arm"] == a][cols].dropna(how="all").empty]
    if not arms:
        return None
    fig, axes = panel_grid(len(arms), 3.2)
    for ax, arm in zip(axes.flat, arms):
        g = done[done["arm"] == arm].groupby("round")[cols].mean()
        for c in cols:
            if g[c].notna().any():
                ax.plot(g.index, g[c], marker="o", ms=3, label=c.split("/", 1)[1])
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("round")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(arms) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def panel_grid(n: int, height: float, per_row: int = 3):
    """A figure of ``n`` panels, at most ``per_row`` a row (axes as a 2-D array; the unused ones
    are switched off by the caller)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(n, per_row)
    nrows = math.ceil(n / ncols)
    return plt.subplots(nrows, ncols, figsize=(4.2 * ncols, height * nrows), dpi=120, squeeze=False)


def _number(v: Any) -> float | None:
    try:
        x = float(json.loads(v)) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def plot_hyperparameters(trials, df, path: str | Path, varied: Sequence[str]) -> Path | None:
    """One panel per swept key: mean AUBC ± std over the finished runs at each value (error bars
    against a numeric axis, log-scaled when the values span more than a decade; bars for
    categorical values). None when nothing was swept."""
    import numpy as np

    if not varied:
        return None
    done = trials[trials["status"] == "FINISHED"]
    if done.empty:
        return None
    values = df.groupby("run_id")[[f"param.{k}" for k in varied]].first()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(varied)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), dpi=120, squeeze=False)
    for ax, key in zip(axes[0], varied):
        col = values[f"param.{key}"].reindex(done["run_id"]).to_numpy()
        groups: dict[Any, list[float]] = {}
        for v, a in zip(col, done["aubc"]):
            groups.setdefault(v, []).append(float(a))
        nums = {v: _number(v) for v in groups}
        numeric = all(x is not None for x in nums.values()) and len(groups) > 1
        keys = sorted(groups, key=lambda v: nums[v] if numeric else str(v))
        means = [float(np.mean(groups[v])) for v in keys]
        stds = [float(np.std(groups[v], ddof=1)) if len(groups[v]) > 1 else 0.0 for v in keys]
        if numeric:
            x = [nums[v] for v in keys]
            ax.errorbar(x, means, yerr=stds, marker="o", ms=4, capsize=3)
            if min(x) > 0 and max(x) / min(x) > 10:
                ax.set_xscale("log")
        else:
            ax.bar(range(len(keys)), means, yerr=stds, capsize=3, color="tab:blue", alpha=0.8)
            ax.set_xticks(range(len(keys)))
            ax.set_xticklabels([str(v) for v in keys], rotation=30, ha="right", fontsize=7)
            lo = min(m - s for m, s in zip(means, stds))
            ax.set_ylim(max(0.0, lo - 0.02), max(m + s for m, s in zip(means, stds)) + 0.02)
        ax.set_xlabel(key, fontsize=8)
        ax.set_ylabel("AUBC")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_runtime(rt, path: str | Path) -> Path:
    """The runtime split per arm as stacked bars (the paper's Table 2 as a picture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    parts = [
        ("candidate_scoring_s", "candidate scoring"),
        ("search_s", "search"),
        ("task_training_s", "task training"),
        ("selection_other_s", "selection (rest)"),
    ]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(rt) + 2), 3.6), dpi=120)
    bottom = np.zeros(len(rt))
    for col, label in parts:
        vals = rt[col].to_numpy(dtype=float)
        ax.bar(range(len(rt)), vals, bottom=bottom, label=label)
        bottom += vals
    for i, r in enumerate(rt.itertuples()):
        if not is_missing(r.relative_to_entropy):
            ax.text(i, bottom[i], f"{r.relative_to_entropy:.2f}×", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rt)))
    ax.set_xticklabels(list(rt["arm"]), rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("seconds per run (mean)")
    ax.set_title("runtime split (× Entropy above the bars)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def plot_win_loss(trials, path: str | Path, order: Sequence[str]) -> Path | None:
    """The win/loss matrix as a heat map of win rates, annotated ``wins/pairs``."""
    arms = [a for a in order if (trials[(trials["arm"] == a) & (trials["status"] == "FINISHED")]).shape[0]]
    if len(arms) < 2:
        return None
    wins, pairs = win_loss_matrix(trials, arms)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rate = np.where(pairs > 0, wins / np.maximum(pairs, 1), np.nan)
    size = 1.0 + 0.55 * len(arms)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=120)
    im = ax.imshow(rate, cmap="RdYlGn", vmin=0, vmax=1)
    for i in range(len(arms)):
        for j in range(len(arms)):
            if i != j and pairs[i, j]:
                ax.text(j, i, f"{wins[i, j]}/{pairs[i, j]}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(arms)))
    ax.set_yticks(range(len(arms)))
    ax.set_xticklabels(arms, rotation=40, ha="right", fontsize=7)
    ax.set_yticklabels(arms, fontsize=7)
    ax.set_title("row beats column (AUBC, paired seeds)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="win rate")
    return save_figure(fig, path)


def plot_class_histograms(uri: str, trials, path: str | Path, order: Sequence[str]) -> Path | None:
    """The labeled set's class counts per round, one panel per arm (its lowest finished seed),
    from each run's ``labeled.json`` artifact; None when no run has one."""
    import tempfile

    done = trials[trials["status"] == "FINISHED"].sort_values("seed", kind="stable")
    client = mlflow_client(uri)
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for arm in order:
            g = done[done["arm"] == arm]
            if g.empty:
                continue
            run_id = g.iloc[0]["run_id"]
            try:
                local = client.download_artifacts(run_id, "labeled.json", tmp)
                d = json.loads(Path(local).read_text())
            except Exception:  # noqa: BLE001 - runs written before labeled.json had classes
                continue
            if d.get("class_counts_per_round"):
                panels.append(
                    (f"{arm} (seed {g.iloc[0]['seed']})", d["class_counts_per_round"], d.get("classes") or [])
                )
    if not panels:
        return None
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(panels)
    fig, axes = panel_grid(n, 3.0)
    for ax, (label, counts, classes) in zip(axes.flat, panels):
        c = np.asarray(counts, dtype=float)
        bottom = np.zeros(len(c))
        cmap = plt.get_cmap("tab10" if c.shape[1] <= 10 else "tab20")
        for k in range(c.shape[1]):
            ax.bar(
                range(len(c)),
                c[:, k],
                bottom=bottom,
                color=cmap(k % cmap.N),
                label=str(classes[k]) if k < len(classes) else str(k),
            )
            bottom += c[:, k]
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("round")
        ax.set_ylabel("labeled")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(labels) <= 20:
        fig.legend(
            handles, labels, fontsize=6, ncol=min(10, len(labels)), loc="lower center", title="class", title_fontsize=6
        )
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, path)
