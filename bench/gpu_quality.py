"""Quality benchmark: a matrix of settings × strategies × paired seeds (AUBC and final accuracy).

Every method runs on the same seeds in every setting; the same ``al.seed`` gives the same
initial labeled set to every strategy, so comparisons are paired. Per setting the benchmark
reports mean ± std AUBC, final accuracy (balanced accuracy too on a long-tailed pool), and each
method's paired difference to the best single candidate of that setting (wins/losses over the
seeds and a two-sided Wilcoxon signed-rank p); one summary table ranks every method in every
setting, and a heat map shows AUBC − Random per setting and method. Settings (``--settings``):

==================  ===========================================================================
digits              scikit-learn digits (1,347 pool / 450 test, 8×8), 20 initial + 10 × 10
mnist_low           MNIST, pool 5,000 / test 2,000 (seeded stratified subsample), 20 + 10 × 20
mnist_high          the same pool, 100 + 10 × 100 (the larger budget, where uncertainty should win)
mnist_lt            MNIST long-tailed (imbalance ratio 10, then 5,000 / 2,000), 50 + 10 × 50
gpu_mnist_resnet    ResNet-18 on the full MNIST pool, 500 + 10 × 500 (a CUDA machine; not in
                    the default list)
==================  ===========================================================================

``small_cnn`` everywhere on CPU; training as in ``conf/train/default.yaml`` except where a
setting says otherwise. Runs go ``--jobs`` at a time with ``--threads`` torch threads each
(1 × 2 on a 2-core machine); each finished run is appended to a JSON-lines file (``--runs``), so
an interrupted matrix continues with ``--resume`` and a subset can be re-run while iterating.

    .venv/bin/python bench/quality.py                                    # the full CPU matrix
    .venv/bin/python bench/quality.py --settings digits mnist_low --seeds 3
    .venv/bin/python bench/quality.py --strategies margin autoal --variant 'tau1={"tau": 1.0}'
    .venv/bin/python bench/quality.py --resume                           # skip runs already in --runs
    .venv/bin/python bench/quality.py --smoke                            # CI: tiny sizes, seconds

Writes ``quality.json`` (every run, every table), ``quality.md`` and ``quality_matrix.png`` next
to ``--out``. Tracking is disabled; run folders go to a temporary directory.
"""
from __future__ import annotations

import argparse
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

from autoal.strategies.candidates import PAPER_CANDIDATES  # noqa: E402

DEFAULT_STRATEGIES = ["random", *PAPER_CANDIDATES, "typiclust", "autoal"]
#: the single strategies AutoAL's pool can hold: "the best single candidate" is the best of these
CANDIDATES = (*PAPER_CANDIDATES, "typiclust")


@dataclass(frozen=True)
class Setting:
    """One cell row of the matrix: data, model, AL budget and training."""

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
        return {"dataset": dict(self.dataset), "model": {"name": self.model}, "train": dict(self.train),
                "al": {"initial_size": self.initial, "query_size": self.query, "rounds": self.rounds, "seed": seed},
                "strategy": {"name": strategy, "params": params}, "tracking": {"enabled": False},
                "runtime": {"output_dir": out_dir, "quiet": True, "resume": False, "num_threads": threads,
                            "device": "auto" if self.device == "cuda" else "cpu"}}


