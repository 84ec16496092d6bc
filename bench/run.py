"""The benchmark entry point (issue 7): runs each benchmark, writes one JSON (machine, versions,
every figure) and a Markdown summary.

    python bench/run.py                 # everything (CPU; minutes)
    python bench/run.py --smoke         # tiny sizes, seconds: what CI runs so the benchmarks do not rot
    python bench/run.py --only kmeans candidate_scoring
    python bench/run.py --only train_throughput run_split   # training loop vs a tight loop; a run's time split
    python bench/gpu.py                 # the separate GPU mode (on a CUDA machine)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import guard_power, perf, throughput  # noqa: E402
from bench.common import machine  # noqa: E402


def benchmarks(smoke: bool) -> dict:
    """name -> zero-argument callable. Smoke sizes keep the whole set to well under a minute."""
    s = smoke
    out = {
        # with the MC candidates' stability across MC seeds on trained digits models beside the speed
        "candidate_scoring": lambda: perf.candidate_scoring(
            n_pool=2000 if s else 20000,
            repeats=1 if s else 5,
            stability_digits={"sizes": (20,), "seeds": 1, "epochs": 5} if s else {},
        ),
        # the same in the CIFAR-10 image shape, where the backbone pass costs what it does in practice
        "candidate_scoring_32px": lambda: perf.candidate_scoring(
            n_pool=2000 if s else 20000, repeats=1 if s else 3, size=32, channels=3, separate=False
        ),
        "kmeans": lambda: perf.kmeans_selection(
            n=2000 if s else 20000, d=64 if s else 512, k=20 if s else 100, repeats=1 if s else 3
        ),
        "gmm_threshold": lambda: perf.gmm_threshold_fit(n=2000 if s else 20000, repeats=1 if s else 5),
        "memory": lambda: perf.memory_growth(sizes=(1000, 2000) if s else (10000, 20000, 40000)),
        "al_round": lambda: perf.al_round(smoke=s),
        # the training loop against a tight forward/backward loop, and where a run's time goes
        "train_throughput": lambda: throughput.train_throughput(
            sizes=(20, 64) if s else (20, 64, 200, 1000), steps=4 if s else 40, repeats=1 if s else 5
        ),
        "run_split": lambda: throughput.run_split(smoke=s),
        # how often the credit rule's long-tail guard sees a tail in the first labeled set (no training)
        "guard_power": lambda: {
            "rows": guard_power.guard_power(
                [1, 5, 10] if s else [1, 2, 5, 10, 20, 50, 100],
                [20] if s else [20, 50, 100],
                trials=500 if s else 20000,
            )
        },
    }
    try:
        from bench import ray_perf

        out["ray_sweep"] = lambda: ray_perf.sweep_concurrency(smoke=s)
        out["ray_scoring"] = lambda: ray_perf.scoring_actors(smoke=s)
    except ImportError:
        pass
    return out


def summary_markdown(results: dict) -> str:
    lines = [
        f"# autoal benchmarks ({results['machine']['time']})",
        "",
        f"Machine: {results['machine']['cpus']} CPUs, torch {results['machine']['torch']}, "
        f"CUDA: {results['machine']['cuda']}. Smoke: {results['smoke']}.",
        "",
    ]
    for name, res in results["benchmarks"].items():
        lines.append(f"## {name}")
        if "error" in res:
            lines.append(f"failed: `{res['error']}`")
        else:
            for k, v in res.items():
                table = _table(v)
                if table:
                    lines += [f"- {k}:", "", *table, ""]
                elif isinstance(v, float):
                    lines.append(f"- {k}: {v:.4g}")
                elif isinstance(v, (int, bool, str)):
                    lines.append(f"- {k}: {v}")
                else:
                    lines.append(f"- {k}: `{json.dumps(v, default=str)[:400]}`")
        lines.append("")
    return "\n".join(lines)


def _table(v) -> list[str]:
    """A list of flat dicts (rows), or a dict of flat dicts (named rows), as Markdown table lines;
    [] for anything else."""
    if isinstance(v, dict) and v and all(isinstance(r, dict) for r in v.values()):
        rows = [{"": name, **r} for name, r in v.items()]
    elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
        rows = v
    else:
        return []
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if any(isinstance(r.get(c), (dict, list)) for r in rows for c in cols):
        return []

    def cell(x) -> str:
        return f"{x:.4g}" if isinstance(x, float) else str(x)

    return [
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    torch.set_num_threads(2)
    todo = benchmarks(args.smoke)
    unknown = set(args.only or []) - set(todo)
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; choices: {sorted(todo)}")
    results = {"machine": machine(), "smoke": args.smoke, "benchmarks": {}}
    failed = False
    for name, fn in todo.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        try:
            res = fn()
        except Exception as e:  # noqa: BLE001 - record and go on; exit non-zero at the end
            res, failed = {"error": f"{type(e).__name__}: {e}"}, True
        res["wall_seconds"] = time.perf_counter() - t0
        results["benchmarks"][name] = res
        print(f"[bench] {name}: {json.dumps(res, default=str)[:600]}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if args.smoke else "perf"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    (out / f"{stem}.md").write_text(summary_markdown(results))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
