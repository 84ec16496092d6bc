"""Run one active-learning experiment.

    autoal run dataset=digits strategy=margin al.rounds=5
    autoal run --help | --cfg job | --info
    autoal run --check dataset=mnist al.rounds=20   # validate, print what would run, write nothing
    autoal run -m strategy=margin,entropy al.seed=0,1   # one Ray Tune sweep

Prints the per-round results and the command that opens the MLflow UI. Run the same command
again after a crash or Ctrl-C: the run resumes from its last completed round."""

from __future__ import annotations


from autoal.cli.common import (
    answer_info_flags,
    compose,
    main_guard,
    mlflow_ui_command,
    multirun_sweep,
    results_table,
    run_config,
    split_flags,
)
from autoal.paths import user_path


def main(argv: list[str]) -> int:
    flags, overrides = split_flags(argv)
    if answer_info_flags(flags, "autoal run", __doc__, "config", overrides):
        return 0
    if flags.get("multirun"):  # every combination as one Ray Tune sweep, tracked like autoal sweep
        from autoal.extras import require

        require("autoal run -m", "ray", "mlflow")
        from autoal.cli.sweep import run as run_sweep_cli

        fixed, sweep = multirun_sweep(overrides)
        return run_sweep_cli(
            ["sweep=base", *fixed], "sweep", "autoal run -m", sweep=sweep, check=bool(flags.get("check"))
        )
    from autoal.loop import check_run, run_experiment

    cfg = run_config(compose(overrides))
    if flags.get("check"):
        check_run(cfg)
        print(
            f"config ok: {cfg.dataset.name} · {cfg.strategy.name} · seed {cfg.al.seed}: {cfg.al.rounds} rounds of "
            f"{cfg.al.query_size} labels after {cfg.al.initial_size}, model {cfg.model.name}, run folder under "
            f"{user_path(cfg.runtime.output_dir).resolve()}, tracking "
            f"{cfg.tracking.uri if cfg.tracking.enabled else 'off'} (the data is read when the run starts)"
        )
        return 0
    result = run_experiment(cfg)
    rows = [
        {
            "round": h["round"],
            "labels": h["labels"],
            "accuracy": h["accuracy"],
            "balanced_acc": h["balanced_accuracy"],
            "s_train": h["seconds_train"],
            "s_score": h["seconds_score"],
            "s_select": h["seconds_select"],
        }
        for h in result.history
    ]
    print(results_table(rows, list(rows[0])))
    print(
        f"\n{cfg.dataset.name} · {cfg.strategy.name} · seed {cfg.al.seed}: AUBC {result.aubc:.4f}, "
        f"final accuracy {result.final_accuracy:.4f}"
    )
    print(
        f"model:      {cfg.model.name}, MC dropout {cfg.model.dropout:g} before its head (model.dropout; 0 turns it "
        f"off); weights: {result.run_dir / 'final_model.pt'}"
    )
    print(f"run folder: {result.run_dir}")
    for name, path in result.figures.items():
        print(f"  {name.replace('_', ' ') + ':':<17} {path}")
    if cfg.tracking.enabled:
        print(f"MLflow UI:  {mlflow_ui_command(cfg.tracking.uri)}")
    return 0


if __name__ == "__main__":
    main_guard(main)
