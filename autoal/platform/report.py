"""Reports of a sweep or ablation, read back from MLflow (DESIGN.md §4: the paper's figures).

From a sweep id: the sweep's child runs (params, tags, metric histories; MLflow step = AL round)
become one long-form table, one row per trial and round (``sweep, trial, run_id, arm, seed,
strategy, dataset, status, round, labels, <metrics>``), written as Parquet. From it:

- ``learning_curves.png``: accuracy vs labels, mean ± std over seeds per arm (Fig. 2-4);
- ``summary.md`` / ``summary.csv``: AUBC and final accuracy per arm, mean ± std, best in bold;
- ``paired.md`` / ``paired.csv``: every arm against a reference arm over the seeds both ran
  (mean difference, wins/ties/losses, Wilcoxon signed-rank and paired t-test p-values);
- ``weights.png`` (and ``shares.png``): AutoAL's per-round strategy weights (``w_mean/<cand>`` of the
  paper formulation, ``weight/<cand>`` of the lookahead formulation)
  (and the candidates' shares of the picks, ``share/<cand>``) — the paper's Fig. 5 — when logged;
- ``runtime.md`` / ``runtime.csv``: seconds per run split into candidate scoring, search, task
  training and selection, relative to the Entropy arm (Table 2), when an Entropy arm exists;
- ``trials.csv`` (one row per trial) and ``report.md`` tying it together.

Everything is written to one folder and logged as artifacts (``report/``) on the sweep's parent
run. Only finished runs enter the tables; the long-form table keeps every run with its status.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from autoal.errors import TrackingError
from autoal.metrics import aubc
from autoal.plots import learning_curve, save_figure
from autoal.tracking import call_serialized, mlflow_client, sqlite_lock_path

ROLE_TAG = "autoal_role"
SUMMARY_METRICS = ("aubc", "final_accuracy")
ID_COLUMNS = ["sweep", "trial", "run_id", "arm", "seed", "strategy", "dataset", "status", "round"]
RUNTIME_PARTS = ("seconds_train", "seconds_score", "seconds_select", "seconds_candidates", "seconds_search")


@dataclass
class Report:
    sweep_id: str
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary_markdown: str = ""
    reference: str | None = None
    parent_run_id: str | None = None


def _client(uri: str):
    return mlflow_client(uri)


def _experiment_id(client, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"tracking.experiment: no MLflow experiment {experiment!r} in the store")
    return exp.experiment_id


def _search_all(client, exp_id: str, filter_string: str, order_by: Sequence[str] | None = None) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([exp_id], filter_string=filter_string, max_results=1000,
                                  order_by=list(order_by or []), page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def list_sweeps(uri: str, experiment: str) -> list[dict[str, Any]]:
    """The sweeps (parent runs) of an experiment, newest first."""
    client = _client(uri)
    exp_id = _experiment_id(client, experiment)
    runs = _search_all(client, exp_id, f"tags.{ROLE_TAG} = 'sweep'", ["attributes.start_time DESC"])
    return [{"sweep_id": r.data.tags.get("sweep_id"), "run_id": r.info.run_id, "status": r.info.status,
             "start_time": r.info.start_time, "sweep": r.data.tags.get("sweep")} for r in runs]


def latest_sweep_id(uri: str, experiment: str) -> str:
    sweeps = list_sweeps(uri, experiment)
    if not sweeps:
        raise TrackingError(f"report: no sweep in MLflow experiment {experiment!r} at {uri}; run autoal sweep first")
    return sweeps[0]["sweep_id"]


def load_runs(uri: str, experiment: str, sweep_id: str):
    """(parent run or None, child runs — one per trial, the latest when a trial has several)."""
    client = _client(uri)
    exp_id = _experiment_id(client, experiment)
    parents = _search_all(client, exp_id, f"tags.sweep_id = '{sweep_id}' and tags.{ROLE_TAG} = 'sweep'")
    children = _search_all(client, exp_id, f"tags.sweep_id = '{sweep_id}' and tags.{ROLE_TAG} = 'trial'",
                           ["attributes.start_time ASC"])
    if not children:
        raise TrackingError(f"report: sweep {sweep_id!r} has no trial runs in MLflow experiment {experiment!r} at {uri}")
    by_trial: dict[str, Any] = {}
    for r in children:
        key = r.data.tags.get("trial_id") or r.info.run_id
        prev = by_trial.get(key)
        if prev is None or (r.info.status == "FINISHED") >= (prev.info.status == "FINISHED"):
            by_trial[key] = r
    return (parents[0] if parents else None), list(by_trial.values())


def sweep_frame(uri: str, experiment: str, sweep_id: str):
    """The long-form per-round table of a sweep (pandas DataFrame), and the parent run."""
    import pandas as pd

    client = _client(uri)
    parent, runs = load_runs(uri, experiment, sweep_id)
    rows: list[dict[str, Any]] = []
    for run in runs:
        tags = run.data.tags
        ident = {"sweep": sweep_id, "trial": tags.get("trial_id", run.info.run_id), "run_id": run.info.run_id,
                 "arm": tags.get("arm", run.info.run_name), "seed": _int(tags.get("seed", run.data.params.get("al.seed"))),
                 "strategy": tags.get("strategy", run.data.params.get("strategy.name")),
                 "dataset": tags.get("dataset", run.data.params.get("dataset.name")), "status": run.info.status}
        per_round: dict[int, dict[str, Any]] = {}
        for key in sorted(run.data.metrics):
            if key in SUMMARY_METRICS:
                continue
            for m in client.get_metric_history(run.info.run_id, key):
                per_round.setdefault(int(m.step), {})[key] = float(m.value)
        summary = {k: run.data.metrics.get(k) for k in SUMMARY_METRICS}
        for r in sorted(per_round):
            rows.append({**ident, "round": r, **per_round[r], **{f"run_{k}": v for k, v in summary.items()}})
    df = pd.DataFrame(rows)
    if df.empty:
        raise TrackingError(f"report: the runs of sweep {sweep_id!r} have no per-round metrics")
    first = [c for c in ID_COLUMNS + ["labels", "accuracy", "balanced_accuracy"] if c in df.columns]
    rest = sorted(c for c in df.columns if c not in first)
    df = df[first + rest].sort_values(["arm", "seed", "round"], kind="stable").reset_index(drop=True)
    if "labels" in df.columns:
        df["labels"] = df["labels"].astype("int64")
    return df, parent


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def arm_order(df, parent=None) -> list[str]:
    if parent is not None and parent.data.tags.get("arms"):
        try:
            order = [a for a in json.loads(parent.data.tags["arms"]) if a in set(df["arm"])]
            return order + sorted(set(df["arm"]) - set(order))
        except ValueError:
            pass
    return list(dict.fromkeys(df["arm"]))


def trial_table(df):
    """One row per trial: arm, seed, status, rounds, AUBC (the run's logged value, else computed
    from its curve), final accuracy, and total seconds per phase."""
    import pandas as pd

    rows = []
    for (trial, run_id), g in df.groupby(["trial", "run_id"], sort=False):
        g = g.sort_values("round")
        first = g.iloc[0]
        logged = first.get("run_aubc")
        value = float(logged) if logged is not None and not _nan(logged) else aubc(g["labels"].tolist(), g["accuracy"].tolist())
        final = first.get("run_final_accuracy")
        row = {"trial": trial, "run_id": run_id, "arm": first["arm"], "seed": first["seed"], "strategy": first["strategy"],
               "status": first["status"], "rounds": int(g["round"].max()) + 1, "labels": int(g["labels"].iloc[-1]),
               "aubc": value, "final_accuracy": float(final) if final is not None and not _nan(final) else float(g["accuracy"].iloc[-1])}
        for part in RUNTIME_PARTS:
            if part in g.columns:
                row[part] = float(g[part].fillna(0.0).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _nan(v: Any) -> bool:
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def arm_summary(trials, order: Sequence[str]):
    """Per arm over finished trials: seeds, AUBC and final accuracy mean and std (ddof 1)."""
    import pandas as pd

    done = trials[trials["status"] == "FINISHED"]
    rows = []
    for arm in order:
        g = done[done["arm"] == arm]
        if g.empty:
            continue
        rows.append({"arm": arm, "seeds": int(len(g)),
                     "aubc_mean": float(g["aubc"].mean()), "aubc_std": float(g["aubc"].std(ddof=1)) if len(g) > 1 else 0.0,
                     "final_accuracy_mean": float(g["final_accuracy"].mean()),
                     "final_accuracy_std": float(g["final_accuracy"].std(ddof=1)) if len(g) > 1 else 0.0})
    return pd.DataFrame(rows, columns=["arm", "seeds", "aubc_mean", "aubc_std", "final_accuracy_mean", "final_accuracy_std"])


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def summary_markdown(summary) -> str:
    """AUBC and final accuracy as ``mean ± std``; the best mean of each column in bold."""
    if summary.empty:
        return "_no finished trials_"
    best_a = summary["aubc_mean"].max()
    best_f = summary["final_accuracy_mean"].max()
    rows = []
    for _, r in summary.iterrows():
        a = f"{r.aubc_mean:.4f} ± {r.aubc_std:.4f}"
        f = f"{r.final_accuracy_mean:.4f} ± {r.final_accuracy_std:.4f}"
        rows.append([r.arm, int(r.seeds), f"**{a}**" if r.aubc_mean == best_a else a,
                     f"**{f}**" if r.final_accuracy_mean == best_f else f])
    return markdown(["arm", "seeds", "AUBC (mean ± std)", "final accuracy (mean ± std)"], rows)


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
        rows.append({"arm": arm, "reference": reference, "metric": metric, "pairs": len(seeds),
                     "mean_diff": float(d.mean()), "std_diff": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                     "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum()),
                     "p_wilcoxon": p_w, "p_ttest": p_t})
    return pd.DataFrame(rows, columns=["arm", "reference", "metric", "pairs", "mean_diff", "std_diff", "wins", "ties",
                                       "losses", "p_wilcoxon", "p_ttest"])


def paired_markdown(paired) -> str:
    if paired.empty:
        return "_no paired seeds_"
    rows = [[r.arm, int(r.pairs), f"{r.mean_diff:+.4f} ± {r.std_diff:.4f}", f"{r.wins}/{r.ties}/{r.losses}",
             _p(r.p_wilcoxon), _p(r.p_ttest)] for r in paired.itertuples()]
    return markdown(["arm", "pairs", f"Δ{paired['metric'].iloc[0]} vs {paired['reference'].iloc[0]} (mean ± std)",
                     "wins/ties/losses", "Wilcoxon p", "paired t p"], rows)


def _p(v: float) -> str:
    return "–" if _nan(v) else f"{v:.3g}"


def runtime_split(trials, order: Sequence[str]):
    """Mean seconds per run and arm (Table 2): candidate scoring (the shared cache pass plus
    AutoAL's candidate indicators), search, task training, the rest of selection, total; and the
    total relative to the Entropy arm (None when there is no Entropy arm)."""
    import pandas as pd

    if "seconds_train" not in trials.columns:
        return None
    done = trials[trials["status"] == "FINISHED"].copy()
    if done.empty:
        return None
    for part in RUNTIME_PARTS:
        if part not in done.columns:
            done[part] = 0.0
        done[part] = done[part].fillna(0.0)
    entropy = [a for a in order if (done[done["arm"] == a]["strategy"] == "entropy").any()]
    rows = []
    for arm in order:
        g = done[done["arm"] == arm]
        if g.empty:
            continue
        cand = float((g["seconds_score"] + g["seconds_candidates"]).mean())
        search = float(g["seconds_search"].mean())
        train = float(g["seconds_train"].mean())
        other = float((g["seconds_select"] - g["seconds_candidates"] - g["seconds_search"]).clip(lower=0).mean())
        rows.append({"arm": arm, "candidate_scoring_s": cand, "search_s": search, "task_training_s": train,
                     "selection_other_s": other, "total_s": cand + search + train + other})
    out = pd.DataFrame(rows)
    ref_total = float(out.loc[out["arm"] == entropy[0], "total_s"].iloc[0]) if entropy else None
    out["relative_to_entropy"] = out["total_s"] / ref_total if ref_total else float("nan")
    return out


def runtime_markdown(rt) -> str:
    rows = [[r.arm, f"{r.candidate_scoring_s:.2f}", f"{r.search_s:.2f}", f"{r.task_training_s:.2f}",
             f"{r.selection_other_s:.2f}", f"{r.total_s:.2f}",
             "–" if _nan(r.relative_to_entropy) else f"{r.relative_to_entropy:.2f}×"] for r in rt.itertuples()]
    return markdown(["arm", "candidate scoring s", "search s", "task training s", "selection (rest) s", "total s",
                     "× Entropy"], rows)


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


def plot_trace(df, path: str | Path, order: Sequence[str], prefix: str | tuple[str, ...] = "w_mean/",
               ylabel: str = "mean weight w_k", title: str = "") -> Path | None:
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(arms)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), dpi=120, squeeze=False)
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
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def write_report(uri: str, experiment: str, sweep_id: str | None, out_dir: str | Path, *, reference: str | None = None,
                 log_to_parent: bool = True) -> Report:
    """Build every table and figure of the sweep into ``out_dir`` and log them on its parent run."""
    sweep_id = sweep_id or latest_sweep_id(uri, experiment)
    df, parent = sweep_frame(uri, experiment, sweep_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = arm_order(df, parent)
    rep = Report(sweep_id=sweep_id, out_dir=out, parent_run_id=parent.info.run_id if parent is not None else None)
    files = rep.files
    files["rounds"] = out / "rounds.parquet"
    df.to_parquet(files["rounds"], index=False)
    trials = trial_table(df)
    files["trials"] = out / "trials.csv"
    trials.to_csv(files["trials"], index=False)
    summary = arm_summary(trials, order)
    files["summary_csv"] = out / "summary.csv"
    summary.to_csv(files["summary_csv"], index=False)
    rep.summary_markdown = summary_markdown(summary)
    files["summary_md"] = out / "summary.md"
    files["summary_md"].write_text(rep.summary_markdown + "\n")

    ref = reference or (parent.data.tags.get("reference") if parent is not None else None) or None
    finished_arms = list(summary["arm"]) if not summary.empty else []
    if ref is None or ref not in finished_arms:
        ref = next((a for a in finished_arms if trials[trials["arm"] == a]["strategy"].eq("autoal").any()), None) \
            or (finished_arms[0] if finished_arms else None)
    rep.reference = ref
    sections = [f"# Sweep {sweep_id}", "", f"{len(trials)} trials, {len(order)} arms, dataset "
                f"{', '.join(sorted(set(map(str, df['dataset']))))}.", "", "## AUBC and final accuracy", "",
                rep.summary_markdown, ""]
    if ref is not None and len(finished_arms) > 1:
        paired = paired_comparison(trials, ref, order)
        files["paired_csv"] = out / "paired.csv"
        paired.to_csv(files["paired_csv"], index=False)
        files["paired_md"] = out / "paired.md"
        files["paired_md"].write_text(paired_markdown(paired) + "\n")
        sections += [f"## Paired comparison against `{ref}` (AUBC, over seeds)", "", paired_markdown(paired), ""]
    title = f"{sweep_id} · {', '.join(sorted(set(map(str, df['dataset']))))}"
    lc = plot_learning_curves(df, out / "learning_curves.png", order, title=title)
    if lc is not None:
        files["learning_curves"] = lc
        sections += ["## Learning curves (mean ± std over seeds)", "", "![learning curves](learning_curves.png)", ""]
    # the paper formulation logs SearchNet's mean weights w_mean/<cand>, the lookahead formulation
    # its weights over candidates weight/<cand>: both are Fig. 5
    w = plot_trace(df, out / "weights.png", order, ("w_mean/", "weight/"), "weight of the candidate",
                   "AutoAL strategy weights per round")
    if w is not None:
        files["weights"] = w
        sections += ["## Strategy weights per round (Fig. 5)", "", "![weights](weights.png)", ""]
    s = plot_trace(df, out / "shares.png", order, "share/", "share of the picks", "candidates' shares of the picks")
    if s is not None:
        files["shares"] = s
        sections += ["![shares](shares.png)", ""]
    rt = runtime_split(trials, order)
    if rt is not None:
        files["runtime_csv"] = out / "runtime.csv"
        rt.to_csv(files["runtime_csv"], index=False)
        files["runtime_md"] = out / "runtime.md"
        files["runtime_md"].write_text(runtime_markdown(rt) + "\n")
        sections += ["## Runtime per run (Table 2)", "", runtime_markdown(rt), ""]
    files["report"] = out / "report.md"
    files["report"].write_text("\n".join(sections))
    if log_to_parent and parent is not None:
        client = _client(uri)
        call_serialized(sqlite_lock_path(uri),
                        lambda: [client.log_artifact(parent.info.run_id, str(p), "report") for p in files.values()])
    return rep
