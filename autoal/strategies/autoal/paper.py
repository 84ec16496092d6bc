"""AutoAL in the paper's formulation (Wang, Zhan & Huang, ICML 2025): ``strategy=autoal_paper``
(``strategy=autoal`` with ``formulation: paper``; settings:
:class:`~autoal.strategies.autoal.params.PaperParams`).

Each round (DESIGN.md §3.2-3.7):

1. ``cycles`` times: split L at random into halves A and V; warm up FitNet on A; compute the
   candidates' indicators S_k and the GMM threshold θ once per mini-batch of V from the
   candidate model (FitNet, or the task model with ``candidate_model: task``); alternate
   SearchNet(+LPM) and FitNet updates over V (:func:`autoal.search.cycle.search_cycle`).
2. Selection on U: S_k from the task model's shared cache (each candidate marks its top b of
   U), θ from the GMM with t = b/|U|, w = sigmoid(Θ) from SearchNet on U (evaluation transform),
   S̄ = λ Σ_k w_k (S_k − θ), and the top b of S̄ (ties broken by the round's seeded RNG).

Schedule defaults, and why they differ from the paper's
-------------------------------------------------------
The paper trains FitNet for 200 warm-up epochs and runs 400 search epochs per round (the
released code: ~600 inner iterations, each recomputing every candidate). On digits (pool of
1,347, ``small_cnn``, |L| = 20..120, so one V batch per cycle) a task-model round is 50-100
optimizer steps, and an AutoAL round has to stay well under 2x (target 1.5x) an Entropy round.
The defaults were chosen by measurement (``bench/quality.py``; numbers in bench/README.md):

- ``warm_start: true`` — SearchNet, LPM and their optimizer states persist across rounds, so
  the search continues where it stopped (80 SearchNet updates over a 10-round run) instead of
  restarting from random weights every round;
- ``fitnet_reset: round`` — FitNet starts fresh each round (a FitNet kept across rounds has
  been trained on this round's V), warmed up for ``warmup_epochs: 10`` epochs on A;
- ``cycles: 1``, ``search_epochs: 8`` alternating updates per round;
- ``width_factor: 0.5`` — SearchNet and FitNet at half the task model's width;
  together these cost about 0.26x a digits task-model training, against 0.45x for
  warm-up 20 / search 10 at full width (same process, interleaved, 1 CPU thread);
- ``searchnet_optimizer: sgd`` (momentum 0.9) at the paper's lr 0.005: SGD moves w visibly
  within these few steps (w_mean spread 0.38-0.75 by round 9 on digits) and keeps the head
  out of saturation on ResNet-18, where Adam at lr 0.005 drove w to 0/1 within one round
  (head gradient ≈ 1e-6);
- ``tau: 0.1``, ``lam: 1`` (DESIGN.md §3.4: with τ = λ = 1 the budget cannot be reached and
  AutoAL collapses into a plain vote).

Everything is config; the paper's numbers are ``warmup_epochs: 200, search_epochs: 400,
fitnet_reset: never, width_factor: 1``.

Per-round trace (``ctx.log``, MLflow step = round):

- ``w_mean/<cand>``: mean over U of w_k;
- ``contribution/<cand>``: mean over U of λ·w_k(x)·(S_k(x) − θ), candidate k's additive term of
  S̄ (positive where k's picks, weighted by SearchNet, push samples up);
- ``share/<cand>``: candidate k's share of the positive evidence behind the selected samples,
  Σ_{x∈picks} w_k S_k / Σ_j Σ_{x∈picks} w_j S_j (sums to 1 over k; the paper's Fig. 5 view);
- ``search/alpha`` against ``search/alpha_target`` (= t·B per V batch), ``search/loss_fitnet``,
  ``search/loss_searchnet``, ``search/loss_lpm``, ``search/loss_warmup``, ``search/theta``
  (mean over V batches), ``search/theta_pool`` (θ on U), ``search/head_grad_norm`` (last step);
- ``seconds_candidates`` (candidate indicators on V batches and on U, incl. FitNet's cache
  pass), ``seconds_search`` (warm-up and updates), ``seconds_selection`` (θ on U, SearchNet on
  U, top-b).

Progress (``ctx.progress``): stage ``autoal/search``, one unit per optimizer update of FitNet's
warm-up and of the search over all the round's cycles (with ``search_executor: ray_train``, one unit
per cycle, reported when the Train run returns); the lookahead formulation reports
``autoal/fitnet`` (FitNet's epochs) and ``autoal/lookahead`` (its steps), see
:mod:`autoal.strategies.autoal.lookahead`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.data.base import random_crop_flip
from autoal.device import prepare_batch, prepare_model
from autoal.errors import ConfigError
from autoal.executors.ray_train_search import RayTrainSearch, run_search_on_ray_train, train_workers_fit
from autoal.lpm import LossPredictionModule
from autoal.models import model_family, model_names
from autoal.search.cycle import (
    CycleStats,
    SearchConfig,
    SearchNets,
    SearchOptimizers,
    make_optimizers,
    pool_scores,
    query_fraction,
    split_labeled,
)
from autoal.search.nets import build_fitnet, build_searchnet
from autoal.search.round import CyclePlan, SearchRound, run_cycles
from autoal.selection import top_n
from autoal.strategies.autoal.formulation import (
    STATE_VERSION,
    Formulation,
    build_candidates,
    candidate_needs,
    seeded_query,
)
from autoal.strategies.autoal.params import AutoALParams
from autoal.strategies.base import QueryContext, restore, saved_mapping

#: what the formulation reads besides its candidates' needs
NEEDS = frozenset({"embeddings", "mc", "model", "dataset"})


def _err(key: str, msg: str) -> ConfigError:
    return ConfigError(f"strategy.params.{key}: {msg}")


class PaperFormulation(Formulation):
    """The paper's bi-level search: SearchNet (+LPM) and FitNet, their optimizers and the round
    (module docstring). The nets are built in the first round, where the data set is known."""

    name = "paper"

    def __init__(self, params: AutoALParams) -> None:
        self.p = params.paper
        self.candidates = build_candidates(params.pool)
        needs = NEEDS | candidate_needs(self.candidates)
        self.needs = needs | {"labeled_cache"} if self.p.candidate_model == "task" else needs
        self.nets: SearchNets | None = None
        self.opts: SearchOptimizers | None = None
        self._arch: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None
        self.rounds_done = 0

    # -- nets --------------------------------------------------------------------------------
    def _arch_for(self, ctx: QueryContext) -> dict[str, Any]:
        task = ctx.model
        p = self.p
        name = p.model
        if name is None:
            name = (getattr(task, "spec", None) or {}).get("name") if task is not None else "small_cnn"
            if name not in model_names():
                raise _err(
                    "model",
                    f"cannot infer the backbone family of a {type(task).__name__} (it was not "
                    f"built by autoal.models.build_model); set it to one of {', '.join(model_names())}",
                )
        width = p.width
        if width is None:
            same = task is not None and hasattr(task, "stage_channels") and p.model in (None, name)
            base = int(task.stage_channels[0]) if same else model_family(name).default_width
            width = max(4, int(round(base * p.width_factor)))
        ds = ctx.dataset
        return {
            "model": name,
            "width": width,
            "in_channels": ds.in_channels,
            "image_size": ds.image_size,
            "num_classes": ds.num_classes,
            "K": len(self.candidates),
            "num_scores": len(self.candidates) if p.searchnet_input == "image+scores" else 0,
            "dropout": float(getattr(task, "dropout_p", 0.3)),
            "embedding_norm": bool(getattr(task, "embedding_norm", True)),
            "lpm": p.lpm,
            "lpm_dim": p.lpm_dim,
        }

    def _build(self, arch: dict[str, Any], device: torch.device) -> None:
        p = self.p
        sn = build_searchnet(
            arch["model"],
            arch["in_channels"],
            arch["K"],
            arch["image_size"],
            width=arch["width"],
            num_scores=arch["num_scores"],
        )
        fn = build_fitnet(
            arch["model"],
            arch["in_channels"],
            arch["num_classes"],
            arch["image_size"],
            width=arch["width"],
            dropout=arch["dropout"],
            embedding_norm=arch["embedding_norm"],
        )
        sn, fn = prepare_model(sn, device), prepare_model(fn, device)  # channels-last on CUDA
        lpm = LossPredictionModule(sn.stage_channels, arch["lpm_dim"]).to(device) if arch["lpm"] else None
        self.nets = SearchNets(sn, fn, lpm)
        self.opts = make_optimizers(
            self.nets,
            fitnet_lr=p.fitnet_lr,
            searchnet_lr=p.searchnet_lr,
            lpm_lr=p.lpm_lr,
            searchnet_optimizer=p.searchnet_optimizer,
            momentum=p.momentum,
            weight_decay=p.weight_decay,
        )
        self._arch = arch

    def _ensure_nets(self, ctx: QueryContext) -> bool:
        """Build the nets when needed; True when they were (re)built from scratch this round."""
        arch = self._arch_for(ctx)
        if self.nets is None or not self.p.warm_start or arch != self._arch:
            self._build(arch, ctx.device)
            fresh = True
            if self._pending is not None and self.p.warm_start:
                fresh = not self._apply_state(self._pending)
            self._pending = None
            return fresh
        return False

    # -- the round ---------------------------------------------------------------------------
    def query(self, ctx: QueryContext) -> np.ndarray:
        if ctx.dataset is None:
            raise ValueError("strategy 'autoal' needs the data set in its context (needs = dataset)")
        return seeded_query(ctx, lambda: self._query(ctx))

    def _query(self, ctx: QueryContext) -> np.ndarray:
        t_start = time.perf_counter()
        fresh = self._ensure_nets(ctx)
        assert self.nets is not None and self.opts is not None
        work = self._plan(ctx, fresh)
        t_run = time.perf_counter()
        stats = self._run(ctx, work)
        t_cand = sum(st.seconds_candidates for st in stats)
        t_search = time.perf_counter() - t_run - t_cand

        # -- selection on U (§3.7) --------------------------------------------------------
        t0 = time.perf_counter()
        ds, p, b = ctx.dataset, self.p, int(ctx.n)
        unlabeled = np.asarray(ctx.unlabeled, dtype=np.int64)
        x_u = ds.eval_transform(prepare_batch(ds.x_train[torch.from_numpy(unlabeled)], ctx.device))
        ps = pool_scores(
            self.nets.searchnet,
            self.candidates,
            ctx.cache,
            x_u,
            b,
            lam=p.lam,
            candidate_score=p.candidate_score,
            searchnet_input=p.searchnet_input,
            gmm_components=p.gmm_components,
            gmm_samples=p.gmm_samples,
            seed=int(ctx.seed) + 1,
        )
        pos = top_n(ps["sbar"], b, ctx.rng)
        t_sel = time.perf_counter() - t0
        self.rounds_done += 1
        self._trace(
            ctx, stats, ps["S"], ps["w"], ps["theta"], pos, (t_cand, t_search, t_sel, time.perf_counter() - t_start)
        )
        return unlabeled[pos]

    def _plan(self, ctx: QueryContext, fresh: bool) -> SearchRound:
        """The round's search: its config, the labeled tensors and every cycle planned here (A/V
        splits, seeds, FitNet resets); an executor (this process, or Ray Train workers) runs it."""
        assert self.nets is not None and self.opts is not None
        p, ds, device = self.p, ctx.dataset, ctx.device
        labeled = np.asarray(ctx.labeled, dtype=np.int64)
        t = query_fraction(int(ctx.n), len(labeled) + len(ctx.unlabeled))
        mc = p.mc_samples
        if mc is None:
            mc = int(ctx.cache.mc.samples) if ctx.cache.mc is not None else 500
        x_l = ds.eval_transform(prepare_batch(ds.x_train[torch.from_numpy(labeled)], device))
        y_l = ds.y_train[torch.from_numpy(labeled)].to(device)
        l_cache = self._labeled_cache(ctx, labeled) if p.candidate_model == "task" else None
        augment = _augment_fn(ds)
        rng = np.random.default_rng(int(ctx.seed))
        plans: list[CyclePlan] = []
        for c in range(p.cycles):
            cycle_seed = int(rng.integers(0, 2**31 - 1))
            reset = not fresh and (p.fitnet_reset == "cycle" or (p.fitnet_reset == "round" and c == 0))
            a_pos, v_pos = split_labeled(len(labeled), rng)
            plans.append(
                CyclePlan(
                    a_pos,
                    v_pos,
                    cycle_seed,
                    reset_fitnet=reset,
                    torch_seed=cycle_seed + 1,
                    v_cache=l_cache.subset(v_pos) if l_cache is not None else None,
                )
            )
            fresh = False
        return SearchRound(self.nets, self.opts, x_l, y_l, plans, SearchConfig.of(p, t, mc), self.candidates, augment)

    def _run(self, ctx: QueryContext, work: SearchRound) -> list[CycleStats]:
        """Run the round's cycles with ``search_executor`` (falling back to this process, with a
        notice, when the Ray Train workers cannot be placed now)."""
        executor = self.p.search_executor
        if executor == "ray_train":
            why = train_workers_fit(self.p.num_workers)
            if why is not None:  # waiting would never end while this run's own actors hold the resources
                executor = "local"
                notice = f"strategy.params.search_executor=ray_train: {why}; this round's search runs in this process"
                logging.getLogger("autoal").warning(notice)
                ctx.artifacts["search_executor"] = {"requested": "ray_train", "used": "local", "notice": notice}
                ctx.log("search/ray_train_fallback", 1.0)
        if executor == "ray_train":  # progress in cycles, as the Train run returns
            ctx.progress("autoal/search", 0, len(work.plans))
            stats = run_search_on_ray_train(RayTrainSearch(work, num_workers=self.p.num_workers))
            ctx.progress("autoal/search", len(work.plans), len(work.plans))
            return stats
        # progress in optimizer updates (warm-up and search, every cycle)
        return run_cycles(work, progress=lambda done, total, **info: ctx.progress("autoal/search", done, total, **info))

    def _labeled_cache(self, ctx: QueryContext, labeled: np.ndarray) -> PoolCache:
        if ctx.labeled_cache is not None and np.array_equal(ctx.labeled_cache.indices, labeled):
            return ctx.labeled_cache
        if ctx.learner is None or ctx.model is None:
            raise ValueError("candidate_model 'task' needs the task model's cache of L (labeled_cache or the learner)")
        return ctx.learner.score(ctx.model, labeled, int(ctx.seed) + 3)

    def _trace(
        self,
        ctx: QueryContext,
        stats: list[CycleStats],
        S_u: torch.Tensor,
        w: torch.Tensor,
        theta: float,
        pos: np.ndarray,
        seconds: tuple[float, float, float, float],
    ) -> None:
        t_cand, t_search, t_sel, t_total = seconds
        lam = self.p.lam
        w_mean = w.mean(0)
        contrib = (lam * w * (S_u - theta)).mean(0)
        sel = torch.as_tensor(pos, dtype=torch.long, device=w.device)
        ev = (w[sel] * S_u[sel]).sum(0)
        share = ev / ev.sum() if float(ev.sum()) > 0 else torch.full_like(ev, float("nan"))
        trace: dict[str, Any] = {"candidates": list(self.names), "w_mean": {}, "contribution": {}, "share": {}}
        for k, name in enumerate(self.names):
            ctx.log(f"w_mean/{name}", float(w_mean[k]))
            ctx.log(f"contribution/{name}", float(contrib[k]))
            ctx.log(f"share/{name}", float(share[k]))
            trace["w_mean"][name] = float(w_mean[k])
            trace["contribution"][name] = float(contrib[k])
            trace["share"][name] = None if math.isnan(float(share[k])) else float(share[k])
        last = stats[-1]
        search = {
            "alpha": last.alpha,
            "alpha_target": last.alpha_target,
            "loss_fitnet": last.loss_fitnet,
            "loss_searchnet": last.loss_searchnet,
            "loss_lpm": last.loss_lpm,
            "loss_warmup": last.loss_warmup,
            "head_grad_norm": last.head_grad_norm,
            "theta": last.extra.get("theta", float("nan")),
            "theta_pool": float(theta),
        }
        for key, val in search.items():
            ctx.log(f"search/{key}", val)
        ctx.log("seconds_candidates", t_cand)
        ctx.log("seconds_search", t_search)
        ctx.log("seconds_selection", t_sel)
        trace["search"] = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in search.items()}
        trace["seconds"] = {"candidates": t_cand, "search": t_search, "selection": t_sel, "total": t_total}
        ctx.artifacts["autoal_trace"] = trace

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.nets is None or self.opts is None:
            return {}
        return {
            "version": STATE_VERSION,
            "formulation": self.name,
            "arch": dict(self._arch or {}),
            "rounds_done": self.rounds_done,
            "searchnet": self.nets.searchnet.state_dict(),
            "fitnet": self.nets.fitnet.state_dict(),
            "lpm": None if self.nets.lpm is None else self.nets.lpm.state_dict(),
            "opt_searchnet": self.opts.searchnet.state_dict(),
            "opt_fitnet": self.opts.fitnet.state_dict(),
            "opt_lpm": None if self.opts.lpm is None else self.opts.lpm.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the nets (applied when they are built in the next round, where the data set
        and device are known)."""
        for key in ("searchnet", "fitnet", "opt_searchnet", "opt_fitnet"):
            saved_mapping(state, key, optional=False)
        for key in ("lpm", "opt_lpm"):
            saved_mapping(state, key)
        self._pending = state
        self.nets = None

    def _apply_state(self, state: dict[str, Any]) -> bool:
        assert self.nets is not None and self.opts is not None
        if state.get("arch") != self._arch:
            return False  # a different architecture (config changed): start fresh
        restore(self.nets.searchnet, state["searchnet"], "SearchNet")
        restore(self.nets.fitnet, state["fitnet"], "FitNet")
        restore(self.opts.searchnet, state["opt_searchnet"], "SearchNet optimizer")
        restore(self.opts.fitnet, state["opt_fitnet"], "FitNet optimizer")
        if self.nets.lpm is not None and state.get("lpm") is not None:
            restore(self.nets.lpm, state["lpm"], "loss prediction module")
            if self.opts.lpm is not None and state.get("opt_lpm") is not None:
                restore(self.opts.lpm, state["opt_lpm"], "loss prediction module's optimizer")
        return True


def _augment_fn(ds):
    """FitNet's training augmentation on normalized batches (none for digits-like data)."""
    if getattr(ds, "augmentation", "none") == "none":
        return None

    flip = ds.augmentation == "crop_flip"
    return lambda x, gen: random_crop_flip(x, flip=flip, generator=gen)
