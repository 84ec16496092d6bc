"""GPU benchmark (issue 7): a CIFAR-10-size round on one GPU — ResNet-18 (small-image stem),
50,000 synthetic 32x32x3 images in the pool, bf16 autocast and channels-last.

Reports images/s for scoring (one backbone pass) and for training, the seconds to score the
pool for all seven candidates (target < 0.5 s on an H100-class GPU), and the seconds of one
round (train on the labeled set, score, select). Needs only torch, numpy and scikit-learn.
Measured figures and the H200 reference: bench/README.md, "Performance"."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, median_time, synthetic_dataset, sync  # noqa: E402

CANDIDATES = ("entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std")


def run(
    n_pool: int = 50000,
    labeled: int = 5000,
    query: int = 1000,
    epochs: int = 2,
    batch: int = 512,
    repeats: int = 5,
    width: int = 64,
) -> dict:
    from autoal.cache import compute_cache, embed_pool
    from autoal.device import prepare_model
    from autoal.models import build_model
    from autoal.strategies import build_strategy
    from autoal.training import TrainConfig, train_model

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    ds = synthetic_dataset(n_pool, n_test=1000, size=32, channels=3)
    model = prepare_model(build_model("resnet18", 3, 10, 32, width=width), dev)
    images = ds.x_train.to(dev)  # the pool stays on the device between rounds
    pool = np.arange(n_pool)
    strategies = [build_strategy(n) for n in CANDIDATES]

    t_embed = median_time(lambda: embed_pool(model, ds, pool, batch_size=2048, device=dev, images=images), repeats)

    def all_candidates():
        c = compute_cache(model, ds, pool, mc_samples=500, batch_size=2048, device=dev, images=images, seed=0)
        for s in strategies:
            s.select_positions(c, query, np.random.default_rng(0))

    def entropy_only():
        c = compute_cache(model, ds, pool, mc_samples=0, batch_size=2048, device=dev, images=images, seed=0)
        strategies[0].select_positions(c, query, np.random.default_rng(0))

    t_all = median_time(all_candidates, repeats)
    t_ent = median_time(entropy_only, repeats)
    # per-candidate selection cost on a cached pool (what each adds on top of the shared pass)
    cache = compute_cache(model, ds, pool, mc_samples=500, batch_size=2048, device=dev, images=images, seed=0)
    per_candidate = {
        s.name: median_time(lambda s=s: s.select_positions(cache, query, np.random.default_rng(0)), repeats)
        for s in strategies
    }

    kmeans_figures = kmeans_on_device(cache.embeddings, query, repeats)

    cfg = TrainConfig(epochs=epochs, batch_size=batch, optimizer="sgd", lr=0.05)
    lab = np.arange(labeled)
    train_model(model, ds, lab, TrainConfig(epochs=1, batch_size=batch), device=dev, seed=0, images=images)  # warm-up
    sync()
    t0 = time.perf_counter()
    train_model(model, ds, lab, cfg, device=dev, seed=0, images=images)
    sync()
    t_train = time.perf_counter() - t0
    train_ips = labeled * epochs / t_train

    sync()
    t0 = time.perf_counter()
    train_model(model, ds, lab, cfg, device=dev, seed=1, images=images)
    c = compute_cache(
        model, ds, np.arange(labeled, n_pool), mc_samples=500, batch_size=2048, device=dev, images=images, seed=1
    )
    build_strategy("margin").select_positions(c, query, np.random.default_rng(0))
    sync()
    t_round = time.perf_counter() - t0
    rounds = al_rounds(n_pool=n_pool, labeled=labeled, query=query, epochs=epochs, batch=batch, width=width)
    return {
        "al_rounds": rounds,
        "kmeans": kmeans_figures,
        "machine": machine(),
        "n_pool": n_pool,
        "model": f"resnet18(width={width})",
        "precision": "bf16 autocast" if dev.type == "cuda" else "fp32",
        "scoring_seconds_backbone_pass": t_embed,
        "scoring_images_per_s": n_pool / t_embed,
        "seconds_all_seven_candidates": t_all,
        "seconds_entropy_only": t_ent,
        "all_vs_entropy": t_all / t_ent,
        "per_candidate_select_seconds": per_candidate,
        "train_images_per_s": train_ips,
        "train_batch": batch,
        "round_seconds": t_round,
        "round": {"labeled": labeled, "epochs": epochs, "query": query},
        "target_all_seven_under_s": 0.5,
        "meets_target": t_all < 0.5,
        "reference_h200": {"backbone_pass_50k_s": 0.22, "train_images_per_s": 57000},
    }


def kmeans_on_device(emb: torch.Tensor, k: int, repeats: int) -> dict:
    """The KMeans candidate's parts on the pool's embeddings: greedy k-means++ seeding stepped
    eagerly vs replayed as a CUDA graph (and whether both give the same seeds), then the whole
    candidate (seeding + Lloyd + picks), and its inertia against the same on the CPU."""
    from autoal.kmeans import kmeans, kmeans_picks, kmeans_plus_plus

    x = emb.float()

    def seeds(graph: bool) -> torch.Tensor:
        return kmeans_plus_plus(x, k, torch.Generator(device=x.device).manual_seed(0), use_graph=graph)

    out = {
        "n": x.shape[0],
        "d": x.shape[1],
        "k": k,
        "seconds_seeding_eager": median_time(lambda: seeds(False), repeats),
        "seconds_picks": median_time(lambda: kmeans_picks(x, k, seed=0), repeats),
    }
    if x.is_cuda:
        out["seconds_seeding_cuda_graph"] = median_time(lambda: seeds(True), repeats)
        out["graph_vs_eager"] = {
            "tf32_" + ("on" if torch.backends.cuda.matmul.allow_tf32 else "off"): compare_seedings(
                x, seeds(True), seeds(False)
            )
        }
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = not tf32
        try:
            out["graph_vs_eager"]["tf32_" + ("off" if tf32 else "on")] = compare_seedings(x, seeds(True), seeds(False))
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32

    def inertia(z: torch.Tensor) -> float:
        c, a = kmeans(z, k, seed=0)
        return float((z - c[a]).square().sum())

    if x.is_cuda:
        out["inertia_device_vs_cpu"] = inertia(x) / inertia(x.cpu())
    return out


def compare_seedings(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict:
    """Two seedings of the same data: identical?, shared seeds, and the ratio of their k-means
    potentials (Σ squared distance to the nearest seed) — cuBLAS may pick other kernels while a
    graph is captured, so rounding, and with it a near-tie, can differ."""
    from autoal.distances import augment_rows
    from autoal.kmeans import assign_to_nearest

    xa = augment_rows(x)
    pot = [float(assign_to_nearest(xa, x[s])[0].double().sum()) for s in (a, b)]
    shared = len(set(a.tolist()) & set(b.tolist())) / len(a)
    return {"identical": bool(torch.equal(a, b)), "shared_seeds": shared, "potential_ratio": pot[0] / pot[1]}


def al_rounds(n_pool: int, labeled: int, query: int, epochs: int, batch: int, width: int) -> dict:
    """An Entropy round and an AutoAL round through the real loop on the same synthetic pool:
    per-phase seconds of round 1 (round 0 pays one-time start-up costs)."""
    import tempfile

    from autoal.config import RunConfig
    from autoal.loop import ActiveLearningLoop

    ds = synthetic_dataset(n_pool, n_test=1000, size=32, channels=3)
    out: dict = {}
    for name, params in (("entropy", {}), ("autoal", {"batch_size": batch, "gmm_samples": 2000})):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = RunConfig.from_dict(
                    {
                        "model": {"name": "resnet18", "width": width},
                        "train": {"epochs": epochs, "batch_size": batch, "optimizer": "sgd", "lr": 0.05},
                        "al": {"initial_size": labeled, "query_size": query, "rounds": 2, "mc_samples": 500},
                        "strategy": {"name": name, "params": params},
                        "scoring": {"batch_size": 2048},
                        "tracking": {"enabled": False},
                        "runtime": {"output_dir": tmp, "quiet": True},
                    }
                )
                t0 = time.perf_counter()
                res = ActiveLearningLoop(cfg, dataset=ds).run()
                h = res.history[1]
                out[name] = {k: h[k] for k in h if k.startswith("seconds_")}
                out[name]["round_total"] = h["seconds_train"] + h["seconds_score"] + h["seconds_select"]
                out[name]["run_seconds"] = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - report, keep the other figures
            out[name] = {"error": f"{type(e).__name__}: {e}"}
    if "round_total" in out.get("autoal", {}) and "round_total" in out.get("entropy", {}):
        out["autoal_vs_entropy"] = out["autoal"]["round_total"] / out["entropy"]["round_total"]
    return out


def profile_autoal_query(
    out_dir: Path, n_pool: int, labeled: int, query: int, epochs: int, batch: int, width: int
) -> None:
    """torch.profiler over AutoAL's round-1 query (search + selection) at the benchmark's sizes:
    the top operators by device time and by host time, written as text tables to ``out_dir``."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    from autoal.config import RunConfig
    from autoal.loop import ActiveLearningLoop
    from autoal.strategies.autoal import AutoAL

    original = AutoAL.query
    calls = {"n": 0}

    def profiled(self, ctx):
        calls["n"] += 1
        if calls["n"] != 2:
            return original(self, ctx)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        with profile(activities=acts) as prof:
            picks = original(self, ctx)
            sync()
        ka = prof.key_averages()
        (out_dir / "profile_query_host.txt").write_text(ka.table(sort_by="self_cpu_time_total", row_limit=40))
        if torch.cuda.is_available():
            (out_dir / "profile_query_device.txt").write_text(ka.table(sort_by="self_device_time_total", row_limit=40))
        return picks

    AutoAL.query = profiled
    try:
        ds = synthetic_dataset(n_pool, n_test=1000, size=32, channels=3)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = RunConfig.from_dict(
                {
                    "model": {"name": "resnet18", "width": width},
                    "train": {"epochs": epochs, "batch_size": batch, "optimizer": "sgd", "lr": 0.05},
                    "al": {"initial_size": labeled, "query_size": query, "rounds": 3, "mc_samples": 500},
                    "strategy": {"name": "autoal", "params": {"batch_size": batch, "gmm_samples": 2000}},
                    "scoring": {"batch_size": 2048},
                    "tracking": {"enabled": False},
                    "runtime": {"output_dir": tmp, "quiet": True},
                }
            )
            ActiveLearningLoop(cfg, dataset=ds).run()
    finally:
        AutoAL.query = original


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results/gpu.json")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, runs on a CPU")
    ap.add_argument(
        "--profile", action="store_true", help="only profile AutoAL's query (torch.profiler tables next to --out)"
    )
    args = ap.parse_args()
    kw = dict(n_pool=600, labeled=100, query=20, epochs=1, batch=64, repeats=1, width=8) if args.smoke else {}
    if args.profile:
        sizes = {
            k: v
            for k, v in (kw or dict(n_pool=50000, labeled=5000, query=1000, epochs=2, batch=512, width=64)).items()
            if k != "repeats"
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        profile_autoal_query(Path(args.out).parent, **sizes)
        return 0
    res = run(**kw)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "machine"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
