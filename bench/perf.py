"""Performance benchmarks (issue 7). Every timing is a ratio against a baseline measured in
the same run on the same machine, each the median of several repeats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from bench.common import median_time, ratio, synthetic_dataset

CANDIDATES = ("entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std")


MC_CANDIDATES = ("bald", "var_ratio", "mean_std")


def mc_seed_stability(
    model, indices: np.ndarray, embeddings: torch.Tensor, mc: int, query: int, seeds: tuple[int, int] = (1, 2)
) -> dict:
    """How much the MC candidates' picks depend on the MC seed at T = ``mc`` (the figure that
    chose T, bench/README.md "MC dropout"): per candidate, ``overlap``, the share of the top
    ``query`` that two MC seeds pick in common, and ``spearman``, the rank correlation of the two
    seeds' scores over the whole pool (AutoAL reads whole rankings)."""
    from scipy.stats import spearmanr

    from autoal.cache import cache_from_embeddings
    from autoal.selection import top_n
    from autoal.strategies import scores

    a, b = (cache_from_embeddings(model, indices, embeddings, mc_samples=mc, seed=s).mc for s in seeds)
    out = {}
    for name in MC_CANDIDATES:
        sa, sb = getattr(scores, name)(a).cpu(), getattr(scores, name)(b).cpu()
        pa, pb = (set(top_n(x, query, np.random.default_rng(0)).tolist()) for x in (sa, sb))
        out[name] = {"overlap": len(pa & pb) / query, "spearman": float(spearmanr(sa.numpy(), sb.numpy())[0])}
    return out


def digits_mc_seed_stability(mc: int, sizes=(20, 70, 150), seeds: int = 3, query: int = 10, epochs: int = 50) -> dict:
    """The MC candidates' seed stability on a trained task model, by bench/mc_dropout.py's
    protocol (digits, random labeled sets of ``sizes``, ``seeds`` each, top ``query``): the
    ``overlap`` of two MC seeds' picks per labeled-set size, its mean over sizes, and
    ``min_mean_overlap``, the least stable candidate's (bench/README.md: 0.53-0.90 at T = 500)."""
    from autoal.data import DataSpec, load_dataset
    from bench.mc_dropout import one_round

    ds = load_dataset(DataSpec(name="digits"))
    per_size = {}
    for size in sizes:
        rows = [
            one_round(
                ds,
                np.sort(np.random.default_rng(s).permutation(len(ds.y_train))[:size]),
                True,
                "consistent",
                mc,
                query,
                s,
                epochs,
            )
            for s in range(seeds)
        ]
        per_size[str(size)] = {n: float(np.mean([r[f"{n}/overlap"] for r in rows])) for n in MC_CANDIDATES}
    mean = {n: float(np.mean([v[n] for v in per_size.values()])) for n in MC_CANDIDATES}
    return {
        "mc_samples": mc,
        "query": query,
        "seeds": seeds,
        "epochs": epochs,
        "overlap": per_size,
        "mean_overlap": mean,
        "min_mean_overlap": min(mean.values()),
    }


