"""The CPU quality matrix is an autoal sweep: this alias runs ``autoal sweep sweep=quality <args>``
(settings in autoal/conf/setting/, the sweep in autoal/conf/sweep/quality.yaml; arguments are the
sweep's overrides, e.g. ``'sweep.space.setting={grid:[digits]}'`` or ``sweep.resume=true``).
The GPU setting, on a machine without Ray, MLflow or Hydra, runs with bench/gpu_quality.py."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autoal.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["sweep", "sweep=quality", *sys.argv[1:]])
