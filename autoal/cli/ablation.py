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
    from autoal.cli.common import config_yaml, help_text, info_text, split_flags
    from autoal.cli.sweep import run

    flags, overrides = split_flags(argv)
    if flags.get("help"):
        print(help_text(SCRIPT, __doc__, "ablation"))
    elif flags.get("info"):
        print(info_text("ablation", overrides))
    elif flags.get("cfg"):
        print(config_yaml("ablation", overrides))
    else:
        return run(overrides, "ablation", SCRIPT, check=bool(flags.get("check")))
    return 0


if __name__ == "__main__":
    main_guard(main)
