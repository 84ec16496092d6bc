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

One module per part: :mod:`~autoal.platform.report.runs` (reading the runs),
:mod:`~autoal.platform.report.tables`, :mod:`~autoal.platform.report.paired` (paired statistics),
:mod:`~autoal.platform.report.figures`, :mod:`~autoal.platform.report.options` (the ``report:``
section) and :mod:`~autoal.platform.report.write` (the report folder).
"""

from __future__ import annotations

from autoal.platform.report.runs import (
    ID_COLUMNS,
    ROLE_TAG,
    RUNTIME_PARTS,
    SUMMARY_METRICS,
    arm_order,
    latest_sweep_id,
    list_sweeps,
    load_runs,
    runs_frame,
    sweep_frame,
    trial_table,
)
from autoal.platform.report.tables import arm_summary, markdown, runtime_markdown, runtime_split, summary_markdown
from autoal.platform.report.paired import MIN_PAIRS, paired_comparison, paired_markdown, verdict, win_loss_matrix
from autoal.platform.report.figures import (
    panel_grid,
    plot_class_histograms,
    plot_hyperparameters,
    plot_learning_curves,
    plot_runtime,
    plot_trace,
    plot_win_loss,
)
from autoal.platform.report.options import REPORT_OPTIONS, check_report_options, matrix_only, report_id_for
from autoal.platform.report.write import Report, varied_keys, write_matrix_report, write_report

__all__ = [
    "ID_COLUMNS",
    "MIN_PAIRS",
    "REPORT_OPTIONS",
    "ROLE_TAG",
    "RUNTIME_PARTS",
    "Report",
    "SUMMARY_METRICS",
    "varied_keys",
    "arm_order",
    "arm_summary",
    "check_report_options",
    "latest_sweep_id",
    "list_sweeps",
    "load_runs",
    "markdown",
    "matrix_only",
    "paired_comparison",
    "paired_markdown",
    "panel_grid",
    "plot_class_histograms",
    "plot_hyperparameters",
    "plot_learning_curves",
    "plot_runtime",
    "plot_trace",
    "plot_win_loss",
    "report_id_for",
    "runs_frame",
    "runtime_markdown",
    "runtime_split",
    "summary_markdown",
    "sweep_frame",
    "trial_table",
    "verdict",
    "win_loss_matrix",
    "write_matrix_report",
    "write_report",
]
