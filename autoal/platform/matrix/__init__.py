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

One module per part: :mod:`~autoal.platform.matrix.records` (the run records),
:mod:`~autoal.platform.matrix.stats` (paired statistics), :mod:`~autoal.platform.matrix.build`
(the matrix), :mod:`~autoal.platform.matrix.markdown` (tables) and
:mod:`~autoal.platform.matrix.figures` (heat map, run-time split).
"""

from __future__ import annotations

from autoal.platform.matrix.records import (
    LEGACY_LONG_TAILED,
    LEGACY_METHOD_NAMES,
    RUNTIME_PARTS,
    MatrixRun,
    as_runs,
    merge_runs,
    method_name,
    read_jsonl_runs,
    run_from_record,
)
from autoal.platform.matrix.stats import (
    ALPHA,
    BETTER,
    EXACT_MAX,
    LEVEL,
    MIN_PAIRS,
    NO_CLAIM,
    REFERENCE,
    WORSE,
    bootstrap_ci,
    verdict,
    wilcoxon_signed_rank_p,
)
from autoal.platform.matrix.build import MatrixReport, MethodStats, PairedDiff, SettingTable, build_matrix
from autoal.platform.matrix.markdown import against_best_rows, matrix_markdown, setting_rows, summary_rows
from autoal.platform.matrix.figures import heat_map, runtime_means, runtime_split

__all__ = [
    "ALPHA",
    "BETTER",
    "EXACT_MAX",
    "LEGACY_LONG_TAILED",
    "LEGACY_METHOD_NAMES",
    "LEVEL",
    "MIN_PAIRS",
    "MatrixReport",
    "MatrixRun",
    "MethodStats",
    "NO_CLAIM",
    "PairedDiff",
    "REFERENCE",
    "RUNTIME_PARTS",
    "SettingTable",
    "WORSE",
    "against_best_rows",
    "as_runs",
    "bootstrap_ci",
    "build_matrix",
    "heat_map",
    "matrix_markdown",
    "merge_runs",
    "method_name",
    "read_jsonl_runs",
    "run_from_record",
    "runtime_means",
    "runtime_split",
    "setting_rows",
    "summary_rows",
    "verdict",
    "wilcoxon_signed_rank_p",
]
