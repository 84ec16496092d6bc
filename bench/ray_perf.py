"""Ray benchmarks (issue 7): a Tune sweep of 4 AL trials with 1 vs 2 concurrent trials
(speed-up and parallel efficiency), and data-parallel pool scoring with 1 vs 2 actors. Both
figures are ratios measured in the same run on the same machine."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from bench.common import median_time, ratio, synthetic_dataset

#: Ray workers import this module by name: give them the repository root on their path,
#: whatever folder the benchmark was started from.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RAY_INIT = dict(
    num_cpus=2,
    include_dashboard=False,
    log_to_driver=False,
    configure_logging=False,
    runtime_env={"env_vars": {"PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}},
)


def _trial(config: dict) -> None:
    import torch
    from ray import tune

    from autoal.config import RunConfig
    from autoal.loop import run_experiment

    torch.set_num_threads(1)
    cfg = RunConfig.from_dict(
        {
            "strategy": {"name": "entropy"},
            "al": {"rounds": config["rounds"], "seed": config["seed"], "mc_samples": 0},
            "train": {"epochs": config["epochs"]},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": config["out"], "quiet": True, "num_threads": 1, "resume": False},
        }
    )
    res = run_experiment(cfg)
    tune.report({"aubc": res.aubc})


def sweep_concurrency(smoke: bool = False, trials: int | None = None) -> dict:
    """Wall seconds of a 4-trial Tune sweep (2 in smoke mode) with max_concurrent_trials 1 and 2
    (1 CPU per trial)."""
    trials = trials or (2 if smoke else 4)
    import ray
    from ray import tune

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(**_RAY_INIT)
    rounds, epochs = (1, 5) if smoke else (4, 50)
    walls = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for conc in (1, 2):
                tuner = tune.Tuner(
                    tune.with_resources(_trial, {"cpu": 1}),
                    param_space={
                        "seed": tune.grid_search(list(range(trials))),
                        "rounds": rounds,
                        "epochs": epochs,
                        "out": os.path.join(tmp, f"runs{conc}"),
                    },
                    tune_config=tune.TuneConfig(max_concurrent_trials=conc, metric="aubc", mode="max"),
                    run_config=tune.RunConfig(storage_path=os.path.join(tmp, "ray"), name=f"c{conc}", verbose=0),
                )
                t0 = time.perf_counter()
                grid = tuner.fit()
                walls[conc] = time.perf_counter() - t0
                if grid.errors:
                    raise RuntimeError(f"sweep trials failed: {grid.errors[0]}")
    finally:
        if started:
            ray.shutdown()
    speedup = ratio(walls[1], walls[2])
    return {
        "trials": trials,
        "seconds_1_concurrent": walls[1],
        "seconds_2_concurrent": walls[2],
        "speedup": speedup,
        "efficiency": speedup / 2,
        "target_speedup": 1.7,
        "meets_target": speedup >= 1.7,
    }


def scoring_actors(smoke: bool = False) -> dict:
    """Seconds to score a pool with 1 vs 2 Ray actors (ResNet-18-like cost per image on CPU is
    high, so a small CNN on 28x28 images with a pool of 20,000)."""
    import ray
    import torch

    from autoal.models import build_model
    from autoal.executors.ray_scoring import RayScorer

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(**_RAY_INIT)
    n = 2000 if smoke else 20000
    ds = synthetic_dataset(n, size=28)
    model = build_model("small_cnn", 1, 10, 28, width=32)
    idx = np.arange(n)
    out = {}
    try:
        for k in (1, 2):
            scorer = RayScorer(num_actors=k, num_cpus=1, num_threads=1)
            try:
                out[k] = median_time(
                    lambda: scorer(  # noqa: B023 - timed within this iteration
                        model, ds, idx, mc_samples=10, batch_size=512, device=torch.device("cpu"), seed=0
                    ),
                    1 if smoke else 3,
                )
            finally:
                scorer.close()
    finally:
        if started:
            ray.shutdown()
    return {"n_pool": n, "seconds_1_actor": out[1], "seconds_2_actors": out[2], "speedup": ratio(out[1], out[2])}
