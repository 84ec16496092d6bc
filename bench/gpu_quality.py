"""Quality runs without the platform: the GPU setting on a lent GPU machine, tiny settings in CI.

The lent GPU machine (bench/gpu_check.sh) has Python, torch, numpy and scikit-learn only (no Ray,
MLflow, Hydra), so it cannot run ``autoal sweep``. This script runs settings × strategies ×
paired seeds there in its own process pool (the same ``al.seed`` gives every strategy the same
initial labeled set), appends each finished run to a JSON-lines file and builds the matrix's
tables with :mod:`autoal.platform.matrix` (the tables of ``autoal report``). The CPU matrix is
``autoal sweep sweep=quality`` (settings in autoal/conf/setting/; bench/quality.py is an alias).

==================  ===========================================================================
gpu_mnist_resnet    ResNet-18 on the full MNIST pool (IDX files under data/), 500 + 10 × 500,
                    30 epochs of SGD; as autoal/conf/setting/gpu_mnist_resnet.yaml
                    (tests/benchmarks/test_gpu_quality.py keeps the two equal); needs CUDA
--smoke             digits, mnist_low, mnist_lt at tiny sizes, small_cnn on CPU, 1 seed (CI)
==================  ===========================================================================

Runs go ``--jobs`` at a time with ``--threads`` torch threads each; the runs file (``--runs``,
default ``<out>_runs.jsonl``) holds one run a line (setting, method, seed, aubc, final_accuracy,
final_balanced_accuracy, aubc_balanced, long_tailed, labels, accuracy, timings), so an
interrupted matrix continues with ``--resume``.

    python3 bench/gpu_quality.py --settings gpu_mnist_resnet --seeds 3 --jobs 1 --threads 8 \\
        --strategies random entropy margin kmeans typiclust autoal --out bench/results/quality_gpu.json
    python3 bench/gpu_quality.py --smoke --out /tmp/q.json                # CI: tiny sizes, seconds

Writes ``<out>.json`` (every run and the matrix), ``<out>.md`` (the matrix as markdown) and,
where matplotlib is installed, ``<out>_matrix.png`` (AUBC above Random). On a machine with the
platform, ``autoal report report.runs_files=[bench/results/quality_gpu_runs.jsonl]`` renders the
runs file into a full matrix report without an MLflow store. Tracking is disabled; run folders go
to a temporary directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autoal.platform.matrix import (
    MatrixReport,
    build_matrix,
    heat_map,
    matrix_markdown,  # noqa: E402
    run_from_record,
)
from autoal.strategies.candidates import PAPER_CANDIDATES  # noqa: E402

DEFAULT_STRATEGIES = ["random", *PAPER_CANDIDATES, "typiclust", "autoal"]


@dataclass(frozen=True)
class Setting:
    """One row of the matrix: data, model, AL budget and training."""

    dataset: dict[str, Any]
    initial: int
    query: int
    rounds: int
    model: str = "small_cnn"
    train: dict[str, Any] = field(default_factory=dict)
    long_tailed: bool = False
    device: str = "cpu"
    note: str = ""

    def config(self, strategy: str, params: dict[str, Any], seed: int, threads: int, out_dir: str) -> dict[str, Any]:
        """The run's config, as a dict for ``RunConfig.from_dict``."""
        return {
            "dataset": dict(self.dataset),
            "model": {"name": self.model},
            "train": dict(self.train),
            "al": {"initial_size": self.initial, "query_size": self.query, "rounds": self.rounds, "seed": seed},
            "strategy": {"name": strategy, "params": params},
            "tracking": {"enabled": False},
            "runtime": {
                "output_dir": out_dir,
                "quiet": True,
                "resume": False,
                "num_threads": threads,
                "device": self.device,
            },
        }


