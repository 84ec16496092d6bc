"""Run one active-learning experiment.

    python pipelines/run.py dataset=digits strategy=margin al.rounds=5

Prints the per-round results and the command that opens the MLflow UI. Run the same command
again after a crash or Ctrl-C: the run resumes from its last completed round."""
from __future__ import annotations

from pipelines.common import compose, main_guard, mlflow_ui_command, results_table, run_config


def main(argv: list[str]) -> int:
    from autoal.loop import run_experiment

    cfg = run_config(compose(argv))
    result = run_experiment(cfg)
    rows = [{"round": h["round"], "labels": h["labels"], "accuracy": h["accuracy"],
             "balanced_acc": h["balanced_accuracy"], "s_train": h["seconds_train"],
             "s_score": h["seconds_score"], "s_select": h["seconds_select"]} for h in result.history]
    print(results_table(rows, list(rows[0])))
    print(f"\n{cfg.dataset.name} · {cfg.strategy.name} · seed {cfg.al.seed}: AUBC {result.aubc:.4f}, "
          f"final accuracy {result.final_accuracy:.4f}")
    print(f"run folder: {result.run_dir}")
    if cfg.tracking.enabled:
        print(f"MLflow UI:  {mlflow_ui_command(cfg.tracking.uri)}")
    return 0


if __name__ == "__main__":
    main_guard(main)
