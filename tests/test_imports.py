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
