"""The core runs where only its own dependencies exist (`pip install autoal`; the GPU benchmark
machine): the packages of the extras (Ray, MLflow and pandas, Hydra, PyYAML, the data packages)
are imported only where they are used."""

import subprocess
import sys

from autoal.extras import MODULES

#: hides the packages named on the command line from every finder, as if not installed: an
#: import fails and importlib.util.find_spec finds nothing (a `sys.modules[m] = None` block
#: would break libraries such as scikit-learn that look pandas up in sys.modules)
HIDE = """
import sys
HIDDEN = set(sys.argv[2].split(','))
class Hide:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        return None if name.split('.')[0] in HIDDEN else self.finder.find_spec(name, path, target)
    def __getattr__(self, attr):
        return getattr(self.finder, attr)
sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
"""

CODE = (
    HIDE
    + """
from autoal.config import RunConfig
from autoal.loop import run_experiment
import autoal.platform  # import-light: no ray at import time
import autoal.executors
import autoal.tracking  # MLflow only when a tracker is used
r = run_experiment(RunConfig.from_dict({'al': {'rounds': 1, 'mc_samples': 2}, 'train': {'epochs': 2},
    'strategy': {'name': 'bald'}, 'tracking': {'enabled': False},
    'runtime': {'output_dir': sys.argv[1], 'quiet': True, 'num_threads': 2}}))
print('AUBC', r.aubc)
import numpy as np, autoal
print('PICKS', autoal.query(np.random.default_rng(0).dirichlet(np.ones(10), size=50), n=3, strategy='margin'))
loaded = sorted({m.split('.')[0] for m in sys.modules} & HIDDEN)
print('EXTRAS LOADED', loaded)
"""
)


def test_core_runs_without_the_packages_of_the_extras(tmp_path):
    """Every package of autoal.extras.MODULES (Ray, pyarrow, MLflow, pandas, Hydra, PyYAML,
    torchvision, ...) hidden: a run with tracking off and autoal.query still work."""
    hidden = ",".join(MODULES)
    assert {"ray", "mlflow", "pandas", "pyarrow", "hydra", "omegaconf", "yaml", "torchvision", "medmnist"} <= set(
        MODULES
    )
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path), hidden], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "AUBC" in out.stdout and "PICKS [" in out.stdout, out.stdout
    assert "EXTRAS LOADED []" in out.stdout, out.stdout


def test_a_command_without_its_extra_is_one_line_naming_it(tmp_path):
    """`autoal sweep` without Ray, `autoal run` without Hydra, a tracked run without MLflow: exit
    2 and one line with the `pip install 'autoal[...]'` that installs what is missing."""
    cases = [
        ("ray", ["sweep"], "error: autoal sweep needs Ray: pip install 'autoal[ray]'"),
        (
            ",".join(MODULES),
            ["sweep"],
            "error: autoal sweep needs Ray, MLflow and Hydra: pip install 'autoal[ray,mlflow,cli]'",
        ),
        ("hydra,omegaconf", ["run"], "error: autoal run needs Hydra: pip install 'autoal[cli]'"),
        ("ray", ["run", "-m", "strategy=margin,entropy"], "error: autoal run -m needs Ray: pip install 'autoal[ray]'"),
        ("mlflow,pandas", ["report"], "error: autoal report needs MLflow: pip install 'autoal[mlflow]'"),
        (
            "mlflow,pandas",
            ["run", f"runtime.output_dir={tmp_path}"],
            "error: tracking in MLflow (tracking.uri=sqlite:///mlflow.db) needs MLflow: pip install 'autoal[mlflow]', "
            "or turn tracking off (autoal run tracking=none",
        ),
        (
            "torchvision",
            ["run", "dataset=cifar10", "tracking=none", f"runtime.output_dir={tmp_path}"],
            "error: dataset=cifar10 needs torchvision: pip install 'autoal[data]'",
        ),
        (
            "ray",
            ["run", "scoring=ray", "tracking=none", f"runtime.output_dir={tmp_path}"],
            "error: scoring.executor=ray needs Ray: pip install 'autoal[ray]', or scoring=local",
        ),
    ]
    for hidden, argv, line in cases:
        code = HIDE + "from autoal.cli import main\nmain(sys.argv[3:])\n"
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path), hidden, *argv],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert out.returncode == 2, (argv, out.stdout[-1000:], out.stderr[-2000:])
        assert out.stderr.startswith(line) and out.stderr.count("\n") == 1, (argv, out.stderr[-2000:])
        assert not list(tmp_path.glob("**/state.json")), argv  # refused before any work


LIGHT = """
import sys
from autoal.cli import main
import autoal
assert autoal.__version__
try:
    main([sys.argv[1]])
except SystemExit as e:
    assert e.code == 0, e.code
heavy = sorted(m for m in ('torch', 'numpy', 'ray', 'mlflow', 'hydra', 'sklearn') if m in sys.modules)
print('HEAVY', heavy)
print('RUN', autoal.run.__module__, 'torch' in sys.modules)
"""


def test_import_autoal_and_help_and_version_load_no_heavy_package():
    """`import autoal`, `autoal --help` and `autoal --version` import no torch (they took 3.7-5.5 s
    when the package root imported autoal.api); autoal.run is still there on first use."""
    for flag in ("--help", "--version"):
        out = subprocess.run([sys.executable, "-c", LIGHT, flag], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "HEAVY []" in out.stdout, out.stdout
        assert "RUN autoal.api True" in out.stdout, out.stdout


def test_the_package_root_names_what_it_exports():
    import autoal

    assert {"run", "query", "__version__"} <= set(dir(autoal))
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        autoal.nonexistent  # noqa: B018
