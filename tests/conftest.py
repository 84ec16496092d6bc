"""Shared fixtures. Ray, when a test needs it, is one real local instance for the session
(2 CPUs, no dashboard), shut down at the end even when tests fail."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance with 2 CPUs; shut down at the end of the session."""
    import ray

    from autoal.platform.sweep.session import worker_niceness_env

    if not ray.is_initialized():
        env = worker_niceness_env(0)  # trials at the test's priority, as the sweeps autoal starts run them
        os.environ.update(env)
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        finally:
            for k in env:
                os.environ.pop(k, None)
    try:
        yield ray
    finally:
        ray.shutdown()


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001 - pytest hook signature
    try:
        import ray
    except ImportError:  # pragma: no cover
        return
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def tmp_tracking(tmp_path):
    """A fresh SQLite MLflow store and run folder under tmp_path, as config overrides."""
    return {
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "test"},
        "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 2},
    }


@pytest.fixture
def digits_cfg(tmp_tracking):
    """A small, fast digits config (as a dict for RunConfig.from_dict)."""
    return {
        "al": {"initial_size": 20, "query_size": 10, "rounds": 2, "mc_samples": 5},
        "train": {"epochs": 10, "batch_size": 32},
        **tmp_tracking,
    }