#: MNIST's pool and test split subsampled (stratified, seeded by dataset.subset_seed = 0) so that
#: the whole CPU matrix (4 settings × 10 methods × 5 seeds) fits in about 90 minutes on 2 cores
MNIST_SUB = {"name": "mnist", "train_size": 5000, "test_size": 2000}
SETTINGS: dict[str, Setting] = {
    "digits": Setting({"name": "digits"}, 20, 10, 10, note="1,347 pool / 450 test, 8×8"),
    "mnist_low": Setting(MNIST_SUB, 20, 20, 10, train={"epochs": 30, "min_steps": 100},
                         note="pool 5,000 / test 2,000"),
    "mnist_high": Setting(MNIST_SUB, 100, 100, 10, train={"epochs": 10, "min_steps": 100},
                          note="pool 5,000 / test 2,000"),
    "mnist_lt": Setting({**MNIST_SUB, "imbalance_ratio": 10}, 50, 50, 10, train={"epochs": 20, "min_steps": 100},
                        long_tailed=True,
                        note="imbalance ratio 10, pool 5,000 / test 2,000 (test split balanced)"),
    # the full pool from the IDX files under data/ (bench/export_mnist_idx.py writes them from the
    # bundled copy, for a GPU machine without zarr)
    "gpu_mnist_resnet": Setting({"name": "mnist", "options": {"source": "idx"}}, 500, 500, 10, model="resnet18",
                                train={"epochs": 30, "batch_size": 128, "optimizer": "sgd", "lr": 0.05},
                                device="cuda", note="full MNIST, ResNet-18"),
}
CPU_SETTINGS = ["digits", "mnist_low", "mnist_high", "mnist_lt"]
SMOKE_SETTINGS = {
    "digits": Setting({"name": "digits"}, 20, 10, 2, train={"epochs": 10}),
    "mnist_low": Setting({"name": "mnist", "train_size": 600, "test_size": 200}, 20, 20, 2, train={"epochs": 5}),
    "mnist_lt": Setting({"name": "mnist", "imbalance_ratio": 10, "train_size": 600, "test_size": 200}, 30, 20, 2,
                        train={"epochs": 5}, long_tailed=True),
}
SMOKE_STRATEGIES = ["random", "entropy", "margin", "bald", "autoal"]


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
def run_key(setting: Setting, strategy: str, params: dict[str, Any], seed: int) -> str:
    """Identity of one run: what it computes (the setting, the strategy and its parameters, the seed)."""
    blob = json.dumps({"setting": asdict(setting), "strategy": strategy, "params": params, "seed": seed},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_one(setting_name: str, setting: Setting, method: str, strategy: str, params: dict[str, Any], seed: int,
            threads: int, out_dir: str) -> dict[str, Any]:
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
        "key": run_key(setting, strategy, params, seed), "setting": setting_name, "method": method,
        "strategy": strategy, "params": params, "seed": seed, "aubc": res.aubc,
        "final_accuracy": res.final_accuracy,
        "final_balanced_accuracy": float(res.history[-1].get("balanced_accuracy", float("nan"))),
        "aubc_balanced": _aubc([h["labels"] for h in res.history],
                               [h.get("balanced_accuracy", float("nan")) for h in res.history]),
        "labels": [h["labels"] for h in res.history], "accuracy": [h["accuracy"] for h in res.history],
        "wall_s": wall,
        "round_s": statistics.mean(h["seconds_train"] + h["seconds_score"] + h["seconds_select"] for h in queried)
        if queried else float("nan"),
        "query_s": statistics.mean(h["seconds_select"] for h in queried) if queried else float("nan"),
    }
    if strategy == "autoal" and queried:
        for key in ("seconds_candidates", "seconds_search", "seconds_selection"):
            rec[key] = statistics.mean(h.get(key, float("nan")) for h in queried)
        rec["trace"] = [{k: v for k, v in h.items() if k.startswith(("w_mean/", "search/", "weight/", "value/"))}
                        for h in queried]
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


def run_matrix(tasks: list[tuple], jobs: int, threads: int, runs_file: Path, done: dict[str, dict[str, Any]]
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
            print(f"[{i + 1}/{len(todo)}] {rec['setting']:<12} {rec['method']:<26} seed {rec['seed']}  "
                  f"AUBC {rec['aubc']:.4f}  {rec['wall_s']:.0f}s  (ETA {eta / 60:.0f} min)", flush=True)

        if jobs > 1 and len(todo) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                     initargs=(threads,)) as ex:
                futs = [ex.submit(run_one, *t, threads, tmp) for t in todo]
                for i, f in enumerate(as_completed(futs)):
                    keep(f.result(), i)
        else:
            for i, t in enumerate(todo):
                keep(run_one(*t, threads, tmp), i)
    return done


