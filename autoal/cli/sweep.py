"""Run a sweep on Ray Tune: one trial = one AL run, objective AUBC, tracked in MLflow.

    autoal sweep                          # the default sweep: 4 strategies x 3 seeds on digits
    autoal sweep sweep=lam al.rounds=5    # a ready sweep from conf/sweep/, any config override
    autoal sweep sweep.resume=true        # continue the latest interrupted run of the sweep
    autoal sweep --check sweep=fig2       # validate every arm, the folders and the store; write nothing
    ray submit cluster.yaml pipelines/sweep.py -- sweep=fig2 tracking=server

Attaches to a running Ray cluster (RAY_ADDRESS, or a `ray start` cluster on this machine) or
starts a local Ray instance, and stops it on exit, Ctrl-C included. Prints progress (trials done /
running / pending, best AUBC so far), then AUBC per trial, mean ± std per arm, the report folder
and the MLflow UI command. conf/ is found through autoal.paths.conf_dir (``ray submit`` copies
this script alone to the head's home folder)."""

from __future__ import annotations

import sys

from autoal.cli.common import (
    answer_info_flags,
    compose,
    main_guard,
    mlflow_ui_command,
    results_table,
    shell_word,
    split_flags,
)
from autoal.paths import user_path

SCRIPT = "autoal sweep"


def run(
    argv: list[str], config_name: str = "sweep", script: str = SCRIPT, sweep: dict | None = None, check: bool = False
) -> int:
    """Compose, check, run, print. ``sweep`` replaces keys of the composed sweep section (``-m``);
    ``check``: stop after the checks (``--check``)."""
    from autoal.platform.sweep import SweepSpec, check_sweep, format_summary, ray_session, run_sweep

    cfg = compose(argv, config_name)
    spec = SweepSpec.from_dict({**cfg.pop("sweep"), **(sweep or {})})

    def compose_fn(extra: list[str]) -> dict:
        """The composed config with config-group options selected (an arm's `strategy: autoal`);
        the arm's selection replaces the command line's for the same group."""
        groups = {e.split("=", 1)[0] for e in extra}
        keep = [o for o in argv if o.split("=", 1)[0].lstrip("+~") not in groups]
        return compose(keep + extra, config_name)

    def say(line: str) -> None:
        print(line, flush=True)

    arms = check_sweep(spec, cfg, compose_fn)  # before Ray starts: every arm, the folders, the store
    if check:
        what = (
            f"resumes {spec.resume if isinstance(spec.resume, str) else 'the latest run of ' + spec.name}"
            if spec.resume
            else f"{len(arms)} arm(s) x {len(spec.seeds)} seed(s) = "
            f"{len(arms) * len(spec.seeds)} trial(s)"
            + (f" ({spec.search_alg} search)" if spec.searched else "")
            + (
                f", then {len(spec.leaders['seeds'])} more seed(s) for the top {spec.leaders['top']} arm(s) of "
                f"each group" + (f" and {', '.join(spec.leaders['always'])}" if spec.leaders["always"] else "")
                if spec.leaders
                else ""
            )
        )
        print(
            f"sweep ok: {spec.name}: {what}; Ray: {spec.address}; results under "
            f"{user_path(spec.storage_path).resolve() if '://' not in spec.storage_path else spec.storage_path}"
        )
        return 0
    try:
        with ray_session(spec.address, spec.num_cpus, out=say, worker_niceness=spec.worker_niceness):
            result = run_sweep(spec, cfg, compose_fn, out=say, arms=arms or None)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; Ray is stopped. Continue with:  {_resume_command(script, argv, 'true')}", file=sys.stderr
        )
        return 130
    print()
    print(format_summary(result, results_table))
    print(
        f"\nsweep {result.sweep_id}: {sum(t['status'] == 'TERMINATED' for t in result.trials)}/{len(result.trials)} "
        f"trials finished in {result.seconds:.0f} s; Tune results: {result.experiment_path}"
    )
    if result.report_dir:
        print(f"report:    {result.report_dir}/report.md")
    if result.tracking_uri:
        print(f"MLflow UI: {mlflow_ui_command(result.tracking_uri)}   (parent run {result.parent_run_id})")
    if result.interrupted:
        print(f"\ninterrupted: continue with  {_resume_command(script, argv, result.sweep_id)}", file=sys.stderr)
        return 130
    if result.failed:
        for t in result.failed:
            print(f"failed: {t['arm']} seed {t['seed']}: {t['error']}", file=sys.stderr)
        return 1
    return 0


def _resume_command(script: str, argv: list[str], sweep_id: str) -> str:
    """The command that continues the sweep: ``script`` (a command, printed as it is), the same
    arguments (each quoted for the shell, so that it runs as printed) and ``sweep.resume``."""
    return " ".join(
        [
            script,
            *(shell_word(a) for a in argv if not a.startswith("sweep.resume=")),
            shell_word(f"sweep.resume={sweep_id}"),
        ]
    )


def command_main(argv: list[str], config_name: str, script: str, doc: str | None) -> int:
    """A sweep-shaped command (``autoal sweep``, ``autoal ablation``): its flags, then :func:`run`."""
    flags, overrides = split_flags(argv)
    if answer_info_flags(flags, script, doc, config_name, overrides):
        return 0
    return run(overrides, config_name, script, check=bool(flags.get("check")))


def main(argv: list[str]) -> int:
    return command_main(argv, "sweep", SCRIPT, __doc__)


if __name__ == "__main__":
    main_guard(main)
