"""Run an ablation: named arms (config deltas) in one Ray Tune sweep with paired seeds.

    python pipelines/ablation.py ablation=fig3         # SearchNet: backbone only / LPM only / both
    python pipelines/ablation.py ablation=fig4         # candidate pool size 1 / 3 / 5 / 7
    python pipelines/ablation.py ablation=custom       # your own deltas (conf/ablation/custom.yaml)
    python pipelines/ablation.py ablation=fig3 sweep.resume=true

Same machinery, output and options as pipelines/sweep.py (conf/sweep/base.yaml documents them);
the runs carry the MLflow tag `ablation`, and the report compares every arm with the reference arm
seed by seed."""
from __future__ import annotations

from pipelines.common import main_guard

SCRIPT = "pipelines/ablation.py"


def main(argv: list[str]) -> int:
    from pipelines.sweep import run

    return run(argv, "ablation", SCRIPT)


if __name__ == "__main__":
    main_guard(main)