def candidate_scoring(
    n_pool: int = 20000,
    query: int = 100,
    mc: int | None = None,
    repeats: int = 5,
    model_name: str = "small_cnn",
    size: int = 8,
    channels: int = 1,
    separate: bool = True,
    mc_separate: int = 10,
    stability_digits: dict | None = None,
) -> dict:
    """All seven candidates from one shared cache vs Entropy alone, and (``separate``) vs each
    candidate with its own model passes (the released code's way: a full forward per candidate,
    and ``mc_separate`` = 10 full forwards with dropout for the MC candidates, the released
    code's T). Also the parts: the T head passes and each candidate's selection on a ready
    cache. ``mc`` defaults to ``al.mc_samples``' default.

    Beside the speed, what a cheaper MC estimate could cost: the MC candidates' stability across
    MC seeds at the same T (:func:`mc_seed_stability`) on this benchmark's pool and model (an
    untrained network on random images: it moves when T or the estimator changes, but says
    nothing about a trained model), and, with ``stability_digits`` (keyword arguments of
    :func:`digits_mc_seed_stability`), on trained models as bench/mc_dropout.py measures it."""
    from autoal.cache import compute_cache, embed_pool
    from autoal.config import ALConfig
    from autoal.device import prepare_model
    from autoal.mc import MCSummary
    from autoal.models import build_model
    from autoal.strategies import build_strategy

    mc = ALConfig().mc_samples if mc is None else mc
    ds = synthetic_dataset(n_pool, size=size, channels=channels)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = prepare_model(build_model(model_name, channels, 10, size), dev)
    images = ds.x_train.to(dev)
    idx = np.arange(n_pool)
    strategies = {n: build_strategy(n) for n in CANDIDATES}

    def entropy_only():
        c = compute_cache(model, ds, idx, mc_samples=0, device=dev, images=images)
        strategies["entropy"].select_positions(c, query, np.random.default_rng(0))

    def shared():
        c = compute_cache(model, ds, idx, mc_samples=mc, device=dev, images=images)
        for s in strategies.values():
            s.select_positions(c, query, np.random.default_rng(0))

    @torch.no_grad()
    def separate_passes():
        from autoal.cache import PoolCache

        for name, s in strategies.items():
            if name in ("bald", "var_ratio", "mean_std"):
                model.train()  # dropout active for T full passes (BN too, as in the released code)
                probs = []
                for _ in range(mc_separate):
                    emb = embed_pool(model, ds, idx, device=dev, images=images)
                    model.train()
                    probs.append(torch.softmax(model.head(emb), -1))
                model.eval()
                mcp = torch.stack(probs)
                c = PoolCache(idx, mcp.mean(0), emb, mcp.mean(0).log(), MCSummary.from_samples(mcp))
            else:
                c = compute_cache(model, ds, idx, mc_samples=0, device=dev, images=images)
            s.select_positions(c, query, np.random.default_rng(0))

    t_ent = median_time(entropy_only, repeats)
    t_shared = median_time(shared, repeats)
    out = {
        "n_pool": n_pool,
        "pool_shape": [channels, size, size],
        "model": model_name,
        "mc_samples": mc,
        "mc_samples_separate": mc_separate,
        "query": query,
        "seconds_entropy": t_ent,
        "seconds_all_shared": t_shared,
        "shared_vs_entropy": ratio(t_shared, t_ent),
        "target_shared_vs_entropy": 1.2,
        "meets_target": ratio(t_shared, t_ent) <= 1.2,
    }
    cache = compute_cache(model, ds, idx, mc_samples=mc, device=dev, images=images)
    if mc > 0:
        pool = mc_seed_stability(model, idx, cache.embeddings, mc, query)
        out["mc_seed_overlap_pool_min"] = min(v["overlap"] for v in pool.values())
        if stability_digits is not None:
            digits = digits_mc_seed_stability(mc, **stability_digits)
            out["mc_seed_overlap_digits_min"] = digits["min_mean_overlap"]
            out["mc_seed_stability_digits"] = digits
        out["mc_seed_stability_pool"] = pool
    from autoal.cache import cache_from_embeddings

    out["seconds_mc_head_passes"] = median_time(
        lambda: cache_from_embeddings(model, idx, cache.embeddings, mc_samples=mc), repeats
    )
    out["seconds_select"] = {
        n: median_time(lambda s=s: s.select_positions(cache, query, np.random.default_rng(0)), repeats)
        for n, s in strategies.items()
    }
    if separate:
        t_sep = median_time(separate_passes, max(1, repeats // 2))
        out.update(seconds_all_separate=t_sep, separate_vs_shared=ratio(t_sep, t_shared))
    return out


def kmeans_selection(n: int = 20000, d: int = 512, k: int = 100, repeats: int = 3) -> dict:
    """KMeans picks at k = b on an n x d embedding: autoal's torch k-means vs scikit-learn's default."""
    from sklearn.cluster import KMeans

    from autoal.kmeans import kmeans_picks

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(20, d, generator=g) * 3
    x = centres[torch.randint(0, 20, (n,), generator=g)] + torch.randn(n, d, generator=g)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    xd = x.to(dev)
    xn = x.numpy()
    t_ours = median_time(lambda: kmeans_picks(xd, k, seed=0), repeats)
    t_sk = median_time(lambda: KMeans(n_clusters=k, random_state=0).fit(xn), repeats, warmup=0)

    def inertia(picks_centres, assign_x):
        return float(((assign_x - picks_centres) ** 2).sum())

    from autoal.kmeans import kmeans as tk

    c_ours, a_ours = tk(xd, k, seed=0)
    sk = KMeans(n_clusters=k, random_state=0).fit(xn)
    in_ours = inertia(c_ours[a_ours].cpu(), x)
    return {
        "n": n,
        "d": d,
        "k": k,
        "seconds_autoal": t_ours,
        "seconds_sklearn": t_sk,
        "speedup_vs_sklearn": ratio(t_sk, t_ours),
        "inertia_autoal": in_ours,
        "inertia_sklearn": float(sk.inertia_),
        "inertia_ratio": ratio(in_ours, float(sk.inertia_)),
    }


def gmm_threshold_fit(n: int = 20000, k: int = 7, repeats: int = 5) -> dict:
    """The threshold θ's mixture fit on AutoAL's vote fractions over a pool of ``n`` (values
    m/k, as the paper formulation's selection over U sees them): autoal's EM on the distinct
    values vs scikit-learn's ``GaussianMixture`` (3 components), and the fitted means of both."""
    from sklearn.mixture import GaussianMixture

    from autoal.search.losses import fit_gmm_1d

    rng = np.random.default_rng(0)
    votes = rng.binomial(k, 0.08, size=n) / k
    t_ours = median_time(lambda: fit_gmm_1d(votes, 3, var_floor=1e-4), repeats)
    t_sk = median_time(lambda: GaussianMixture(3, random_state=0).fit(votes.reshape(-1, 1)), repeats, warmup=0)
    return {
        "n": n,
        "distinct_values": int(np.unique(votes).size),
        "seconds_autoal": t_ours,
        "seconds_sklearn": t_sk,
        "speedup_vs_sklearn": ratio(t_sk, t_ours),
    }


_MEM_CODE = """
import resource, sys, json, numpy as np, torch
torch.set_num_threads(2)
sys.path.insert(0, sys.argv[3])
from bench.common import synthetic_dataset
from autoal.cache import compute_cache
from autoal.models import build_model
from autoal.strategies import build_strategy
from autoal.training import TrainConfig, train_model


def status_kib(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1])


n = int(sys.argv[1]); strategy = sys.argv[2]
# A child inherits its parent's high-water mark through fork + exec, so ru_maxrss can only be
# trusted from a small parent. On Linux, writing 5 to clear_refs resets the mark to the current
# resident size instead.
try:
    open('/proc/self/clear_refs', 'w').write('5')
    peak = lambda: status_kib('VmHWM')
    before = status_kib('VmRSS')
except OSError:
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = peak()
ds = synthetic_dataset(n, size=32, channels=3)
m = build_model('small_cnn', 3, 10, 32)
lab = np.arange(200)
train_model(m, ds, lab, TrainConfig(epochs=2), device=torch.device('cpu'), seed=0)
c = compute_cache(m, ds, np.arange(200, n), mc_samples=500)
build_strategy(strategy).select_positions(c, 100, np.random.default_rng(0))
print(json.dumps({'peak_kib': peak(), 'baseline_kib': before}))
"""


def memory_growth(sizes=(10000, 20000, 40000), strategy: str = "kmeans") -> dict:
    """Peak resident memory of one round (load a 32x32x3 pool, train, cache, select) as the pool
    grows, above the process's footprint after imports; each size in a fresh process so peaks
    do not mask each other. The pool itself is 3 KiB per image."""
    root = str(Path(__file__).resolve().parent.parent)
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", _MEM_CODE, str(n), strategy, root],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        d = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(
            {"n_pool": n, "peak_mib": d["peak_kib"] / 1024, "round_mib": (d["peak_kib"] - d["baseline_kib"]) / 1024}
        )
    base = rows[0]["round_mib"]
    for r in rows:
        r["growth_vs_first"] = ratio(r["round_mib"], base)
    return {"strategy": strategy, "rows": rows}


def al_round(repeats: int = 3, smoke: bool = False) -> dict:
    """An AutoAL round vs an Entropy round on digits, split as the paper's Table 2: task training,
    scoring (the shared cache), and the query — for AutoAL its candidate indicators, search and
    selection on U. Each: median over ``repeats`` runs of a 2-round AL run's round 1. The credit
    formulation (``autoal_credit``) computes its pixel PCA once per run, in round 0: its ratio is
    over both rounds (``run_total``), the PCA amortized over two rounds only (an upper bound)."""
    from autoal.config import RunConfig
    from autoal.loop import ActiveLearningLoop
    import tempfile

    def one(strategy: str, seed: int) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = RunConfig.from_dict(
                {
                    "strategy": {"name": strategy},
                    "al": {"rounds": 2, "seed": seed},
                    "tracking": {"enabled": False},
                    "runtime": {"output_dir": tmp, "quiet": True, "num_threads": 2},
                }
            )
            res = ActiveLearningLoop(cfg).run()
            h = res.history[1]  # round 1: warm-started nets, as in steady state
            # the query ("select") holds AutoAL's candidate indicators, search and selection on U
            parts = {k: h.get(f"seconds_{k}", 0.0) for k in ("candidates", "search", "selection")}
            rest = h["seconds_select"] - sum(parts.values())
            return {
                "train": h["seconds_train"],
                "score": h["seconds_score"],
                **parts,
                "query_other": rest,
                "query": h["seconds_select"],
                "total": h["seconds_train"] + h["seconds_score"] + h["seconds_select"],
                "run_total": sum(
                    r["seconds_train"] + r["seconds_score"] + r["seconds_select"]
                    for r in res.history
                    if "seconds_select" in r
                ),
            }

    reps = 1 if smoke else repeats
    out = {}
    for s in ("entropy", "autoal", "autoal_credit"):
        runs = [one(s, seed) for seed in range(reps)]
        out[s] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    out["autoal_vs_entropy"] = ratio(out["autoal"]["total"], out["entropy"]["total"])
    out["autoal_credit_vs_entropy"] = ratio(out["autoal_credit"]["run_total"], out["entropy"]["run_total"])
    out["target"] = 1.5
    out["meets_target"] = out["autoal_vs_entropy"] <= 1.5
    out["credit_meets_target"] = out["autoal_credit_vs_entropy"] <= 1.5
    return out
