"""Reports of a sweep or ablation, read back from MLflow (DESIGN.md §4: the paper's figures).

From a sweep id: the sweep's child runs (params, tags, metric histories; MLflow step = AL round)
become one long-form table, one row per trial and round (``sweep, trial, run_id, arm, seed,
strategy, dataset, status, round, labels, <metrics>``), written as Parquet. From it:

- ``learning_curves.png``: accuracy vs labels, mean ± std over seeds per arm (Fig. 2-4);
- ``summary.md`` / ``summary.csv``: AUBC and final accuracy per arm, mean ± std, best in bold;
- ``paired.md`` / ``paired.csv``: every arm against a reference arm over the seeds both ran
  (mean difference, wins/ties/losses, Wilcoxon signed-rank and paired t-test p-values);
- ``weights.png`` (and ``shares.png``): AutoAL's per-round strategy weights (``w_mean/<cand>`` of the
  paper formulation, ``weight/<cand>`` of the lookahead and credit formulations)
  (and the candidates' shares of the picks, ``share/<cand>``) — the paper's Fig. 5 — when logged;
- ``credit.png``: the credit formulation's competence on each candidate's picks, per round;
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
from typing import Any, Callable, Mapping, Sequence

from autoal.errors import ConfigError, TrackingError
from autoal.metrics import aubc
from autoal.plots import learning_curve, save_figure
from autoal.tracking import call_serialized, mlflow_client, sqlite_lock_path
from autoal.writable import check_writable_folder

ROLE_TAG = "autoal_role"
SUMMARY_METRICS = ("aubc", "final_accuracy")
ID_COLUMNS = ["sweep", "trial", "run_id", "arm", "seed", "strategy", "dataset", "setting", "method", "long_tailed",
              "status", "round"]
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


def load_runs(uri: str, experiment: str, sweep_id: str | None = None, run_ids: Sequence[str] | None = None):
    """(parent run or None, runs): the trial runs of sweep ``sweep_id`` (one per trial, the
    latest when a trial has several), or the runs ``run_ids`` (any experiment), or, with neither,
    every AL run of ``experiment`` (single runs and sweep trials; not the sweeps' parent runs)."""
    client = _client(uri)
    if run_ids:
        runs = []
        for rid in run_ids:
            try:
                runs.append(client.get_run(str(rid)))
            except Exception as e:  # noqa: BLE001 - MLflow raises its own exception type for a bad id
                raise TrackingError(f"report.run_ids: no run {rid!r} at {uri} ({type(e).__name__})") from None
        return None, runs
    exp_id = _experiment_id(client, experiment)
    if sweep_id is None:
        runs = [r for r in _search_all(client, exp_id, "", ["attributes.start_time ASC"])
                if r.data.tags.get(ROLE_TAG) != "sweep" and "mlflow.parentRunId" not in r.data.tags
                or r.data.tags.get(ROLE_TAG) == "trial"]
        if not runs:
            raise TrackingError(f"report: MLflow experiment {experiment!r} at {uri} has no runs")
        return None, runs
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


def _histories(client, run, keys: Sequence[str]) -> dict[int, dict[str, float]]:
    per_round: dict[int, dict[str, float]] = {}
    for key in keys:
        for m in client.get_metric_history(run.info.run_id, key):
            per_round.setdefault(int(m.step), {})[key] = float(m.value)
    return per_round


def runs_frame(uri: str, runs: Sequence[Any], report_id: str, progress: Callable[[int, int], None] | None = None):
    """The long-form per-round table of ``runs`` (pandas DataFrame): identity columns, the
    run's params as ``param.<key>``, and every per-round metric. Metric histories are fetched
    by a few threads (one MLflow call per run and metric), ``progress(done, total)`` after each run."""
    import pandas as pd
    from concurrent.futures import ThreadPoolExecutor

    client = _client(uri)
    keys = {run.info.run_id: sorted(k for k in run.data.metrics if k not in SUMMARY_METRICS) for run in runs}
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(runs)))) as pool:
        futures = [pool.submit(_histories, client, run, keys[run.info.run_id]) for run in runs]
        for i, (run, fut) in enumerate(zip(runs, futures), 1):
            per_round = fut.result()
            tags, params = run.data.tags, run.data.params
            strategy = tags.get("strategy", params.get("strategy.name"))
            ident = {"sweep": tags.get("sweep_id", report_id), "trial": tags.get("trial_id", run.info.run_id),
                     "run_id": run.info.run_id, "arm": tags.get("arm") or strategy or run.info.run_name,
                     "seed": _int(tags.get("seed", params.get("al.seed"))), "strategy": strategy,
                     "dataset": tags.get("dataset", params.get("dataset.name")), "status": run.info.status,
                     # the quality matrix's axes: the named setting (conf/setting/) and the method
                     "setting": tags.get("setting", params.get("setting.name")), "method": tags.get("method"),
                     "long_tailed": tags.get("long_tailed") == "true",
                     # the run's wall time in MLflow (start to end; the run-time split's overhead)
                     "run_wall_s": (run.info.end_time - run.info.start_time) / 1000
                     if run.info.end_time and run.info.start_time else None}
            summary = {k: run.data.metrics.get(k) for k in SUMMARY_METRICS}
            p = {f"param.{k}": v for k, v in params.items()}
            for r in sorted(per_round):
                rows.append({**ident, "round": r, **per_round[r], **{f"run_{k}": v for k, v in summary.items()}, **p})
            if progress is not None:
                progress(i, len(runs))
    df = pd.DataFrame(rows)
    if df.empty:
        raise TrackingError(f"report: the runs of {report_id!r} have no per-round metrics")
    first = [c for c in ID_COLUMNS + ["labels", "accuracy", "balanced_accuracy"] if c in df.columns]
    rest = sorted(c for c in df.columns if c not in first)
    df = df[first + rest].sort_values(["arm", "seed", "round"], kind="stable").reset_index(drop=True)
    if "labels" in df.columns:
        df["labels"] = df["labels"].astype("int64")
    return df


