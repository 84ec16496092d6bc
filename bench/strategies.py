"""Benchmark (issue 2): a 10-round digits run of each candidate strategy and Random on 2 CPU
threads — wall time per run (target: under 2 minutes each) and AUBC — all logged to one MLflow
experiment so the UI shows their learning curves side by side; a combined learning-curve PNG
is written too."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

STRATEGIES = ["random", "entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std"]


def run(out_dir: Path, smoke: bool = False, tracking_uri: str | None = None, seed: int = 0) -> dict:
    from autoal.config import RunConfig
    from autoal.loop import run_experiment
    from autoal.plots import learning_curve

    torch.set_num_threads(2)
    rounds = 2 if smoke else 10
    names = STRATEGIES[:3] if smoke else STRATEGIES
    out_dir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri or f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"
    rows, curves = [], {}
    for name in names:
        cfg = RunConfig.from_dict(
            {
                "strategy": {"name": name},
                "al": {"rounds": rounds, "seed": seed},
                "tracking": {"uri": uri, "experiment": "bench-strategies"},
                "runtime": {"output_dir": str(out_dir / "runs"), "quiet": True, "resume": False, "num_threads": 2},
            }
        )
        t0 = time.perf_counter()
        res = run_experiment(cfg)
        wall = time.perf_counter() - t0
        labels, accs = res.curve
        curves[name] = (labels, accs, None)
        rows.append(
            {
                "strategy": name,
                "seconds": round(wall, 2),
                "aubc": round(res.aubc, 4),
                "final_accuracy": round(res.final_accuracy, 4),
                "under_2_min": wall < 120,
            }
        )
        print(f"{name:18s} {wall:7.1f} s  AUBC {res.aubc:.4f}  final {res.final_accuracy:.4f}", flush=True)
    learning_curve(out_dir / "strategies_digits.png", curves, title=f"digits, {rounds} rounds, seed {seed}")
    return {
        "benchmark": "strategies",
        "rounds": rounds,
        "seed": seed,
        "tracking_uri": uri,
        "rows": rows,
        "all_under_2_min": all(r["under_2_min"] for r in rows),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    res = run(Path(args.out), smoke=args.smoke)
    Path(args.out, "strategies.json").write_text(json.dumps(res, indent=1))
    return 0 if res["all_under_2_min"] else 1


if __name__ == "__main__":
    sys.exit(main())
