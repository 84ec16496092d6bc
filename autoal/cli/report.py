"""Tables and figures of a sweep, an ablation or any set of runs, read back from MLflow.

    autoal report                                  # the latest sweep in the store
    autoal report report.sweep_id=<id> report.reference=margin
    autoal report report.run_ids=[<run id>,<run id>]   # any runs (single runs, trials of several sweeps)
    autoal report report.all_runs=true             # every AL run of tracking.experiment
    autoal report report.list=true                 # the sweeps in the store

Writes learning curves (mean ± std), AUBC / final-accuracy tables (Markdown with the best in
bold, CSV), the paired comparison against the reference arm (Wilcoxon, paired t; a caution and
no claim below 5 pairs) and its win/loss matrix, AUBC against each swept key, AutoAL's
strategy-weight trace (Fig. 5), the runtime split (Table 2, stacked bars), the labeled set's
classes per round, and the per-round results as Parquet, into one folder; a sweep's report is
also logged on its parent run."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from autoal.errors import ConfigError
from autoal.writable import check_writable_folder, space_for
from autoal.cli.common import answer_info_flags, compose, main_guard, mlflow_ui_command, results_table, split_flags


def main(argv: list[str]) -> int:
    from autoal.platform.report import check_report_options, list_sweeps, write_report
    from autoal.tracking import absolute_tracking_uri
    from autoal.tracking import check_tracking_uri, store_path

    flags, argv = split_flags(argv)
    if answer_info_flags(flags, "autoal report", __doc__, "report", argv):
        return 0
    if flags.get("multirun") or flags.get("check"):
        raise ConfigError(
            f"{'-m' if flags.get('multirun') else '--check'}: not an option of autoal report (it "
            "reads runs and writes a report folder)"
        )
    cfg = compose(argv, "report")
    opts, tracking = cfg["report"], cfg["tracking"]
    if not isinstance(tracking.get("uri"), str) or not isinstance(tracking.get("experiment"), str):
        raise ConfigError(
            f"tracking.uri, tracking.experiment: expected the store and experiment to read; got "
            f"{tracking.get('uri')!r}, {tracking.get('experiment')!r}"
        )
    uri = absolute_tracking_uri(tracking["uri"])
    check_tracking_uri(uri, reading=True)
    check_report_options(opts, uri)
    if opts.get("list"):
        rows = list_sweeps(uri, tracking["experiment"])
        print(results_table(rows, ["sweep_id", "sweep", "status", "run_id"]) if rows else "no sweeps in the store")
        return 0
    run_ids = _run_ids(opts)
    all_runs = bool(opts.get("all_runs"))
    runs_files = opts.get("runs_files")
    sweep_id, report_id = _report_target(opts, uri, tracking["experiment"], run_ids, all_runs)
    out_dir = opts.get("out_dir") or str(Path("runs") / "reports" / report_id)
    if not opts.get("out_dir"):  # the default folder: checked as report.out_dir is (check_report_options)
        check_writable_folder(out_dir, "report.out_dir")
    step = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - step[0] >= 2.0:  # a line at most every 2 s, and the last one
            step[0] = now
            print(f"fetching metric histories: {done}/{total} runs", file=sys.stderr, flush=True)

    # a full disk: one line naming the file (a full store, where the report is logged: the store)
    with space_for(store_path(uri), "tracking.uri", store=True), space_for(out_dir, "report.out_dir"):
        rep = write_report(
            uri,
            tracking["experiment"],
            sweep_id,
            out_dir,
            reference=opts.get("reference"),
            log_to_parent=bool(opts.get("log_to_parent", True)),
            run_ids=run_ids,
            all_runs=all_runs,
            runs_files=runs_files,
            progress=progress,
        )
    _print_report(rep, report_id, uri)
    return 0


def _run_ids(opts) -> list[str] | None:
    """``report.run_ids``: None or a list of MLflow run ids (anything else is a ConfigError)."""
    run_ids = opts.get("run_ids")
    if run_ids is not None and (not isinstance(run_ids, list) or not all(isinstance(r, str) and r for r in run_ids)):
        raise ConfigError(
            f"report.run_ids: expected a list of MLflow run ids (report.run_ids=[id1,id2]); got {run_ids!r}"
        )
    return run_ids


def _report_target(
    opts, uri: str, experiment: str, run_ids: list[str] | None, all_runs: bool
) -> tuple[str | None, str]:
    """The sweep to report (None for given runs, every run or a matrix) and the report's id."""
    from autoal.platform.report import latest_sweep_id, matrix_only, report_id_for

    if matrix_only(opts):
        return None, report_id_for(None, None, "", opts.get("runs_files"))
    sweep_id = None if run_ids or all_runs else (opts.get("sweep_id") or latest_sweep_id(uri, experiment))
    return sweep_id, report_id_for(sweep_id, run_ids, experiment)


def _print_report(rep, report_id: str, uri: str) -> None:
    """The report's summary, paired comparison, files and figures, on stdout."""
    print(f"# {report_id}\n")
    print(rep.summary_markdown)
    if "paired_md" in rep.files:
        print(f"\npaired against {rep.reference}:\n")
        print(rep.files["paired_md"].read_text())
    print(f"report folder: {rep.out_dir.resolve()}")
    for name, path in rep.files.items():
        print(f"  {name:16s} {path.name}")
    pngs = [p for p in rep.files.values() if p.suffix == ".png"]
    if pngs:
        print("figures:\n" + "\n".join(f"  {p.resolve()}" for p in pngs))
    if rep.parent_run_id:
        print(f"logged on the parent run {rep.parent_run_id} (artifacts/report); MLflow UI: {mlflow_ui_command(uri)}")


if __name__ == "__main__":
    main_guard(main)
