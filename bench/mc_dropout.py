"""Diagnosis of the Monte-Carlo dropout candidates (BALD, MeanSTD, VarRatio) on one round.

For random labeled sets of a few sizes, a task model is trained as in the AL loop and the pool
is scored. Reported per setting, as means over seeds:

- ``rho_entropy_norm``: Spearman correlation of the softmax entropy with the norm of the pooled
  features (before any normalization): how the network's activation size relates to uncertainty;
- per MC score: its Spearman correlation with that norm and with the entropy, the task model's
  accuracy on its top-b picks (low = it picks samples the model gets wrong, as uncertainty
  sampling should; Margin's is printed for reference), and ``overlap``: the share of the top-b
  picks that two MC seeds have in common;
- the seconds of the MC head passes against the backbone pass over the pool.

Variants are the ways of computing the MC samples (DESIGN.md §3.1.1)::

    .venv/bin/python bench/mc_dropout.py                                  # digits, the variants below
    .venv/bin/python bench/mc_dropout.py --dataset mnist --train-size 10000 --sizes 40 120 400
    .venv/bin/python bench/mc_dropout.py --variant 'new_T300=norm,consistent,300'

A variant is ``NAME=NORM,MASKS,T`` with NORM ``norm|raw`` (``model.embedding_norm``), MASKS
``consistent|independent`` (``al.mc_masks``) and T (``al.mc_samples``). Writes JSON next to the
other results (``bench/results/mc_dropout.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autoal.cache import compute_cache  # noqa: E402
from autoal.data import DataSpec, load_dataset  # noqa: E402
from autoal.models import build_model  # noqa: E402
from autoal.selection import top_n  # noqa: E402
from autoal.strategies import scores  # noqa: E402
from autoal.training import TrainConfig, train_model  # noqa: E402

DEFAULT_VARIANTS = [
    "old=raw,independent,10",
    "norm_T10=norm,independent,10",
    "new_T100=norm,consistent,100",
    "new_T300=norm,consistent,300",
    "new_T1000=norm,consistent,1000",
]
MC_SCORES = {"bald": scores.bald, "mean_std": scores.mean_std, "var_ratio": scores.var_ratio}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def parse_variant(text: str) -> tuple[str, bool, str, int]:
    name, _, spec = text.partition("=")
    norm, masks, t = spec.split(",")
    if norm not in ("norm", "raw") or masks not in ("consistent", "independent"):
        raise SystemExit(f"--variant {text!r}: expected NAME=norm|raw,consistent|independent,T")
    return name, norm == "norm", masks, int(t)


def one_round(
    ds, labeled: np.ndarray, norm: bool, masks: str, t: int, b: int, seed: int, epochs: int
) -> dict[str, Any]:
    dev = torch.device("cpu")
    torch.manual_seed(seed)
    model = build_model("small_cnn", ds.in_channels, ds.num_classes, ds.image_size, dropout=0.3, embedding_norm=norm)
    train_model(model, ds, labeled, TrainConfig(epochs=epochs), device=dev, seed=seed)
    pool = np.setdiff1d(np.arange(len(ds.y_train)), labeled)
    t0 = time.perf_counter()
    base = compute_cache(model, ds, pool, mc_samples=0)
    t_backbone = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():  # the norm of the pooled features before any normalization
        x = ds.eval_transform(ds.x_train[torch.from_numpy(pool)])
        raw_norm = model.pool(model.stages(x)[-1]).norm(dim=1).numpy()
    caches = []
    t_mc = []
    for mc_seed in (1, 2):
        t1 = time.perf_counter()
        caches.append(compute_cache(model, ds, pool, mc_samples=t, seed=mc_seed, mc_masks=masks))
        t_mc.append(time.perf_counter() - t1 - t_backbone)
    correct = base.probs.argmax(1).numpy() == ds.y_train.numpy()[pool]
    ent = scores.entropy(base.probs).numpy()
    out: dict[str, Any] = {
        "rho_entropy_norm": spearman(ent, raw_norm),
        "margin_pick_accuracy": float(correct[top_n(scores.margin(base.probs), b, np.random.default_rng(0))].mean()),
        "seconds_backbone": t_backbone,
        "seconds_mc": statistics.median(t_mc),
    }
    for name, fn in MC_SCORES.items():
        s1, s2 = fn(caches[0].mc), fn(caches[1].mc)
        p1 = top_n(s1, b, np.random.default_rng(0))
        p2 = top_n(s2, b, np.random.default_rng(0))
        out[f"{name}/rho_norm"] = spearman(s1.numpy(), raw_norm)
        out[f"{name}/rho_entropy"] = spearman(s1.numpy(), ent)
        out[f"{name}/pick_accuracy"] = float(correct[p1].mean())
        out[f"{name}/overlap"] = len(set(p1.tolist()) & set(p2.tolist())) / b
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--train-size", type=int, default=None, help="dataset.train_size (seeded subsample)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 70, 150], help="labeled-set sizes")
    ap.add_argument("--query", type=int, default=10, help="b: picks compared")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", action="append", default=None, metavar="NAME=NORM,MASKS,T")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "mc_dropout.json"))
    ap.add_argument("--smoke", action="store_true", help="1 seed, one size, two variants (CI)")
    args = ap.parse_args(argv)
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    if args.smoke:
        args.seeds, args.sizes, args.epochs = 1, args.sizes[:1], 5
        variants = variants[:1] + variants[2:3]
    torch.set_num_threads(args.threads)
    spec = {"name": args.dataset}
    if args.train_size:
        spec["train_size"] = args.train_size
    ds = load_dataset(DataSpec(**spec))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, norm, masks, t in variants:
        for size in args.sizes:
            rows = []
            for seed in range(args.seeds):
                labeled = np.sort(np.random.default_rng(seed).permutation(len(ds.y_train))[:size])
                rows.append(one_round(ds, labeled, norm, masks, t, args.query, seed, args.epochs))
            mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0]}
            results.setdefault(name, {})[str(size)] = mean
            print(
                f"{name:<10} |L|={size:<4} rho(H,norm) {mean['rho_entropy_norm']:+.2f}  margin acc "
                f"{mean['margin_pick_accuracy']:.2f}  "
                + "  ".join(
                    f"{s}: rho_norm {mean[f'{s}/rho_norm']:+.2f} rho_H {mean[f'{s}/rho_entropy']:+.2f} "
                    f"acc {mean[f'{s}/pick_accuracy']:.2f} overlap {mean[f'{s}/overlap']:.2f}"
                    for s in MC_SCORES
                )
                + f"  mc {mean['seconds_mc']:.3f}s vs backbone {mean['seconds_backbone']:.3f}s",
                flush=True,
            )
    report = {"config": vars(args), "variants": [list(v) for v in variants], "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
