"""Tables and figures of a sweep or ablation, read back from MLflow.

    autoal report                                  # the latest sweep in the store
    autoal report report.sweep_id=<id> report.reference=margin
    autoal report report.list=true                 # the sweeps in the store

Writes learning curves (mean ± std), AUBC / final-accuracy tables (Markdown with the best in
bold, CSV), the paired comparison against the reference arm (Wilcoxon, paired t), AutoAL's
strategy-weight trace (Fig. 5) and the runtime split (Table 2) when logged, and the per-round
results as Parquet, into one folder, and logs them on the sweep's parent run."""
from __future__ import annotations

from pathlib import Path

from autoal.cli.common import compose, main_guard, mlflow_ui_command, results_table


def main(argv: list[str]) -> int:
    from autoal.platform.report import list_sweeps, write_report
    from autoal.tracking import absolute_tracking_uri
    from autoal.tracking import check_tracking_uri

    cfg = compose(argv, "report")
    opts, tracking = cfg["report"], cfg["tracking"]
    uri = absolute_tracking_uri(tracking["uri"])
    check_tracking_uri(uri)
    if opts.get("list"):
        rows = list_sweeps(uri, tracking["experiment"])
        print(results_table(rows, ["sweep_id", "sweep", "status", "run_id"]) if rows else "no sweeps in the store")
        return 0
    from autoal.platform.report import latest_sweep_id

    sweep_id = opts.get("sweep_id") or latest_sweep_id(uri, tracking["experiment"])
    out_dir = opts.get("out_dir") or str(Path("runs") / "reports" / sweep_id)
    rep = write_report(uri, tracking["experiment"], sweep_id, out_dir, reference=opts.get("reference"),
                       log_to_parent=bool(opts.get("log_to_parent", True)))
    print(f"# {sweep_id}\n")
    print(rep.summary_markdown)
    if "paired_md" in rep.files:
        print(f"\npaired against {rep.reference}:\n")
        print(rep.files["paired_md"].read_text())
    print(f"report folder: {rep.out_dir.resolve()}")
    for name, path in rep.files.items():
        print(f"  {name:16s} {path.name}")
    if rep.parent_run_id:
        print(f"logged on the parent run {rep.parent_run_id} (artifacts/report); MLflow UI: {mlflow_ui_command(uri)}")
    return 0


if __name__ == "__main__":
    main_guard(main)