def sweep_frame(uri: str, experiment: str, sweep_id: str, progress: Callable[[int, int], None] | None = None):
    """The long-form per-round table of a sweep (pandas DataFrame), and the parent run."""
    parent, runs = load_runs(uri, experiment, sweep_id)
    return runs_frame(uri, runs, sweep_id, progress), parent


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
        for key in ("setting", "method", "long_tailed"):
            if key in g.columns:
                row[key] = first[key]
        if "balanced_accuracy" in g.columns and not _nan(g["balanced_accuracy"].iloc[-1]):
            row["final_balanced_accuracy"] = float(g["balanced_accuracy"].iloc[-1])
            if not g["balanced_accuracy"].isna().any():
                row["aubc_balanced"] = aubc(g["labels"].tolist(), g["balanced_accuracy"].tolist())
        wall = first.get("run_wall_s")
        if wall is not None and not _nan(wall):
            row["seconds_wall"] = float(wall)
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


def verdict(pairs: int, p_wilcoxon: float, alpha: float = 0.05) -> str:
    """What a paired comparison may claim: nothing below :data:`MIN_PAIRS` pairs (the Wilcoxon
    test cannot reach p < 0.05 with fewer than 6 pairs, and a t-test on 2-4 differences is
    noise), else significant or not at ``alpha`` (Wilcoxon signed-rank)."""
    if pairs < MIN_PAIRS:
        return f"too few pairs (n < {MIN_PAIRS}): no claim"
    if not _nan(p_wilcoxon) and p_wilcoxon < alpha:
        return f"**significant** (Wilcoxon p < {alpha:g})"
    return "not significant"