SETTINGS: dict[str, Setting] = {
    # the full pool from the IDX files under data/ (bench/export_mnist_idx.py writes them from the
    # bundled copy, for a GPU machine without zarr)
    "gpu_mnist_resnet": Setting(
        {"name": "mnist", "options": {"source": "idx"}},
        500,
        500,
        10,
        model="resnet18",
        train={"epochs": 30, "batch_size": 128, "optimizer": "sgd", "lr": 0.05},
        device="cuda",
        note="full MNIST, ResNet-18",
    ),
}
SMOKE_SETTINGS = {
    "digits": Setting({"name": "digits"}, 20, 10, 2, train={"epochs": 10}),
    "mnist_low": Setting({"name": "mnist", "train_size": 600, "test_size": 200}, 20, 20, 2, train={"epochs": 5}),
    "mnist_lt": Setting(
        {"name": "mnist", "imbalance_ratio": 10, "train_size": 600, "test_size": 200},
        30,
        20,
        2,
        train={"epochs": 5},
        long_tailed=True,
    ),
}
SMOKE_STRATEGIES = ["random", "entropy", "margin", "bald", "autoal"]


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
def run_key(setting: Setting, strategy: str, params: dict[str, Any], seed: int) -> str:
    """Identity of one run: what it computes (the setting, the strategy and its parameters, the seed)."""
    blob = json.dumps(
        {"setting": asdict(setting), "strategy": strategy, "params": params, "seed": seed}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_one(
    setting_name: str,
    setting: Setting,
    method: str,
    strategy: str,
    params: dict[str, Any],
    seed: int,
    threads: int,
    out_dir: str,
) -> dict[str, Any]:
    """One AL run; the record the matrix keeps of it."""
    from autoal.config import RunConfig
    from autoal.loop import run_experiment

    torch.set_num_threads(threads)
    cfg = RunConfig.from_dict(setting.config(strategy, params, seed, threads, out_dir))
    t0 = time.perf_counter()
    res = run_experiment(cfg)
    wall = time.perf_counter() - t0
    queried = [h for h in res.history if h["round"] < setting.rounds]
    rec: dict[str, Any] = {
        "key": run_key(setting, strategy, params, seed),
        "setting": setting_name,
        "method": method,
        "strategy": strategy,
        "params": params,
        "seed": seed,
        "long_tailed": setting.long_tailed,
        "aubc": res.aubc,
        "final_accuracy": res.final_accuracy,
        "final_balanced_accuracy": float(res.history[-1].get("balanced_accuracy", float("nan"))),
        "aubc_balanced": _aubc(
            [h["labels"] for h in res.history], [h.get("balanced_accuracy", float("nan")) for h in res.history]
        ),
        "labels": [h["labels"] for h in res.history],
        "accuracy": [h["accuracy"] for h in res.history],
        "wall_s": wall,
        "round_s": statistics.mean(h["seconds_train"] + h["seconds_score"] + h["seconds_select"] for h in queried)
        if queried
        else float("nan"),
        "query_s": statistics.mean(h["seconds_select"] for h in queried) if queried else float("nan"),
    }
    if strategy == "autoal" and queried:
        for key in ("seconds_candidates", "seconds_search", "seconds_selection"):
            rec[key] = statistics.mean(h.get(key, float("nan")) for h in queried)
        rec["trace"] = [
            {k: v for k, v in h.items() if k.startswith(("w_mean/", "search/", "weight/", "value/"))} for h in queried
        ]
    return rec


def _aubc(labels: list[int], accs: list[float]) -> float:
    from autoal.metrics import aubc

    return float(aubc(labels, accs)) if all(math.isfinite(a) for a in accs) else float("nan")


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def load_runs(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[rec["key"]] = rec
    return out


def run_matrix(
    tasks: list[tuple], jobs: int, threads: int, runs_file: Path, done: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Run the tasks not in ``done`` (``jobs`` processes), appending each record to ``runs_file``."""
    todo = [t for t in tasks if run_key(t[1], t[3], t[4], t[5]) not in done]
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoal-quality-") as tmp, runs_file.open("a") as sink:

        def keep(rec: dict[str, Any], i: int) -> None:
            done[rec["key"]] = rec
            sink.write(json.dumps(rec, default=float) + "\n")
            sink.flush()
            eta = (time.perf_counter() - t_start) / (i + 1) * (len(todo) - i - 1)
            print(
                f"[{i + 1}/{len(todo)}] {rec['setting']:<12} {rec['method']:<26} seed {rec['seed']}  "
                f"AUBC {rec['aubc']:.4f}  {rec['wall_s']:.0f}s  (ETA {eta / 60:.0f} min)",
                flush=True,
            )

        if jobs > 1 and len(todo) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(
                jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(threads,)
            ) as ex:
                futs = [ex.submit(run_one, *t, threads, tmp) for t in todo]
                for i, f in enumerate(as_completed(futs)):
                    keep(f.result(), i)
        else:
            for i, t in enumerate(todo):
                keep(run_one(*t, threads, tmp), i)
    return done


# ---------------------------------------------------------------------------------------------
# the matrix (autoal.platform.matrix)
# ---------------------------------------------------------------------------------------------
def matrix_of(records: list[dict[str, Any]], order: list[str], setting_order: list[str]) -> MatrixReport:
    """The matrix of run records, each read as ``read_jsonl_runs`` reads a line of the runs file."""
    runs = [run_from_record(r, f"run {r.get('setting')}/{r.get('method')}/seed {r.get('seed')}") for r in records]
    return build_matrix(runs, order=order, setting_order=setting_order)


def matrix_json(report: MatrixReport) -> dict[str, Any]:
    """The matrix's tables as JSON: per setting the method statistics (rank order) and the paired
    differences to the best single strategy; the mean ranks and the verdicts."""
    return {
        "single_strategies": sorted(report.single_strategies),
        "methods": list(report.methods),
        "mean_rank": report.mean_rank,
        "verdicts": report.verdicts(),
        "settings": {
            s: {
                "long_tailed": t.long_tailed,
                "best_single": t.best_single,
                "ranking": t.ranking,
                "stats": {m: dataclasses.asdict(st) for m, st in t.stats.items()},
                "paired": {m: {**dataclasses.asdict(pd), "n": pd.n} for m, pd in t.paired.items()},
            }
            for s, t in report.settings.items()
        },
    }


def heat_map_png(report: MatrixReport, path: Path) -> Path | None:
    """:func:`autoal.platform.matrix.heat_map`, or None where matplotlib is missing (the lent GPU
    machine)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    return heat_map(report, path)


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--settings",
        nargs="+",
        default=None,
        help=f"from {', '.join(SETTINGS)} (--smoke: {', '.join(SMOKE_SETTINGS)}); default: all",
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", nargs="*", default=DEFAULT_STRATEGIES)
    ap.add_argument("--autoal-params", default="{}", help="JSON of strategy.params for 'autoal'")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an extra AutoAL setting run on the same seeds, e.g. tau1='{\"tau\": 1.0}'",
    )
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "quality_gpu.json"))
    ap.add_argument("--runs", default=None, help="JSON-lines file of finished runs (default: <out>_runs.jsonl)")
    ap.add_argument("--resume", action="store_true", help="reuse the runs already in --runs")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU settings, 1 seed (CI)")
    args = ap.parse_args(argv)
    table = SMOKE_SETTINGS if args.smoke else SETTINGS
    names = args.settings or list(table)
    unknown = [s for s in names if s not in table]
    if unknown:
        raise SystemExit(
            f"--settings: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(table)}"
            + ("" if args.smoke else "; the CPU settings run as `autoal sweep sweep=quality`")
        )
    if args.smoke:
        args.seeds = 1
        if args.strategies == DEFAULT_STRATEGIES:
            args.strategies = SMOKE_STRATEGIES
    methods: dict[str, tuple[str, dict[str, Any]]] = {}
    for s in args.strategies:
        methods[s] = (s, json.loads(args.autoal_params) if s == "autoal" else {})
    for v in args.variant:
        name, _, js = v.partition("=")
        methods[f"autoal[{name}]"] = ("autoal", {**json.loads(args.autoal_params), **json.loads(js or "{}")})

    out = Path(args.out)
    runs_file = Path(args.runs) if args.runs else out.with_name(out.stem + "_runs.jsonl")
    if runs_file.exists() and not args.resume:
        runs_file.unlink()
    done = load_runs(runs_file)
    # seed-major order: the methods of one seed run close together in time, so that changing
    # machine load affects them alike
    tasks = [
        (s, table[s], m, name, params, seed)
        for s in names
        for seed in range(args.seeds)
        for m, (name, params) in methods.items()
    ]
    t0 = time.perf_counter()
    done = run_matrix(tasks, args.jobs, args.threads, runs_file, done)

    from bench.common import machine

    runs = [done[run_key(t[1], t[3], t[4], t[5])] for t in tasks]
    matrix = matrix_of(runs, order=list(methods), setting_order=names)
    report: dict[str, Any] = {
        "machine": machine(),
        "config": vars(args),
        "methods": list(methods),
        "setting_defs": {s: asdict(table[s]) for s in names},
        "runs_file": str(runs_file),
        "runs": runs,
        "matrix": matrix_json(matrix),
        "seconds": time.perf_counter() - t0,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    where = report["machine"].get("gpu") or "CPU"
    md = matrix_markdown(matrix, title=f"Quality matrix ({where}, {report['machine'].get('time', '')})")
    out.with_suffix(".md").write_text(md + "\n")
    png = heat_map_png(matrix, out.with_name(out.stem + "_matrix.png"))
    print("\n" + md)
    print(
        f"wrote {out}, {out.with_suffix('.md')}, {runs_file}"
        + (f", {png}" if png else "")
        + f" ({report['seconds'] / 60:.1f} min)"
    )
    return report


if __name__ == "__main__":
    main()
