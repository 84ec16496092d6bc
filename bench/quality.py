"""Quality benchmark: AUBC of AutoAL against each of its seven candidates and Random.

On digits (embedded, no download): 20 initial labels + 10 rounds x 10, ``small_cnn``, the same
seeds for every strategy (the same ``al.seed`` gives the same initial labeled set, so the
comparison is paired). Prints a table (mean ± std over seeds, paired wins against AutoAL) and
writes JSON. Also reports the wall time of an AutoAL round against an Entropy round measured in
the same process (ratio of the mean round time: task-model training + pool scoring + query).

    .venv/bin/python bench/quality.py                  # full: 5 seeds, all strategies
    .venv/bin/python bench/quality.py --smoke          # CI: 1 seed, 2 rounds
    .venv/bin/python bench/quality.py --strategies entropy autoal \\
        --variant tau1='{"tau": 1.0}'                  # extra AutoAL settings, same seeds

Tracking is disabled; runs write to a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autoal.config import RunConfig  # noqa: E402
from autoal.loop import run_experiment  # noqa: E402
from autoal.strategies.candidates import PAPER_CANDIDATES  # noqa: E402

DEFAULT_STRATEGIES = ["random", *PAPER_CANDIDATES, "autoal"]


def run_one(name: str, params: dict[str, Any], seed: int, args: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    cfg = RunConfig.from_dict({
        "dataset": {"name": args.dataset},
        "model": {"name": args.model},
        "al": {"initial_size": args.initial, "query_size": args.query, "rounds": args.rounds, "seed": seed},
        "strategy": {"name": name, "params": params},
        "tracking": {"enabled": False},
        "runtime": {"output_dir": out_dir, "quiet": True, "resume": False, "num_threads": args.threads},
    })
    t0 = time.perf_counter()
    res = run_experiment(cfg)
    wall = time.perf_counter() - t0
    rounds = [h for h in res.history if h["round"] < args.rounds]
    round_s = [h["seconds_train"] + h["seconds_score"] + h["seconds_select"] for h in rounds]
    out = {"aubc": res.aubc, "final_accuracy": res.final_accuracy, "wall_s": wall,
           "round_s": statistics.mean(round_s) if round_s else float("nan"),
           "train_s": statistics.mean(h["seconds_train"] for h in rounds) if rounds else float("nan"),
           "query_s": statistics.mean(h["seconds_select"] for h in rounds) if rounds else float("nan")}
    if name == "autoal" and rounds:
        for key in ("seconds_candidates", "seconds_search", "seconds_selection"):
            out[key] = statistics.mean(h.get(key, float("nan")) for h in rounds)
        last = rounds[-1]
        out["w_mean_last"] = {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("w_mean/")}
        out["head_grad_norm_last"] = last.get("search/head_grad_norm")
    return out


def time_rounds(name: str, params: dict[str, Any], seed: int, args: argparse.Namespace, out_dir: str
                ) -> dict[str, list[float]]:
    """Per-round wall and CPU seconds of one run, from the loop's round callbacks (everything
    between two callbacks: training, evaluation, scoring, the query, the state write). Round 0
    (first-call overheads) and the last round (no query) are left out."""
    marks: list[tuple[float, float]] = []
    cfg = RunConfig.from_dict({
        "dataset": {"name": args.dataset}, "model": {"name": args.model},
        "al": {"initial_size": args.initial, "query_size": args.query, "rounds": args.rounds, "seed": seed},
        "strategy": {"name": name, "params": params}, "tracking": {"enabled": False},
        "runtime": {"output_dir": out_dir, "quiet": True, "resume": False, "num_threads": args.threads},
    })
    marks.append((time.perf_counter(), time.process_time()))
    run_experiment(cfg, callbacks=[lambda rec: marks.append((time.perf_counter(), time.process_time()))])
    wall = [marks[i + 1][0] - marks[i][0] for i in range(1, len(marks) - 2)]
    cpu = [marks[i + 1][1] - marks[i][1] for i in range(1, len(marks) - 2)]
    return {"wall": wall, "cpu": cpu}


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def summarize(values: list[float]) -> tuple[float, float]:
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--initial", type=int, default=20)
    ap.add_argument("--query", type=int, default=10)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (1: on a loaded 2-core machine, 2 threads per process "
                         "spin against each other and run up to 10x slower)")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    ap.add_argument("--strategies", nargs="*", default=DEFAULT_STRATEGIES)
    ap.add_argument("--autoal-params", default="{}", help="JSON of strategy.params for 'autoal'")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="an extra AutoAL setting run on the same seeds, e.g. tau1='{\"tau\": 1.0}'")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "quality.json"))
    ap.add_argument("--smoke", action="store_true", help="1 seed, 2 rounds (CI)")
    ap.add_argument("--timing-reps", type=int, default=2,
                    help="sequential Entropy/AutoAL run pairs for the round-time ratio (0: skip)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seeds, args.rounds, args.timing_reps = 1, 2, 1
    torch.set_num_threads(args.threads)

    methods: dict[str, tuple[str, dict[str, Any]]] = {}
    for s in args.strategies:
        methods[s] = (s, json.loads(args.autoal_params) if s == "autoal" else {})
    for v in args.variant:
        name, _, js = v.partition("=")
        methods[f"autoal[{name}]"] = ("autoal", {**json.loads(args.autoal_params), **json.loads(js or "{}")})

    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    t_start = time.perf_counter()
    # seed-major order: the strategies of one seed run close together in time, so that changing
    # machine load affects them alike (the timing ratio compares runs of the same seed)
    tasks = [(m, name, params, seed) for seed in range(args.seeds) for m, (name, params) in methods.items()]
    with tempfile.TemporaryDirectory(prefix="autoal-quality-") as tmp:
        done: dict[tuple[str, int], dict[str, Any]] = {}
        if args.jobs > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                     initargs=(args.threads,)) as ex:
                futs = {ex.submit(run_one, name, params, seed, args, tmp): (m, seed) for m, name, params, seed in tasks}
                for f in futs:  # in submission order
                    m, seed = futs[f]
                    done[(m, seed)] = r = f.result()
                    print(f"seed {seed} {m:<28} AUBC {r['aubc']:.4f}  round {r['round_s']:.3f}s", flush=True)
        else:
            for m, name, params, seed in tasks:
                done[(m, seed)] = r = run_one(name, params, seed, args, tmp)
                print(f"seed {seed} {m:<28} AUBC {r['aubc']:.4f}  round {r['round_s']:.3f}s", flush=True)
        for m, _, _, seed in tasks:
            results[m].append({"seed": seed, **done[(m, seed)]})
        # round-time ratio: sequential, alternating Entropy and AutoAL runs in this process, so
        # both see the same machine load; CPU time is robust to other processes' load
        round_times: dict[str, dict[str, list[float]]] = {}
        if args.timing_reps > 0 and "autoal" in methods and "entropy" in methods:
            for rep in range(args.timing_reps):
                for m in ("entropy", "autoal"):
                    name, params = methods[m]
                    rt = time_rounds(name, params, rep, args, tmp)
                    acc = round_times.setdefault(m, {"wall": [], "cpu": []})
                    acc["wall"] += rt["wall"]
                    acc["cpu"] += rt["cpu"]

    table = {}
    for m, runs in results.items():
        mean, std = summarize([r["aubc"] for r in runs])
        fmean, fstd = summarize([r["final_accuracy"] for r in runs])
        table[m] = {"aubc_mean": mean, "aubc_std": std, "final_mean": fmean, "final_std": fstd,
                    "round_s": statistics.mean(r["round_s"] for r in runs)}
    cands = [m for m in table if m in PAPER_CANDIDATES]
    best = max(cands, key=lambda m: table[m]["aubc_mean"]) if cands else None
    autoals = [m for m in table if m.startswith("autoal")]
    paired = {}
    for a in autoals:
        for c in cands + (["random"] if "random" in table else []):
            d = [ra["aubc"] - rc["aubc"] for ra, rc in zip(results[a], results[c])]
            paired.setdefault(a, {})[c] = {"mean_diff": statistics.mean(d), "wins": sum(x > 0 for x in d),
                                           "n": len(d)}
    timing = {}
    if round_times:
        e, a = round_times["entropy"], round_times["autoal"]
        timing["sequential"] = {
            "entropy_round_wall_s": statistics.mean(e["wall"]), "autoal_round_wall_s": statistics.mean(a["wall"]),
            "entropy_round_cpu_s": statistics.mean(e["cpu"]), "autoal_round_cpu_s": statistics.mean(a["cpu"]),
            "wall_ratio": statistics.mean(a["wall"]) / statistics.mean(e["wall"]),
            "cpu_ratio": statistics.mean(a["cpu"]) / statistics.mean(e["cpu"]),
            "median_wall_ratio": statistics.median(a["wall"]) / statistics.median(e["wall"]),
            "rounds_measured": len(a["wall"]), "per_round": round_times}
    if "entropy" in table:
        for a in autoals:
            ratios = [ra["round_s"] / re["round_s"] for ra, re in zip(results[a], results["entropy"])]
            timing[a] = {"round_ratio_vs_entropy": table[a]["round_s"] / table["entropy"]["round_s"],
                         "round_ratio_per_seed": ratios, "round_ratio_median": statistics.median(ratios),
                         "entropy_round_s": table["entropy"]["round_s"], "autoal_round_s": table[a]["round_s"],
                         **{k: statistics.mean(r[k] for r in results[a])
                            for k in ("seconds_candidates", "seconds_search", "seconds_selection")
                            if k in results[a][0]}}

    print(f"\n{args.dataset}: {args.initial} initial + {args.rounds} rounds x {args.query}, {args.seeds} seed(s)")
    print(f"{'strategy':<28} {'AUBC':>16} {'final acc':>16} {'round s':>8}  paired vs autoal")
    ref = autoals[0] if autoals else None
    for m in sorted(table, key=lambda k: -table[k]["aubc_mean"]):
        row = table[m]
        vs = ""
        if ref and m != ref and m in paired.get(ref, {}):
            p = paired[ref][m]
            vs = f"autoal {p['mean_diff']:+.4f}, wins {p['wins']}/{p['n']}"
        print(f"{m:<28} {row['aubc_mean']:.4f} ± {row['aubc_std']:.4f} {row['final_mean']:.4f} ± {row['final_std']:.4f} "
              f"{row['round_s']:8.3f}  {vs}")
    for a, tm in timing.items():
        if a == "sequential":
            print(f"round time, sequential alternating runs ({tm['rounds_measured']} AutoAL rounds): "
                  f"AutoAL {tm['autoal_round_wall_s']:.3f}s vs Entropy {tm['entropy_round_wall_s']:.3f}s wall -> "
                  f"{tm['wall_ratio']:.2f}x (median {tm['median_wall_ratio']:.2f}x); CPU "
                  f"{tm['autoal_round_cpu_s']:.3f}s vs {tm['entropy_round_cpu_s']:.3f}s -> {tm['cpu_ratio']:.2f}x")
            continue
        print(f"{a}: round {tm['autoal_round_s']:.3f}s vs entropy {tm['entropy_round_s']:.3f}s -> "
              f"ratio {tm['round_ratio_vs_entropy']:.2f}x (median over seeds {tm['round_ratio_median']:.2f}x; search {tm.get('seconds_search', float('nan')):.3f}s, "
              f"candidates {tm.get('seconds_candidates', float('nan')):.3f}s, "
              f"selection {tm.get('seconds_selection', float('nan')):.3f}s)")
    if best:
        print(f"best single candidate: {best} ({table[best]['aubc_mean']:.4f})")

    report = {"config": {k: v for k, v in vars(args).items()}, "table": table, "best_candidate": best,
              "paired": paired, "timing": timing, "runs": results,
              "total_seconds": time.perf_counter() - t_start}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {out} ({report['total_seconds']:.0f}s)")
    return report


if __name__ == "__main__":
    main()