def paired_markdown(paired) -> str:
    if paired.empty:
        return "_no paired seeds_"
    rows = [[r.arm, int(r.pairs), f"{r.mean_diff:+.4f} ± {r.std_diff:.4f}", f"{r.wins}/{r.ties}/{r.losses}",
             _p(r.p_wilcoxon) + ("⚠" if r.pairs < MIN_PAIRS else ""), _p(r.p_ttest) + ("⚠" if r.pairs < MIN_PAIRS else ""),
             verdict(int(r.pairs), r.p_wilcoxon)] for r in paired.itertuples()]
    return markdown(["arm", "pairs", f"Δ{paired['metric'].iloc[0]} vs {paired['reference'].iloc[0]} (mean ± std)",
                     "wins/ties/losses", "Wilcoxon p", "paired t p", "verdict"], rows)


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
    for ax in list(axes.flat)[len(arms):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


MIN_PAIRS = 5  # below this many paired seeds, p-values are shown with a caution and never as significant


#: the ``report:`` section's keys and what each holds (conf/report.yaml)
REPORT_OPTIONS: dict[str, str] = {"sweep_id": "a sweep id, a list of sweep ids or null",
                                  "run_ids": "a list of MLflow run ids or null",
                                  "runs_files": "a list of JSON-lines files of matrix runs or null",
                                  "all_runs": "true or false", "out_dir": "a folder or null",
                                  "reference": "an arm name or null", "log_to_parent": "true or false",
                                  "list": "true or false"}


def check_report_options(opts: Mapping[str, Any], uri: str) -> None:
    """The ``report:`` section's values (type of each key; ``out_dir`` writable) and the store:
    a report reads an existing MLflow store, it never creates one. Raises ConfigError or
    TrackingError naming the key, before anything is read or written."""
    for key, value in opts.items():
        want = REPORT_OPTIONS.get(key)
        if want is None:
            raise ConfigError(f"report.{key}: unknown key; valid keys: {', '.join(REPORT_OPTIONS)}")
        if want == "true or false":
            ok = isinstance(value, bool)
        elif key in ("run_ids", "runs_files") or (key == "sweep_id" and isinstance(value, list)):
            ok = value is None or (isinstance(value, list) and bool(value)
                                   and all(isinstance(r, str) and r.strip() and "\x00" not in r for r in value))
        else:  # a name or a folder, or null
            ok = value is None or (isinstance(value, str) and bool(value.strip()) and "\x00" not in value)
        if not ok:
            raise ConfigError(f"report.{key}: expected {want}; got {value!r:.80}")
    if opts.get("out_dir"):
        check_writable_folder(opts["out_dir"], "report.out_dir")
    for f in opts.get("runs_files") or []:
        if not Path(f).expanduser().is_file():
            raise ConfigError(f"report.runs_files: {f} is not a file (expected a JSON-lines file of matrix runs, "
                              "e.g. bench/reference/quality_runs_2026-11-30.jsonl or a report's matrix_runs.jsonl)")
    if matrix_only(opts):
        return  # reads no store
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).expanduser().is_file():
        raise TrackingError(f"tracking.uri: no MLflow store at {uri[len('sqlite:///'):]} (nothing was tracked there "
                            "yet); run autoal run or autoal sweep first, or point tracking.uri at the store")


def matrix_only(opts: Mapping[str, Any]) -> bool:
    """A report of JSON-lines matrix runs alone (``report.runs_files`` without a sweep, run ids or
    all_runs): it reads no MLflow store."""
    return bool(opts.get("runs_files")) and not (opts.get("sweep_id") or opts.get("run_ids") or opts.get("all_runs"))


