"""Writing a report (:func:`write_report`): every table and figure of a set of runs into one
folder with ``report.md`` tying them together, logged on the sweep's parent run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from autoal.platform.report.figures import (
    plot_class_histograms,
    plot_hyperparameters,
    plot_learning_curves,
    plot_runtime,
    plot_trace,
    plot_win_loss,
)
from autoal.platform.report.options import report_id_for
from autoal.platform.report.paired import MIN_PAIRS, paired_comparison, paired_markdown
from autoal.platform.report.runs import arm_order, latest_sweep_id, load_runs, runs_frame, trial_table
from autoal.platform.report.tables import arm_summary, runtime_markdown, runtime_split, summary_markdown
from autoal.tracking import call_serialized, mlflow_client, sqlite_lock_path


@dataclass
class Report:
    sweep_id: str
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary_markdown: str = ""
    reference: str | None = None
    parent_run_id: str | None = None


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


def write_report(
    uri: str,
    experiment: str,
    sweep_id: str | Sequence[str] | None,
    out_dir: str | Path,
    *,
    reference: str | None = None,
    log_to_parent: bool = True,
    run_ids: Sequence[str] | None = None,
    all_runs: bool = False,
    runs_files: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Build every table and figure of a set of runs into ``out_dir``: the sweep ``sweep_id``
    (None: the latest sweep; a list: several sweeps together, e.g. two parts of one matrix), the
    runs ``run_ids``, or (``all_runs``) every AL run of the experiment; ``runs_files`` (JSON-lines
    matrix runs, e.g. ``bench/reference/``) join the quality-matrix section, and alone make a
    report of their own without a store. A single sweep's report is also logged on its parent run."""
    if runs_files and not sweep_id and not run_ids and not all_runs:
        return write_matrix_report(runs_files, out_dir)
    parent, runs, report_id, of_sweeps = _select_runs(uri, experiment, sweep_id, run_ids, all_runs)
    df = runs_frame(uri, runs, report_id, progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = arm_order(df, parent)
    rep = Report(sweep_id=report_id, out_dir=out, parent_run_id=parent.info.run_id if parent is not None else None)
    files = rep.files
    trials, summary = _write_tables(df, order, out, files)
    rep.summary_markdown = summary_markdown(summary)
    files["summary_md"] = out / "summary.md"
    files["summary_md"].write_text(rep.summary_markdown + "\n")

    finished_arms = list(summary["arm"]) if not summary.empty else []
    ref = rep.reference = _reference_arm(reference, parent, trials, finished_arms)
    what = f"Sweep {report_id}" if parent is not None or of_sweeps else f"Runs {report_id}"
    datasets = ", ".join(sorted(set(map(str, df["dataset"]))))
    sections = [
        f"# {what}",
        "",
        f"{len(trials)} runs, {len(order)} arms, dataset {datasets}.",
        "",
        "## AUBC and final accuracy",
        "",
        rep.summary_markdown,
        "",
    ]
    if ref is not None and len(finished_arms) > 1:
        sections += _paired_sections(trials, ref, order, out, files)
    sections += _curve_sections(df, trials, parent, order, out, files, title=f"{report_id} · {datasets}")
    from autoal.platform.matrix_report import load_runs_files, matrix_records, write_matrix_section

    records = matrix_records(trials, df)
    if records or runs_files:
        sections += write_matrix_section([*(load_runs_files(runs_files) if runs_files else []), *records], out, files)
    sections += _runtime_sections(trials, order, out, files)
    ch = plot_class_histograms(uri, trials, out / "class_histograms.png", order)
    if ch is not None:
        files["class_histograms"] = ch
        sections += [
            "## The labeled set's classes per round (first seed of each arm)",
            "",
            "![class histograms](class_histograms.png)",
            "",
        ]
    files["report"] = out / "report.md"
    files["report"].write_text("\n".join(sections))
    if log_to_parent and parent is not None:
        client = mlflow_client(uri)
        call_serialized(
            sqlite_lock_path(uri),
            lambda: [client.log_artifact(parent.info.run_id, str(p), "report") for p in files.values()],
        )
    return rep


def _select_runs(
    uri: str, experiment: str, sweep_id: str | Sequence[str] | None, run_ids: Sequence[str] | None, all_runs: bool
) -> tuple[Any, list, str, bool]:
    """(parent run or None, runs, report id, whether the runs are one or more sweeps' trials)."""
    if run_ids:
        parent, runs = load_runs(uri, experiment, run_ids=run_ids)
        return parent, runs, report_id_for(None, run_ids, experiment), False
    if all_runs:
        parent, runs = load_runs(uri, experiment)
        return parent, runs, report_id_for(None, None, experiment), False
    if isinstance(sweep_id, (list, tuple)) and len(sweep_id) > 1:
        runs = []
        for one in sweep_id:
            runs += load_runs(uri, experiment, one)[1]
        return None, runs, report_id_for(list(sweep_id), None, experiment), True
    sweep_id = (sweep_id[0] if isinstance(sweep_id, (list, tuple)) else sweep_id) or latest_sweep_id(uri, experiment)
    parent, runs = load_runs(uri, experiment, sweep_id)
    return parent, runs, sweep_id, bool(sweep_id)


def _write_tables(df, order: Sequence[str], out: Path, files: dict[str, Path]):
    """Write ``rounds.parquet``, ``trials.csv`` and ``summary.csv``; return (trials, summary)."""
    files["rounds"] = out / "rounds.parquet"
    df.to_parquet(files["rounds"], index=False)
    trials = trial_table(df)
    files["trials"] = out / "trials.csv"
    trials.to_csv(files["trials"], index=False)
    summary = arm_summary(trials, order)
    files["summary_csv"] = out / "summary.csv"
    summary.to_csv(files["summary_csv"], index=False)
    return trials, summary


def _reference_arm(reference: str | None, parent, trials, finished_arms: Sequence[str]) -> str | None:
    """The arm the others are compared with: ``reference``, else the sweep's recorded reference,
    when it finished; else the first finished AutoAL arm, else the first finished arm."""
    ref = reference or (parent.data.tags.get("reference") if parent is not None else None) or None
    if ref is None or ref not in finished_arms:
        ref = next((a for a in finished_arms if trials[trials["arm"] == a]["strategy"].eq("autoal").any()), None) or (
            finished_arms[0] if finished_arms else None
        )
    return ref


def _paired_sections(trials, ref: str, order: Sequence[str], out: Path, files: dict[str, Path]) -> list[str]:
    """Write ``paired.csv``, ``paired.md`` and ``win_loss.png``; return their report lines."""
    paired = paired_comparison(trials, ref, order)
    files["paired_csv"] = out / "paired.csv"
    paired.to_csv(files["paired_csv"], index=False)
    files["paired_md"] = out / "paired.md"
    files["paired_md"].write_text(paired_markdown(paired) + "\n")
    sections = [f"## Paired comparison against `{ref}` (AUBC, over seeds)", "", paired_markdown(paired), ""]
    few = paired[paired["pairs"] < MIN_PAIRS] if not paired.empty else paired
    if not few.empty:
        many = len(few) > 1
        sections += [
            f"> **Caution:** {', '.join(map(str, few['arm']))} {'have' if many else 'has'} fewer than "
            f"{MIN_PAIRS} paired seeds with `{ref}`; {'their' if many else 'its'} p-values say little "
            "and none is called significant. Run more seeds.",
            "",
        ]
    wl = plot_win_loss(trials, out / "win_loss.png", order)
    if wl is not None:
        files["win_loss"] = wl
        sections += [
            "## Wins and losses over paired seeds",
            "",
            "Row arm's AUBC against the column arm's, seed by seed (wins / paired seeds).",
            "",
            "![win/loss](win_loss.png)",
            "",
        ]
    return sections


def _curve_sections(
    df, trials, parent, order: Sequence[str], out: Path, files: dict[str, Path], title: str
) -> list[str]:
    """Draw the learning curves, AUBC per swept key, AutoAL's weights and shares (Fig. 5) and the
    credit formulation's competence; return the report lines of those drawn."""
    sections: list[str] = []
    lc = plot_learning_curves(df, out / "learning_curves.png", order, title=title)
    if lc is not None:
        files["learning_curves"] = lc
        sections += ["## Learning curves (mean ± std over seeds)", "", "![learning curves](learning_curves.png)", ""]
    hp = plot_hyperparameters(trials, df, out / "hyperparameters.png", varied=varied_keys(df, parent))
    if hp is not None:
        files["hyperparameters"] = hp
        sections += [
            "## AUBC against each swept key (mean ± std over seeds)",
            "",
            "![hyperparameters](hyperparameters.png)",
            "",
        ]
    # the paper formulation logs SearchNet's mean weights w_mean/<cand>, the lookahead formulation
    # its weights over candidates weight/<cand>: both are Fig. 5
    w = plot_trace(
        df,
        out / "weights.png",
        order,
        ("w_mean/", "weight/"),
        "weight of the candidate",
        "AutoAL strategy weights per round",
    )
    if w is not None:
        files["weights"] = w
        sections += ["## Strategy weights per round (Fig. 5)", "", "![weights](weights.png)", ""]
    s = plot_trace(df, out / "shares.png", order, "share/", "share of the picks", "candidates' shares of the picks")
    if s is not None:
        files["shares"] = s
        sections += ["![shares](shares.png)", ""]
    # autoal_credit's credit from the labels that arrive: competence/<cand> on each candidate's picks
    c = plot_trace(
        df,
        out / "credit.png",
        order,
        "competence/",
        "accuracy before labeling",
        "credit from the labels: the model's competence on each candidate's picks",
    )
    if c is not None:
        files["credit"] = c
        sections += [
            "## Credit from the labels that arrive (competence on each candidate's picks)",
            "",
            "![credit](credit.png)",
            "",
        ]
    return sections


def _runtime_sections(trials, order: Sequence[str], out: Path, files: dict[str, Path]) -> list[str]:
    """Write ``runtime.csv``, ``runtime.md`` and ``runtime.png`` (Table 2) when the runs logged
    their timings; return the report lines."""
    rt = runtime_split(trials, order)
    if rt is None:
        return []
    files["runtime_csv"] = out / "runtime.csv"
    rt.to_csv(files["runtime_csv"], index=False)
    files["runtime_md"] = out / "runtime.md"
    files["runtime_md"].write_text(runtime_markdown(rt) + "\n")
    files["runtime"] = plot_runtime(rt, out / "runtime.png")
    return ["## Runtime per run (Table 2)", "", runtime_markdown(rt), "", "![runtime](runtime.png)", ""]


#: config keys that never describe what a run computes (where it writes, how it is tracked)
_NOT_HYPERPARAMETERS = (
    "al.seed",
    "tracking.",
    "runtime.",
    "scoring.num_actors",
    "scoring.gpus_per_actor",
    "scoring.num_cpus",
    "scoring.executor",
    "dataset.root",
    "dataset.path",
    "dataset.download",
)


def varied_keys(df, parent) -> list[str]:
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
        k = col[len("param.") :]
        if k.startswith(_NOT_HYPERPARAMETERS):
            continue
        if done.groupby("run_id")[col].first().nunique() > 1:
            keys.append(k)
    return sorted(keys)
