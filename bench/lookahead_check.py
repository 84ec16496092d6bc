"""Does the search's valuation point the right way? The look-ahead on L against the truth.

For random labeled sets L of a few sizes, each candidate strategy picks b samples from U with
the task model trained on L; the *true* one-round gain of a candidate is the test accuracy of a
task model retrained on L ∪ its picks (same seeds for every candidate), minus the mean over the
candidates. The *proxy* is autoal's look-ahead (``autoal/lookahead/valuation.py``): FitNet trained
on a half A of L, the candidates scored on the other half V with FitNet, the head refitted on A
∪ each candidate's picks from a simulated pool, held-out cross-entropy on the rest of V.
Reported: Spearman correlation of proxy and true gains over the candidates, how often the
proxy's best candidate is the true best, and the true gain lost by following the proxy
(regret) against following a fixed candidate.

    .venv/bin/python bench/lookahead_check.py                       # digits and MNIST (5,000 pool)
    .venv/bin/python bench/lookahead_check.py --settings mnist_low --seeds 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autoal.cache import compute_cache  # noqa: E402
from autoal.data import DataSpec, load_dataset  # noqa: E402
from autoal.device import prepare_model  # noqa: E402
from autoal.models import build_model  # noqa: E402
from autoal.lookahead.valuation import lookahead  # noqa: E402
from autoal.strategies import QueryContext, build_strategy  # noqa: E402
from autoal.training import TrainConfig, evaluate, train_model  # noqa: E402

CANDIDATES = ["entropy", "margin", "least_confidence", "kmeans", "bald", "var_ratio", "mean_std", "typiclust", "random"]
SETTINGS = {
    "digits": ({"name": "digits"}, [30, 60, 100], 10, 50),
    "mnist_low": ({"name": "mnist", "train_size": 5000, "test_size": 2000}, [40, 100, 200], 20, 30),
    "mnist_high": ({"name": "mnist", "train_size": 5000, "test_size": 2000}, [300, 700], 100, 10),
}
CPU = torch.device("cpu")


def trained(ds, labeled: np.ndarray, seed: int, epochs: int):
    torch.manual_seed(seed)
    m = prepare_model(build_model("small_cnn", ds.in_channels, ds.num_classes, ds.image_size), CPU)
    train_model(m, ds, labeled, TrainConfig(epochs=epochs), device=CPU, seed=seed)
    return m


def candidate_scores(names: list[str], cache, labeled_cache, n: int, seed: int) -> torch.Tensor:
    """(K, |cache|) rank scores in [0, 1] of each candidate over the cache's rows."""
    out = []
    for name in names:
        s = build_strategy(name)
        rng = np.random.default_rng(seed)
        if name == "typiclust":
            out.append(s.rank_score(cache, n, rng, labeled=labeled_cache))
        elif name == "random":
            out.append(torch.from_numpy(rng.random(len(cache))).float())
        else:
            out.append(s.rank_score(cache, n, rng))
    return torch.stack(out)


def one_point(ds, size: int, b: int, epochs: int, seed: int, parts: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n_pool = len(ds.y_train)
    labeled = np.sort(rng.permutation(n_pool)[:size])
    unlabeled = np.setdiff1d(np.arange(n_pool), labeled)
    model = trained(ds, labeled, seed, epochs)
    cache = compute_cache(model, ds, unlabeled, seed=seed)
    lab_cache = compute_cache(model, ds, labeled, mc_samples=0)
    truth = {}
    for name in CANDIDATES:
        s = build_strategy(name)
        ctx = QueryContext(
            cache=cache,
            unlabeled=unlabeled,
            labeled=labeled,
            n=b,
            rng=np.random.default_rng(seed),
            labeled_cache=lab_cache,
        )
        picks = s.query(ctx)
        m2 = trained(ds, np.concatenate([labeled, picks]), seed + 1, epochs)
        truth[name] = evaluate(m2, ds, device=CPU)["accuracy"]
    # the proxy: FitNet on A, candidates on V, look-ahead
    perm = rng.permutation(size)
    a_idx, v_idx = labeled[np.sort(perm[: size // 2])], labeled[np.sort(perm[size // 2 :])]
    fitnet = trained(ds, a_idx, seed + 2, epochs)
    v_cache = compute_cache(fitnet, ds, v_idx, seed=seed)
    a_cache = compute_cache(fitnet, ds, a_idx, mc_samples=0)
    scores = candidate_scores(CANDIDATES, v_cache, a_cache, max(1, b // 2), seed)
    res = lookahead(
        a_cache.embeddings,
        ds.y_train[a_idx],
        v_cache.embeddings,
        ds.y_train[v_idx],
        fitnet.fc.weight.detach(),
        fitnet.fc.bias.detach(),
        scores,
        max(1, round(b / 2)),
        parts=parts,
        rng=np.random.default_rng(seed),
    )
    proxy = dict(zip(CANDIDATES, res.gain_ce.mean(1).tolist()))
    proxy_acc = dict(zip(CANDIDATES, res.gain_acc.mean(1).tolist()))
    return {
        "size": size,
        "seed": seed,
        "truth": truth,
        "proxy_ce": proxy,
        "proxy_acc": proxy_acc,
        "picks_simulated": res.picks,
    }


def summarize(points: list[dict[str, Any]]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    rho, hit, regret = [], 0, []
    fixed = {c: [] for c in CANDIDATES}
    for p in points:
        t = np.array([p["truth"][c] for c in CANDIDATES])
        q = np.array([p["proxy_ce"][c] for c in CANDIDATES])
        rho.append(float(spearmanr(t, q)[0]))
        best = int(np.argmax(t))
        hit += int(np.argmax(q) == best)
        regret.append(float(t.max() - t[int(np.argmax(q))]))
        for c in CANDIDATES:
            fixed[c].append(float(t.max() - p["truth"][c]))
    return {
        "points": len(points),
        "spearman_mean": statistics.mean(rho),
        "proxy_picks_best": hit,
        "regret_proxy": statistics.mean(regret),
        "regret_fixed": {c: statistics.mean(v) for c, v in fixed.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=["digits", "mnist_low"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--parts", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lookahead_check.json"))
    ap.add_argument("--smoke", action="store_true", help="digits, one size, one seed, few epochs (CI)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.settings, args.seeds, args.parts = ["digits"], 1, 2
        SETTINGS["digits"] = ({"name": "digits"}, [30], 10, 5)
    report: dict[str, Any] = {"config": vars(args), "settings": {}}
    for name in args.settings:
        spec, sizes, b, epochs = SETTINGS[name]
        ds = load_dataset(DataSpec(**spec))
        points = []
        for size in sizes:
            for seed in range(args.seeds):
                p = one_point(ds, size, b, epochs, seed, args.parts)
                points.append(p)
                best_true = max(p["truth"], key=p["truth"].get)
                best_proxy = max(p["proxy_ce"], key=p["proxy_ce"].get)
                print(
                    f"{name} |L|={size} seed {seed}: true best {best_true} "
                    f"({p['truth'][best_true]:.3f}); proxy best {best_proxy} (true {p['truth'][best_proxy]:.3f})  "
                    + " ".join(f"{c[:6]} {p['truth'][c]:.3f}/{p['proxy_ce'][c]:+.3f}" for c in CANDIDATES),
                    flush=True,
                )
        report["settings"][name] = {"points": points, "summary": summarize(points)}
        print(name, json.dumps(report["settings"][name]["summary"], indent=1), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
