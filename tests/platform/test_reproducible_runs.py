"""Same seed, same result, wherever in a sweep it runs (issue 21): a single run and a sweep trial of one
configuration pick the same labels and reach the same AUBC, because the thread count is a fixed,
recorded default; and the trials autoal's Ray runs at the driver's priority (sweep.worker_niceness)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoal.config import DEFAULT_THREADS, RunConfig
from autoal.platform.sweep.session import NICENESS_ENV, worker_niceness_env

pytestmark = pytest.mark.slow
AUTOAL = [sys.executable, "-m", "autoal"]
#: the overrides the ready sweep `smoke` sets (conf/sweep/smoke.yaml), for the single run
SMOKE_RUN = [
    "al.initial_size=20",
    "al.query_size=10",
    "al.rounds=1",
    "al.mc_samples=2",
    "train.epochs=3",
    "train.min_steps=40",
    "train.batch_size=32",
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", NICENESS_ENV)}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", AUTOAL_PROGRESS="off")
    return env


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def _aubc(state: dict) -> float:
    from autoal.metrics import aubc

    h = sorted(state["history"], key=lambda r: r["round"])
    return float(aubc([r["labels"] for r in h], [r["accuracy"] for r in h]))


def test_thread_count_is_a_fixed_default_and_part_of_the_identity():
    cfg = RunConfig.from_dict({})
    assert cfg.runtime.num_threads == DEFAULT_THREADS == 1 and cfg.runtime.threads() == 1
    two = RunConfig.from_dict({"runtime": {"num_threads": 2}})
    assert two.fingerprint() != cfg.fingerprint()
    # the setting's name labels a run; it is not part of what the run computes
    named = RunConfig.from_dict({"setting": {"name": "digits"}})
    assert named.fingerprint() == cfg.fingerprint()


def test_worker_niceness_env():
    assert worker_niceness_env(0) == {NICENESS_ENV: "0"}
    assert worker_niceness_env(None) == {}


def test_a_sweep_trial_and_a_single_run_of_one_configuration_agree(tmp_path):
    """`autoal sweep sweep=smoke` and `autoal run` with the same overrides: identical labeled sets
    and AUBC, seed by seed; the trials ran at the driver's niceness (MLflow tag of each trial)."""
    env = _env()
    sweep = subprocess.run(
        [*AUTOAL, "sweep", "sweep=smoke", "sweep.address=local"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    assert "STARVED" not in sweep.stdout or "nice 15" not in sweep.stdout
    trials = {
        p.name.split("-seed")[0] + f"-{p.name.split('-seed')[1].split('-')[0]}": p
        for p in (tmp_path / "runs" / "sweeps").glob("*/*")
        if (p / "state.json").exists()
    }
    assert set(trials) == {"random-0", "random-1", "margin-0", "margin-1"}, sorted(trials)
    for key in ("margin-0", "random-1"):
        strategy, seed = key.split("-")
        single = subprocess.run(
            [
                *AUTOAL,
                "run",
                f"strategy={strategy}",
                f"al.seed={seed}",
                *SMOKE_RUN,
                "tracking=none",
                "runtime.output_dir=single",
                "runtime.quiet=true",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-2000:]
        (run_dir,) = [p for p in (tmp_path / "single").iterdir() if p.name.startswith(f"digits-{strategy}-seed{seed}")]
        a, b = _state(trials[key]), _state(run_dir)
        assert a["labeled"] == b["labeled"], key
        assert _aubc(a) == _aubc(b), key
        assert [h["accuracy"] for h in a["history"]] == [h["accuracy"] for h in b["history"]], key

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("autoal")
    runs = client.search_runs([exp.experiment_id], "tags.autoal_role = 'trial'")
    assert len(runs) == 4
    expected = str(os.nice(0))  # the driver is this process's child: the same niceness
    assert {r.data.tags["process_niceness"] for r in runs} == {expected}
    assert {r.data.tags["threads"] for r in runs} == {"1"}


def test_the_status_line_says_when_trials_are_starved():
    from autoal.platform.sweep.progress import starved_text

    assert starved_text([]) == "" and starved_text([{"cpu_share": 0.9, "niceness": 0}]) == ""
    nice = starved_text([{"cpu_share": 0.04, "niceness": 15}, {"cpu_share": 0.05, "niceness": 15}])
    assert (
        nice.startswith("STARVED: trials get 5% of their CPU")
        and "nice 15" in nice
        and "sweep.worker_niceness=0" in nice
    )
    busy = starved_text(
        [{"cpu_share": 0.3, "niceness": 0}, {"cpu_share": 0.9, "niceness": 0}, {"cpu_share": 0.2, "niceness": 0}]
    )
    assert "30%" in busy and "other processes" in busy
