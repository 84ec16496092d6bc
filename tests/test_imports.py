"""The core runs where only torch, numpy and scikit-learn exist (the GPU benchmark machine):
Ray, MLflow, Hydra and medmnist are imported only where they are used."""
import subprocess
import sys

CODE = """
import sys
for m in ['ray', 'mlflow', 'hydra', 'medmnist', 'omegaconf']:
    sys.modules[m] = None  # any import of these now fails
from autoal.config import RunConfig
from autoal.loop import run_experiment
import autoal.platform  # import-light: no ray at import time
import autoal.executors
import autoal.tracking  # MLflow only when a tracker is used
r = run_experiment(RunConfig.from_dict({'al': {'rounds': 1, 'mc_samples': 2}, 'train': {'epochs': 2},
    'strategy': {'name': 'bald'}, 'tracking': {'enabled': False},
    'runtime': {'output_dir': sys.argv[1], 'quiet': True, 'num_threads': 2}}))
print('AUBC', r.aubc)
"""


def test_core_runs_without_ray_mlflow_hydra(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "AUBC" in out.stdout


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