# ---------------------------------------------------------------------------------------------
# statistics and tables
# ---------------------------------------------------------------------------------------------
def mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def wilcoxon_p(diffs: list[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (exact for small n); 1.0 when all
    differences are zero. With 5 pairs the smallest possible p is 0.0625."""
    from scipy import stats

    if not diffs or all(d == 0 for d in diffs):
        return 1.0
    return float(stats.wilcoxon(diffs).pvalue)


def setting_table(runs: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """Per method: mean ± std of the metrics; paired comparison with the best single candidate."""
    by = {m: {r["seed"]: r for r in runs if r["method"] == m} for m in methods}
    seeds = sorted(set.intersection(*[set(v) for v in by.values() if v])) if any(by.values()) else []
    rows: dict[str, dict[str, Any]] = {}
    for m in methods:
        if not by[m]:
            continue
        rs = [by[m][s] for s in seeds]
        row = {}
        for key in ("aubc", "final_accuracy", "final_balanced_accuracy", "aubc_balanced", "round_s", "wall_s"):
            row[key], row[key + "_std"] = mean_std([r.get(key, float("nan")) for r in rs])
        rows[m] = row
    cands = [m for m in rows if m in CANDIDATES]
    best = max(cands, key=lambda m: rows[m]["aubc"]) if cands else None
    if best is not None:
        for m, row in rows.items():
            d = [by[m][s]["aubc"] - by[best][s]["aubc"] for s in seeds]
            row["vs_best"] = statistics.mean(d) if d else float("nan")
            row["wins"] = sum(x > 0 for x in d)
            row["losses"] = sum(x < 0 for x in d)
            row["p_wilcoxon"] = wilcoxon_p(d) if m != best else float("nan")
    ranking = sorted(rows, key=lambda m: -rows[m]["aubc"])
    for i, m in enumerate(ranking):
        rows[m]["rank"] = i + 1
    if "entropy" in rows:
        for m in rows:
            if m.startswith("autoal"):
                rows[m]["round_ratio_vs_entropy"] = rows[m]["round_s"] / rows["entropy"]["round_s"]
    return {"seeds": seeds, "best_candidate": best, "rows": rows, "ranking": ranking}


def strictly_better(row: dict[str, Any], n: int) -> bool:
    """The issue's bar for 'beats the best candidate': ≥ 4 wins of 5 seeds (the same share of n),
    or a Wilcoxon p < 0.1, with a positive mean difference."""
    return row.get("vs_best", 0) > 0 and (row.get("wins", 0) >= math.ceil(0.8 * n) or row.get("p_wilcoxon", 1) < 0.1)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Quality matrix ({report['machine'].get('time', '')})", ""]
    for name, tab in report["settings"].items():
        st = report["setting_defs"][name]
        lt = st["long_tailed"]
        lines += [f"## {name}: {st['dataset']}, {st['model']}, {st['initial']} + {st['rounds']} × {st['query']}"
                  f"{' — ' + st['note'] if st['note'] else ''}", "",
                  f"{len(tab['seeds'])} paired seeds; best single candidate: **{tab['best_candidate']}**. "
                  "Δ, W/L and p compare each method with it, seed by seed.", ""]
        head = "| method | AUBC | final acc |" + (" final bal. acc | AUBC (bal.) |" if lt else "") + \
            " Δ vs best | W/L | Wilcoxon p | round s |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        best_aubc = max(r["aubc"] for r in tab["rows"].values())
        for m in tab["ranking"]:
            r = tab["rows"][m]
            name_cell = f"**{m}**" if r["aubc"] == best_aubc else m
            cells = [name_cell, _pm(r, "aubc"), _pm(r, "final_accuracy")]
            if lt:
                cells += [_pm(r, "final_balanced_accuracy"), _pm(r, "aubc_balanced")]
            cells += [f"{r.get('vs_best', float('nan')):+.4f}", f"{r.get('wins', 0)}/{r.get('losses', 0)}",
                      _p(r.get("p_wilcoxon", float("nan"))), f"{r['round_s']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        ratios = {m: r["round_ratio_vs_entropy"] for m, r in tab["rows"].items() if "round_ratio_vs_entropy" in r}
        if ratios:
            lines += ["", "Round time against an Entropy round (same parallel runs): " +
                      ", ".join(f"{m} {v:.2f}×" for m, v in ratios.items())]
        lines.append("")
    lines += ["## Summary: mean AUBC (rank) per setting", ""]
    settings = list(report["settings"])
    lines += ["| method | " + " | ".join(settings) + " | mean rank |", "|---|" + "---|" * (len(settings) + 1)]
    for m in report["methods"]:
        cells, ranks = [], []
        for s in settings:
            r = report["settings"][s]["rows"].get(m)
            if r is None:
                cells.append("—")
                continue
            ranks.append(r["rank"])
            mark = "**" if r["rank"] == 1 else ""
            cells.append(f"{mark}{r['aubc']:.4f} ({r['rank']}){mark}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {statistics.mean(ranks):.1f} |" if ranks else "")
    for m, v in report["verdict"].items():
        lines += ["", f"**{m}**: at or above the best single candidate's mean AUBC in {v['at_least_best']} of "
                  f"{v['settings']} settings; strictly better (paired) in {v['strictly_better']}."]
    return "\n".join(lines) + "\n"


def _pm(r: dict[str, Any], key: str) -> str:
    v, s = r.get(key, float("nan")), r.get(key + "_std", float("nan"))
    return "—" if not math.isfinite(v) else f"{v:.4f} ± {s:.4f}"


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.3f}"


def heat_map(report: dict[str, Any], path: Path) -> Path | None:
    """Settings × methods: AUBC − Random's AUBC (colour) with each method's rank (text). None
    where matplotlib is missing (the lent GPU machine has only torch, numpy, scikit-learn)."""
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    settings = [s for s in report["settings"] if "random" in report["settings"][s]["rows"]]
    methods = [m for m in report["methods"] if m != "random"]
    if not settings or not methods:
        return None
    grid = np.full((len(settings), len(methods)), np.nan)
    ranks = np.zeros_like(grid)
    for i, s in enumerate(settings):
        rows = report["settings"][s]["rows"]
        for j, m in enumerate(methods):
            if m in rows:
                grid[i, j] = rows[m]["aubc"] - rows["random"]["aubc"]
                ranks[i, j] = rows[m]["rank"]
    lim = float(np.nanmax(np.abs(grid))) or 1.0
    fig, ax = plt.subplots(figsize=(1.1 * len(methods) + 2.5, 0.7 * len(settings) + 1.8))
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right")
    ax.set_yticks(range(len(settings)), settings)
    for i in range(len(settings)):
        for j in range(len(methods)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.3f}\n#{int(ranks[i, j])}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="AUBC − Random")
    ax.set_title("AUBC above Random (rank among all methods, 1 = best)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=None, help=f"from {', '.join(SETTINGS)} (default: the CPU ones)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", nargs="*", default=DEFAULT_STRATEGIES)
    ap.add_argument("--autoal-params", default="{}", help="JSON of strategy.params for 'autoal'")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="an extra AutoAL setting run on the same seeds, e.g. tau1='{\"tau\": 1.0}'")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "quality.json"))
    ap.add_argument("--runs", default=None, help="JSON-lines file of finished runs (default: next to --out)")
    ap.add_argument("--resume", action="store_true", help="reuse the runs already in --runs")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1 seed (CI)")
    args = ap.parse_args(argv)
    table = SMOKE_SETTINGS if args.smoke else SETTINGS
    names = args.settings or (list(SMOKE_SETTINGS) if args.smoke else CPU_SETTINGS)
    unknown = [s for s in names if s not in table]
    if unknown:
        raise SystemExit(f"--settings: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(table)}")
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
    tasks = [(s, table[s], m, name, params, seed) for s in names for seed in range(args.seeds)
             for m, (name, params) in methods.items()]
    t0 = time.perf_counter()
    done = run_matrix(tasks, args.jobs, args.threads, runs_file, done)

    from bench.common import machine

    report: dict[str, Any] = {"machine": machine(), "config": vars(args), "methods": list(methods),
                              "setting_defs": {s: asdict(table[s]) for s in names}, "settings": {},
                              "runs": [done[run_key(t[1], t[3], t[4], t[5])] for t in tasks],
                              "seconds": time.perf_counter() - t0}
    for s in names:
        runs = [r for r in report["runs"] if r["setting"] == s]
        report["settings"][s] = setting_table(runs, list(methods))
    report["verdict"] = {}
    for m in methods:
        if not m.startswith("autoal"):
            continue
        rows = [(report["settings"][s]["rows"].get(m), report["settings"][s]) for s in names]
        rows = [(r, t) for r, t in rows if r is not None and t["best_candidate"]]
        report["verdict"][m] = {
            "settings": len(rows),
            "at_least_best": sum(r["vs_best"] >= 0 for r, _ in rows),
            "strictly_better": sum(strictly_better(r, len(t["seeds"])) for r, t in rows)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    md = markdown(report)
    out.with_suffix(".md").write_text(md)
    png = heat_map(report, out.with_name(out.stem + "_matrix.png"))
    print("\n" + md)
    print(f"wrote {out}, {out.with_suffix('.md')}" + (f", {png}" if png else "") +
          f" ({report['seconds'] / 60:.1f} min)")
    return report


if __name__ == "__main__":
    main()
