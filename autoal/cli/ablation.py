"""Run an ablation: named arms (config deltas) in one Ray Tune sweep with paired seeds.

    autoal ablation ablation=fig3         # SearchNet: backbone only / LPM only / both
    autoal ablation ablation=fig4         # candidate pool size 1 / 3 / 5 / 7
    autoal ablation ablation=custom       # your own deltas (conf/ablation/custom.yaml)
    autoal ablation ablation=fig3 sweep.resume=true

Same machinery, output and options as autoal sweep (conf/sweep/base.yaml documents them);
the runs carry the MLflow tag `ablation`, and the report compares every arm with the reference arm
seed by seed."""

from __future__ import annotations

from autoal.cli.common import main_guard

SCRIPT = "autoal ablation"


def main(argv: list[str]) -> int:
    from autoal.cli.sweep import command_main

    return command_main(argv, "ablation", SCRIPT, __doc__)


if __name__ == "__main__":
    main_guard(main)