def _digest(items: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha256(",".join(sorted(map(str, items))).encode()).hexdigest()[:8]


def report_id_for(sweep_id: str | Sequence[str] | None, run_ids: Sequence[str] | None, experiment: str,
                  runs_files: Sequence[str] | None = None) -> str:
    """The folder name of a report: the sweep id, ``sweeps-<hash of the ids>`` for several sweeps,
    ``runs-<hash of the ids>``, ``experiment-<name>``, or ``matrix-<hash of the files>``."""
    if isinstance(sweep_id, (list, tuple)):
        for one in sweep_id:
            report_id_for(one, None, experiment)  # each a plain name
        return sweep_id[0] if len(sweep_id) == 1 else "sweeps-" + _digest(sweep_id)
    if runs_files and not sweep_id and not run_ids and experiment == "":
        return "matrix-" + _digest([str(Path(f).resolve()) for f in runs_files])
    if sweep_id:
        if "/" in sweep_id or "\\" in sweep_id or sweep_id in (".", "..") or "\x00" in sweep_id:
            raise TrackingError(f"report.sweep_id: expected a sweep id (a plain name: it names the report folder); "
                                f"got {sweep_id!r}")
        return sweep_id
    if run_ids:
        return "runs-" + _digest(run_ids)
    return "experiment-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)


def panel_grid(n: int, height: float, per_row: int = 3):
    """A figure of ``n`` panels, at most ``per_row`` a row (axes as a 2-D array; the unused ones
    are switched off by the caller)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(n, per_row)
    nrows = math.ceil(n / ncols)
    return plt.subplots(nrows, ncols, figsize=(4.2 * ncols, height * nrows), dpi=120, squeeze=False)


def write_matrix_report(runs_files: Sequence[str], out_dir: str | Path) -> Report:
    """The quality-matrix report of JSON-lines runs alone (no MLflow store): ``matrix.md``,
    ``report.md`` and the figures in ``out_dir``."""
    from autoal.platform.matrix_report import load_runs_files, write_matrix_section

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(sweep_id=report_id_for(None, None, "", runs_files), out_dir=out)
    lines = write_matrix_section(load_runs_files(runs_files), out, rep.files)
    rep.summary_markdown = rep.files["matrix_md"].read_text() if "matrix_md" in rep.files else ""
    rep.files["report"] = out / "report.md"
    rep.files["report"].write_text("\n".join([f"# Matrix of {', '.join(map(str, runs_files))}", "", *lines]))
    return rep


def write_report(uri: str, experiment: str, sweep_id: str | Sequence[str] | None, out_dir: str | Path, *,
                 reference: str | None = None, log_to_parent: bool = True, run_ids: Sequence[str] | None = None,
                 all_runs: bool = False, runs_files: Sequence[str] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Report:
    """Build every table and figure of a set of runs into ``out_dir``: the sweep ``sweep_id``
    (None: the latest sweep; a list: several sweeps together, e.g. two parts of one matrix), the
    runs ``run_ids``, or (``all_runs``) every AL run of the experiment; ``runs_files`` (JSON-lines
    matrix runs, e.g. ``bench/reference/``) join the quality-matrix section, and alone make a
    report of their own without a store. A single sweep's report is also logged on its parent run."""
    if runs_files and not sweep_id and not run_ids and not all_runs:
        return write_matrix_report(runs_files, out_dir)
    if run_ids:
        parent, runs = load_runs(uri, experiment, run_ids=run_ids)
        report_id = report_id_for(None, run_ids, experiment)
    elif all_runs:
        parent, runs = load_runs(uri, experiment)
        report_id = report_id_for(None, None, experiment)
    elif isinstance(sweep_id, (list, tuple)) and len(sweep_id) > 1:
        report_id = report_id_for(list(sweep_id), None, experiment)
        parent, runs = None, []
        for one in sweep_id:
            runs += load_runs(uri, experiment, one)[1]
    else:
        sweep_id = (sweep_id[0] if isinstance(sweep_id, (list, tuple)) else sweep_id) or latest_sweep_id(uri, experiment)
        parent, runs = load_runs(uri, experiment, sweep_id)
        report_id = sweep_id
    df = runs_frame(uri, runs, report_id, progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = arm_order(df, parent)
    rep = Report(sweep_id=report_id, out_dir=out, parent_run_id=parent.info.run_id if parent is not None else None)
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
    what = f"Sweep {report_id}" if parent is not None or (sweep_id and not run_ids and not all_runs) else \
        f"Runs {report_id}"
    sections = [f"# {what}", "", f"{len(trials)} runs, {len(order)} arms, dataset "
                f"{', '.join(sorted(set(map(str, df['dataset']))))}.", "", "## AUBC and final accuracy", "",
                rep.summary_markdown, ""]
    if ref is not None and len(finished_arms) > 1:
        paired = paired_comparison(trials, ref, order)
        files["paired_csv"] = out / "paired.csv"
        paired.to_csv(files["paired_csv"], index=False)
        files["paired_md"] = out / "paired.md"
        files["paired_md"].write_text(paired_markdown(paired) + "\n")
        sections += [f"## Paired comparison against `{ref}` (AUBC, over seeds)", "", paired_markdown(paired), ""]
        few = paired[paired["pairs"] < MIN_PAIRS] if not paired.empty else paired
        if not few.empty:
            many = len(few) > 1
            sections += [f"> **Caution:** {', '.join(map(str, few['arm']))} {'have' if many else 'has'} fewer than "
                         f"{MIN_PAIRS} paired seeds with `{ref}`; {'their' if many else 'its'} p-values say little "
                         "and none is called significant. Run more seeds.", ""]
        wl = plot_win_loss(trials, out / "win_loss.png", order)
        if wl is not None:
            files["win_loss"] = wl
            sections += ["## Wins and losses over paired seeds", "",
                         "Row arm's AUBC against the column arm's, seed by seed (wins / paired seeds).", "",
                         "![win/loss](win_loss.png)", ""]
    title = f"{report_id} · {', '.join(sorted(set(map(str, df['dataset']))))}"
    lc = plot_learning_curves(df, out / "learning_curves.png", order, title=title)
    if lc is not None:
        files["learning_curves"] = lc
        sections += ["## Learning curves (mean ± std over seeds)", "", "![learning curves](learning_curves.png)", ""]
    hp = plot_hyperparameters(trials, df, out / "hyperparameters.png", varied=_varied_keys(df, parent))
    if hp is not None:
        files["hyperparameters"] = hp
        sections += ["## AUBC against each swept key (mean ± std over seeds)", "",
                     "![hyperparameters](hyperparameters.png)", ""]
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
    # autoal_credit's credit from the labels that arrive: competence/<cand> on each candidate's picks
    c = plot_trace(df, out / "credit.png", order, "competence/", "accuracy before labeling",
                   "credit from the labels: the model's competence on each candidate's picks")
    if c is not None:
        files["credit"] = c
        sections += ["## Credit from the labels that arrive (competence on each candidate's picks)", "",
                     "![credit](credit.png)", ""]
    from autoal.platform.matrix_report import load_runs_files, matrix_records, write_matrix_section

    records = matrix_records(trials)
    if records or runs_files:
        sections += write_matrix_section([*(load_runs_files(runs_files) if runs_files else []), *records], out, files)
    rt = runtime_split(trials, order)
    if rt is not None:
        files["runtime_csv"] = out / "runtime.csv"
        rt.to_csv(files["runtime_csv"], index=False)
        files["runtime_md"] = out / "runtime.md"
        files["runtime_md"].write_text(runtime_markdown(rt) + "\n")
        files["runtime"] = plot_runtime(rt, out / "runtime.png")
        sections += ["## Runtime per run (Table 2)", "", runtime_markdown(rt), "", "![runtime](runtime.png)", ""]
    ch = plot_class_histograms(uri, trials, out / "class_histograms.png", order)
    if ch is not None:
        files["class_histograms"] = ch
        sections += ["## The labeled set's classes per round (first seed of each arm)", "",
                     "![class histograms](class_histograms.png)", ""]
    files["report"] = out / "report.md"
    files["report"].write_text("\n".join(sections))
    if log_to_parent and parent is not None:
        client = _client(uri)
        call_serialized(sqlite_lock_path(uri),
                        lambda: [client.log_artifact(parent.info.run_id, str(p), "report") for p in files.values()])
    return rep


# ------------------------------------------------------------------------------- the new figures

#: config keys that never describe what a run computes (where it writes, how it is tracked)
_NOT_HYPERPARAMETERS = ("al.seed", "tracking.", "runtime.", "scoring.num_actors", "scoring.gpus_per_actor",
                        "scoring.num_cpus", "scoring.executor", "dataset.root", "dataset.path", "dataset.download")


def _varied_keys(df, parent) -> list[str]:
    """The swept keys: the parent run's ``sweep.varied_keys`` when recorded, else the params
    whose values differ between the runs (seeds, paths and tracking settings aside)."""
    if parent is not None and parent.data.params.get("sweep.varied_keys"):
        try:
            return [k for k in json.loads(parent.data.params["sweep.varied_keys"]) if f"param.{k}" in df.columns]
        except ValueError:
            pass
    keys = []
    done = df[df["status"] == "FINISHED"]
    for col in (c for c in done.columns if c.startswith("param.")):
        k = col[len("param."):]
        if k.startswith(_NOT_HYPERPARAMETERS):
            continue
        if done.groupby("run_id")[col].first().nunique() > 1:
            keys.append(k)
    return sorted(keys)


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
        keys = sorted(groups, key=lambda v: (nums[v] if numeric else str(v)))
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

    parts = [("candidate_scoring_s", "candidate scoring"), ("search_s", "search"),
             ("task_training_s", "task training"), ("selection_other_s", "selection (rest)")]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(rt) + 2), 3.6), dpi=120)
    bottom = np.zeros(len(rt))
    for col, label in parts:
        vals = rt[col].to_numpy(dtype=float)
        ax.bar(range(len(rt)), vals, bottom=bottom, label=label)
        bottom += vals
    for i, r in enumerate(rt.itertuples()):
        if not _nan(r.relative_to_entropy):
            ax.text(i, bottom[i], f"{r.relative_to_entropy:.2f}×", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rt)))
    ax.set_xticklabels(list(rt["arm"]), rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("seconds per run (mean)")
    ax.set_title("runtime split (× Entropy above the bars)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


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
    client = _client(uri)
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
                panels.append((f"{arm} (seed {g.iloc[0]['seed']})", d["class_counts_per_round"], d.get("classes") or []))
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
            ax.bar(range(len(c)), c[:, k], bottom=bottom, color=cmap(k % cmap.N),
                   label=str(classes[k]) if k < len(classes) else str(k))
            bottom += c[:, k]
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("round")
        ax.set_ylabel("labeled")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(labels) <= 20:
        fig.legend(handles, labels, fontsize=6, ncol=min(10, len(labels)), loc="lower center", title="class",
                   title_fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, path)
