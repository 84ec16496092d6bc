"""AutoAL (Wang, Zhan & Huang, ICML 2025) as a query strategy: ``strategy=autoal``.

Each round (DESIGN.md §3.2-3.7):

1. ``cycles`` times: split L at random into halves A and V; warm up FitNet on A; compute the
   candidates' indicators S_k and the GMM threshold θ once per mini-batch of V from the
   candidate model (FitNet, or the task model with ``candidate_model: task``); alternate
   SearchNet(+LPM) and FitNet updates over V (:func:`autoal.search.search.search_cycle`).
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
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.data.base import random_crop_flip
from autoal.device import prepare_batch, prepare_model
from autoal.errors import ConfigError, StateError
from autoal.executors.ray_train_search import CyclePlan, run_search_on_ray_train
from autoal.lpm import LossPredictionModule
from autoal.models import model_family, model_names
from autoal.search.nets import build_fitnet, build_searchnet
from autoal.search.search import (CANDIDATE_SCORES, SearchConfig, SEARCHNET_INPUTS, SearchNets, SearchOptimizers,
                                  make_optimizers, pool_scores, query_fraction, search_cycle, split_labeled)
from autoal.selection import top_n
from autoal.strategies import candidates as _candidates
from autoal.strategies.autoal_lookahead import GATES, LookaheadParams, LookaheadSearch, SELECTIONS
from autoal.strategies.base import QueryContext, Strategy
from autoal.strategies.candidates import PAPER_CANDIDATES
from autoal.strategies.registry import register_strategy
from autoal.strategies.typiclust import TypiClust

CANDIDATE_MODELS = ("fitnet", "task")
FITNET_RESETS = ("cycle", "round", "never")
OPTIMIZERS = ("sgd", "adam")
EXECUTORS = ("local", "ray_train")
_STATE_VERSION = 1
#: the candidate classes by registry name (built directly: no need to import every strategy module)
_CANDIDATE_CLASSES = {cls.name: cls for cls in vars(_candidates).values()
                      if isinstance(cls, type) and issubclass(cls, Strategy) and getattr(cls, "name", None) in PAPER_CANDIDATES}
_CANDIDATE_CLASSES["typiclust"] = TypiClust
#: every strategy that can be a candidate: the paper's seven, then TypiClust (Hacohen et al. 2022)
CANDIDATE_NAMES = (*PAPER_CANDIDATES, "typiclust")
FORMULATIONS = ("lookahead", "paper")


def _err(key: str, msg: str) -> ConfigError:
    return ConfigError(f"strategy.params.{key}: {msg}")


@register_strategy("autoal")
class AutoAL(Strategy):
    """Differentiable query-strategy search. Every keyword is a ``strategy.params`` key.

    candidates: candidate names (any subset of the paper's seven, default all in the paper's
        order); pool_size: keep the first ``pool_size`` of them (Fig. 4: 1/3/5/7; None = all).
    lam (λ, Eq. 6), lam_reg (λ̄, Eqs. 7-9), tau (τ of the soft selection; 0 = the released
        code's hard step with zero gradient), gmm_components, gmm_samples (θ, Eqs. 2-4).
    cycles (A/V re-splits per round), warmup_epochs (FitNet on A), search_epochs (alternating
        updates over V), batch_size (B).
    fitnet_lr (Adam), searchnet_lr + searchnet_optimizer (sgd|adam, also used for the LPM),
        lpm_lr, momentum (SGD), weight_decay.
    lpm (use the loss prediction module), lpm_only (the search loss does not reach SearchNet's
        backbone), lpm_weight, lpm_dim.
    candidate_model: fitnet (default) | task — which model feeds the candidates during search.
    candidate_score: indicator | rank. searchnet_input: image | image+scores.
    warm_start: keep SearchNet/LPM (and FitNet with fitnet_reset=never) across rounds.
    fitnet_reset: cycle | round | never — when FitNet restarts from fresh weights.
    model, width: backbone of SearchNet/FitNet (None = the task model's family; width None =
        ``width_factor`` x the task model's width, at least 4; default 0.5: the search nets only
        rank and weigh, and half-width nets cut the search's cost by a third on digits).
    mc_samples: Monte-Carlo samples of FitNet's candidate cache (None = as the task cache).
    executor: local (default: the updates in this process) | ray_train (every cycle of the round
        in one Ray Train TorchTrainer with ``num_workers`` DDP workers over the batch; see
        :mod:`autoal.executors.ray_train_search`); num_workers: Train workers for ray_train.
    """

    needs = frozenset({"embeddings", "mc", "model", "dataset"})

    def __init__(self, candidates: Sequence[str] = PAPER_CANDIDATES, pool_size: int | None = None,
                 lam: float = 1.0, lam_reg: float = 2.0, tau: float = 0.1, gmm_components: int = 3,
                 gmm_samples: int = 2000, cycles: int = 1, warmup_epochs: int = 10, search_epochs: int = 8,
                 batch_size: int = 64, fitnet_lr: float = 0.005, searchnet_lr: float = 0.005,
                 searchnet_optimizer: str = "sgd", lpm_lr: float = 0.005, lpm_weight: float = 1.0,
                 lpm: bool = True, lpm_only: bool = False, lpm_dim: int = 32, candidate_model: str = "fitnet",
                 candidate_score: str = "indicator", searchnet_input: str = "image", warm_start: bool = True,
                 fitnet_reset: str = "round", model: str | None = None, width: int | None = None,
                 width_factor: float = 0.5,
                 mc_samples: int | None = None, momentum: float = 0.9, weight_decay: float = 5e-4,
                 executor: str = "local", num_workers: int = 2, formulation: str = "lookahead",
                 prior: dict[str, float] | None = None, hedge_rate: float = 1.0, fitnet_steps: float = 0.5,
                 lookahead_parts: int = 16, lookahead_pool_fraction: float = 0.5, head_steps: int = 50,
                 head_l2: float = 0.01, gate: str = "ranks", gate_steps: int = 30, gate_lr: float = 0.01,
                 gate_tau: float = 0.05, decorrelate: bool = True, fitnet_warm_start: bool = True,
                 selection: str = "portfolio") -> None:
        # -- validation (every error names strategy.params.<key> and the valid choices) --------
        if isinstance(candidates, str) or not isinstance(candidates, (list, tuple)) or not candidates:
            raise _err("candidates", f"expected a non-empty list of candidate names from {', '.join(CANDIDATE_NAMES)}; "
                       f"got {candidates!r}")
        cands = [str(c) for c in candidates]
        bad = [c for c in cands if c not in CANDIDATE_NAMES]
        if bad:
            raise _err("candidates", f"unknown candidate(s) {', '.join(bad)}; valid choices: {', '.join(CANDIDATE_NAMES)}")
        if len(set(cands)) != len(cands):
            raise _err("candidates", f"duplicate candidate names in {cands}")
        if pool_size is not None:
            if isinstance(pool_size, bool) or not isinstance(pool_size, int) or not 1 <= pool_size <= len(cands):
                raise _err("pool_size", f"must be an integer in 1..{len(cands)} (the paper uses 1, 3, 5, 7) or null; "
                           f"got {pool_size!r}")
            cands = cands[:pool_size]
        for key, val, lo, strict in (("lam", lam, 0.0, True), ("lam_reg", lam_reg, 0.0, False),
                                     ("tau", tau, 0.0, False), ("fitnet_lr", fitnet_lr, 0.0, True),
                                     ("searchnet_lr", searchnet_lr, 0.0, True), ("lpm_lr", lpm_lr, 0.0, True),
                                     ("lpm_weight", lpm_weight, 0.0, False), ("momentum", momentum, 0.0, False),
                                     ("weight_decay", weight_decay, 0.0, False)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) \
                    or (val <= lo if strict else val < lo):
                raise _err(key, f"must be a number {'>' if strict else '>='} {lo}; got {val!r}")
        for key, val, lo in (("gmm_components", gmm_components, 1), ("gmm_samples", gmm_samples, 10),
                             ("cycles", cycles, 1), ("warmup_epochs", warmup_epochs, 0),
                             ("search_epochs", search_epochs, 0), ("batch_size", batch_size, 2),
                             ("lpm_dim", lpm_dim, 1), ("num_workers", num_workers, 1)):
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise _err(key, f"must be an integer >= {lo}; got {val!r}")
        if mc_samples is not None and (isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 0):
            raise _err("mc_samples", f"must be an integer >= 0 or null; got {mc_samples!r}")
        if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
            raise _err("width", f"must be a positive integer or null; got {width!r}")
        if isinstance(width_factor, bool) or not isinstance(width_factor, (int, float)) or not 0 < width_factor <= 4:
            raise _err("width_factor", f"must be a number in (0, 4]; got {width_factor!r}")
        for key, val, choices in (("searchnet_optimizer", searchnet_optimizer, OPTIMIZERS),
                                  ("candidate_model", candidate_model, CANDIDATE_MODELS),
                                  ("candidate_score", candidate_score, CANDIDATE_SCORES),
                                  ("searchnet_input", searchnet_input, SEARCHNET_INPUTS),
                                  ("fitnet_reset", fitnet_reset, FITNET_RESETS),
                                  ("executor", executor, EXECUTORS)):
            if val not in choices:
                raise _err(key, f"unknown value {val!r}; valid choices: {', '.join(choices)}")
        if model is not None and model not in model_names():
            raise _err("model", f"unknown model {model!r}; valid choices: {', '.join(model_names())} or null "
                       "(the task model's family)")
        for key, val in (("lpm", lpm), ("lpm_only", lpm_only), ("warm_start", warm_start)):
            if not isinstance(val, bool):
                raise _err(key, f"expected true or false; got {val!r}")
        if lpm_only and not lpm:
            raise _err("lpm_only", "'LPM only' needs the loss prediction module: set strategy.params.lpm: true")
        for key, val, choices in (("formulation", formulation, FORMULATIONS), ("gate", gate, GATES),
                                  ("selection", selection, SELECTIONS)):
            if val not in choices:
                raise _err(key, f"unknown value {val!r}; valid choices: {', '.join(choices)}")
        for key, val, lo, hi in (("hedge_rate", hedge_rate, 0.0, 100.0), ("fitnet_steps", fitnet_steps, 0.01, 10.0),
                                 ("lookahead_pool_fraction", lookahead_pool_fraction, 0.05, 0.95),
                                 ("head_l2", head_l2, 0.0, 1e6), ("gate_lr", gate_lr, 1e-8, 10.0),
                                 ("gate_tau", gate_tau, 1e-6, 100.0)):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) \
                    or not lo <= val <= hi:
                raise _err(key, f"must be a number in [{lo:g}, {hi:g}]; got {val!r}")
        for key, val, lo in (("lookahead_parts", lookahead_parts, 1), ("head_steps", head_steps, 1),
                             ("gate_steps", gate_steps, 0)):
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise _err(key, f"must be an integer >= {lo}; got {val!r}")
        if formulation == "lookahead" and executor != "local":
            raise _err("executor", f"{executor!r} runs the paper formulation's search; the lookahead formulation "
                       "runs in the trial's process (set strategy.params.formulation: paper, or executor: local)")
        for key, val in (("decorrelate", decorrelate), ("fitnet_warm_start", fitnet_warm_start)):
            if not isinstance(val, bool):
                raise _err(key, f"expected true or false; got {val!r}")
        if prior is not None:
            if not isinstance(prior, dict) or not prior:
                raise _err("prior", f"expected a mapping of candidate name to weight, or null; got {prior!r}")
            unknown = [k for k in prior if k not in cands]
            bad_w = [k for k, v in prior.items() if isinstance(v, bool) or not isinstance(v, (int, float))
                     or not math.isfinite(v) or v < 0]
            if unknown:
                raise _err("prior", f"names {', '.join(map(str, unknown))} are not in the candidate pool "
                           f"({', '.join(cands)})")
            if bad_w or sum(prior.values()) <= 0:
                raise _err("prior", f"weights must be finite numbers >= 0, not all zero; got {prior!r}")

        self.candidate_names = cands
        self.candidates = [_CANDIDATE_CLASSES[c]() for c in cands]
        self.p = dict(lam=float(lam), lam_reg=float(lam_reg), tau=float(tau), gmm_components=gmm_components,
                      gmm_samples=gmm_samples, cycles=cycles, warmup_epochs=warmup_epochs,
                      search_epochs=search_epochs, batch_size=batch_size, fitnet_lr=float(fitnet_lr),
                      searchnet_lr=float(searchnet_lr), searchnet_optimizer=searchnet_optimizer,
                      lpm_lr=float(lpm_lr), lpm_weight=float(lpm_weight), lpm=lpm, lpm_only=lpm_only,
                      lpm_dim=lpm_dim, candidate_model=candidate_model, candidate_score=candidate_score,
                      searchnet_input=searchnet_input, warm_start=warm_start, fitnet_reset=fitnet_reset,
                      model=model, width=width, width_factor=float(width_factor), mc_samples=mc_samples,
                      momentum=float(momentum),
                      weight_decay=float(weight_decay), executor=executor, num_workers=num_workers)
        needs = set(type(self).needs)
        if candidate_model == "task" or formulation == "lookahead" or "typiclust" in cands:
            needs.add("labeled_cache")
        self.needs = frozenset(needs)
        self.formulation = formulation
        self.lookahead: LookaheadSearch | None = None
        if formulation == "lookahead":
            self.lookahead = LookaheadSearch(self.candidates, LookaheadParams(
                prior=None if prior is None else {str(k): float(v) for k, v in prior.items()},
                hedge_rate=float(hedge_rate), fitnet_steps=float(fitnet_steps), parts=lookahead_parts,
                pool_fraction=float(lookahead_pool_fraction), head_steps=head_steps, head_l2=float(head_l2),
                gate=gate, gate_steps=gate_steps, gate_lr=float(gate_lr), gate_tau=float(gate_tau),
                decorrelate=decorrelate, fitnet_warm_start=fitnet_warm_start, selection=selection))
        self.nets: SearchNets | None = None
        self.opts: SearchOptimizers | None = None
        self._arch: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None
        self.rounds_done = 0

    # -- nets --------------------------------------------------------------------------------
    def _arch_for(self, ctx: QueryContext) -> dict[str, Any]:
        task = ctx.model
        name = self.p["model"]
        if name is None:
            name = (getattr(task, "spec", None) or {}).get("name") if task is not None else "small_cnn"
            if name not in model_names():
                raise _err("model", f"cannot infer the backbone family of a {type(task).__name__} (it was not "
                           f"built by autoal.models.build_model); set it to one of {', '.join(model_names())}")
        width = self.p["width"]
        if width is None:
            same = task is not None and hasattr(task, "stage_channels") and self.p["model"] in (None, name)
            base = int(task.stage_channels[0]) if same else model_family(name).default_width
            width = max(4, int(round(base * self.p["width_factor"])))
        ds = ctx.dataset
        return {"model": name, "width": width, "in_channels": ds.in_channels, "image_size": ds.image_size,
                "num_classes": ds.num_classes, "K": len(self.candidates),
                "num_scores": len(self.candidates) if self.p["searchnet_input"] == "image+scores" else 0,
                "dropout": float(getattr(task, "dropout_p", 0.3)),
                "embedding_norm": bool(getattr(task, "embedding_norm", True)),
                "lpm": self.p["lpm"], "lpm_dim": self.p["lpm_dim"]}

    def _new_fitnet(self, arch: dict[str, Any], device: torch.device) -> None:
        assert self.nets is not None and self.opts is not None
        self.nets.fitnet = prepare_model(build_fitnet(arch["model"], arch["in_channels"], arch["num_classes"],
                                                      arch["image_size"], width=arch["width"],
                                                      dropout=arch["dropout"],
                                                      embedding_norm=arch["embedding_norm"]), device)
        self.opts.fitnet = torch.optim.Adam(self.nets.fitnet.parameters(), lr=self.p["fitnet_lr"],
                                            weight_decay=self.p["weight_decay"])

    def _build(self, arch: dict[str, Any], device: torch.device) -> None:
        sn = build_searchnet(arch["model"], arch["in_channels"], arch["K"], arch["image_size"], width=arch["width"],
                             num_scores=arch["num_scores"])
        fn = build_fitnet(arch["model"], arch["in_channels"], arch["num_classes"], arch["image_size"],
                          width=arch["width"], dropout=arch["dropout"], embedding_norm=arch["embedding_norm"])
        sn, fn = prepare_model(sn, device), prepare_model(fn, device)  # channels-last on CUDA
        lpm = LossPredictionModule(sn.stage_channels, arch["lpm_dim"]).to(device) if arch["lpm"] else None
        self.nets = SearchNets(sn, fn, lpm)
        self.opts = make_optimizers(self.nets, fitnet_lr=self.p["fitnet_lr"], searchnet_lr=self.p["searchnet_lr"],
                                    lpm_lr=self.p["lpm_lr"], searchnet_optimizer=self.p["searchnet_optimizer"],
                                    momentum=self.p["momentum"], weight_decay=self.p["weight_decay"])
        self._arch = arch

    def _ensure_nets(self, ctx: QueryContext) -> bool:
        """Build the nets when needed; True when they were (re)built from scratch this round."""
        arch = self._arch_for(ctx)
        if self.nets is None or not self.p["warm_start"] or arch != self._arch:
            self._build(arch, ctx.device)
            fresh = True
            if self._pending is not None and self.p["warm_start"]:
                fresh = not self._apply_state(self._pending)
            self._pending = None
            return fresh
        return False

    # -- the round ---------------------------------------------------------------------------
    def query(self, ctx: QueryContext) -> np.ndarray:
        if ctx.dataset is None:
            raise ValueError("strategy 'autoal' needs the data set in its context (needs = dataset)")
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(ctx.seed) % (2**63 - 1))
            return self._query(ctx)

    def _query(self, ctx: QueryContext) -> np.ndarray:
        if self.lookahead is not None:
            picks = self.lookahead.query(ctx, seed=int(ctx.seed))
            self.rounds_done += 1
            return picks
        p = self.p
        device = ctx.device
        ds = ctx.dataset
        t_start = time.perf_counter()
        fresh = self._ensure_nets(ctx)
        assert self.nets is not None and self.opts is not None
        labeled = np.asarray(ctx.labeled, dtype=np.int64)
        unlabeled = np.asarray(ctx.unlabeled, dtype=np.int64)
        b = int(ctx.n)
        t = query_fraction(b, len(labeled) + len(unlabeled))
        mc = p["mc_samples"]
        if mc is None:
            mc = int(ctx.cache.mc.samples) if ctx.cache.mc is not None else 500
        cfg = SearchConfig(t=t, lam=p["lam"], lam_reg=p["lam_reg"], tau=p["tau"], gmm_components=p["gmm_components"],
                           gmm_samples=p["gmm_samples"], warmup_epochs=p["warmup_epochs"],
                           search_epochs=p["search_epochs"], batch_size=p["batch_size"], lpm=p["lpm"],
                           lpm_only=p["lpm_only"], lpm_weight=p["lpm_weight"], candidate_score=p["candidate_score"],
                           searchnet_input=p["searchnet_input"], mc_samples=mc)
        x_l = ds.eval_transform(prepare_batch(ds.x_train[torch.from_numpy(labeled)], device))
        y_l = ds.y_train[torch.from_numpy(labeled)].to(device)
        l_cache = self._labeled_cache(ctx, labeled) if p["candidate_model"] == "task" else None
        augment = _augment_fn(ds)
        rng = np.random.default_rng(int(ctx.seed))
        stats = []
        t_cand = 0.0
        t_search = 0.0
        plans: list[Any] | None = [] if p["executor"] == "ray_train" else None
        for c in range(p["cycles"]):
            cycle_seed = int(rng.integers(0, 2**31 - 1))
            if plans is not None:  # ray_train: plan the cycles here, run them all in one TorchTrainer below

                reset = not fresh and (p["fitnet_reset"] == "cycle" or (p["fitnet_reset"] == "round" and c == 0))
                a_pos, v_pos = split_labeled(len(labeled), rng)
                plans.append(CyclePlan(a_pos, v_pos, cycle_seed, reset_fitnet=reset, torch_seed=cycle_seed + 1,
                                       v_cache=l_cache.subset(v_pos) if l_cache is not None else None))
                fresh = False
                continue
            if not fresh and (p["fitnet_reset"] == "cycle" or (p["fitnet_reset"] == "round" and c == 0)):
                torch.manual_seed(cycle_seed)
                self._new_fitnet(self._arch, device)  # type: ignore[arg-type]
            torch.manual_seed(cycle_seed + 1)  # same draws whether the nets were built, reset or resumed
            a_pos, v_pos = split_labeled(len(labeled), rng)
            a_t = torch.as_tensor(a_pos, device=device)
            v_t = torch.as_tensor(v_pos, device=device)
            v_cache = l_cache.subset(v_pos) if l_cache is not None else None
            st = search_cycle(self.nets, self.opts, (x_l[a_t], y_l[a_t]), (x_l[v_t], y_l[v_t]), cfg, self.candidates,
                              seed=cycle_seed, v_cache=v_cache, augment=augment)
            stats.append(st)
            fresh = False
            t_cand += st.seconds_candidates
            t_search += st.seconds_updates
        if plans is not None:
            t_ray = time.perf_counter()
            stats = run_search_on_ray_train(self.nets, self.opts, x_l, y_l, plans, cfg, self.candidates,
                                            augment=augment, num_workers=p["num_workers"])
            t_cand += sum(st.seconds_candidates for st in stats)
            t_search += time.perf_counter() - t_ray - sum(st.seconds_candidates for st in stats)

        # -- selection on U (§3.7) --------------------------------------------------------
        t0 = time.perf_counter()
        x_u = ds.eval_transform(prepare_batch(ds.x_train[torch.from_numpy(unlabeled)], device))
        ps = pool_scores(self.nets.searchnet, self.candidates, ctx.cache, x_u, b, lam=p["lam"],
                         candidate_score=p["candidate_score"], searchnet_input=p["searchnet_input"],
                         gmm_components=p["gmm_components"], gmm_samples=p["gmm_samples"], seed=int(ctx.seed) + 1)
        sbar, w, S_u, theta = ps["sbar"], ps["w"], ps["S"], ps["theta"]
        pos = top_n(sbar, b, ctx.rng)
        t_sel = time.perf_counter() - t0
        self.rounds_done += 1
        self._trace(ctx, stats, S_u, w, theta, pos, t_cand, t_search, t_sel,
                    time.perf_counter() - t_start)
        return unlabeled[pos]

    def _labeled_cache(self, ctx: QueryContext, labeled: np.ndarray) -> PoolCache:
        if ctx.labeled_cache is not None and np.array_equal(ctx.labeled_cache.indices, labeled):
            return ctx.labeled_cache
        if ctx.learner is None or ctx.model is None:
            raise ValueError("candidate_model 'task' needs the task model's cache of L (labeled_cache or the learner)")
        return ctx.learner.score(ctx.model, labeled, int(ctx.seed) + 3)

    def _trace(self, ctx: QueryContext, stats, S_u: torch.Tensor, w: torch.Tensor, theta: float, pos: np.ndarray,
               t_cand: float, t_search: float, t_sel: float, t_total: float) -> None:
        lam = self.p["lam"]
        w_mean = w.mean(0)
        contrib = (lam * w * (S_u - theta)).mean(0)
        sel = torch.as_tensor(pos, dtype=torch.long, device=w.device)
        ev = (w[sel] * S_u[sel]).sum(0)
        share = ev / ev.sum() if float(ev.sum()) > 0 else torch.full_like(ev, float("nan"))
        trace: dict[str, Any] = {"candidates": list(self.candidate_names), "w_mean": {}, "contribution": {},
                                 "share": {}}
        for k, name in enumerate(self.candidate_names):
            ctx.log(f"w_mean/{name}", float(w_mean[k]))
            ctx.log(f"contribution/{name}", float(contrib[k]))
            ctx.log(f"share/{name}", float(share[k]))
            trace["w_mean"][name] = float(w_mean[k])
            trace["contribution"][name] = float(contrib[k])
            trace["share"][name] = None if math.isnan(float(share[k])) else float(share[k])
        last = stats[-1]
        search = {"alpha": last.alpha, "alpha_target": last.alpha_target, "loss_fitnet": last.loss_fitnet,
                  "loss_searchnet": last.loss_searchnet, "loss_lpm": last.loss_lpm, "loss_warmup": last.loss_warmup,
                  "head_grad_norm": last.head_grad_norm, "theta": last.extra.get("theta", float("nan")),
                  "theta_pool": float(theta)}
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
        if self.lookahead is not None:
            return {"version": _STATE_VERSION, "formulation": "lookahead", "rounds_done": self.rounds_done,
                    "lookahead": self.lookahead.state_dict()}
        if self.nets is None or self.opts is None:
            return {}
        return {"version": _STATE_VERSION, "arch": dict(self._arch or {}), "rounds_done": self.rounds_done,
                "searchnet": self.nets.searchnet.state_dict(), "fitnet": self.nets.fitnet.state_dict(),
                "lpm": None if self.nets.lpm is None else self.nets.lpm.state_dict(),
                "opt_searchnet": self.opts.searchnet.state_dict(), "opt_fitnet": self.opts.fitnet.state_dict(),
                "opt_lpm": None if self.opts.lpm is None else self.opts.lpm.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the nets (applied when they are built in the next round, where the data set
        and device are known)."""
        if not state:
            return
        if state.get("version") != _STATE_VERSION:
            raise StateError(f"autoal strategy state has version {state.get('version')!r}; expected {_STATE_VERSION}")
        self.rounds_done = int(state.get("rounds_done", 0))
        if state.get("formulation", "paper") != self.formulation:
            return  # a state of the other formulation (config changed): start fresh
        if self.lookahead is not None:
            self.lookahead.load_state_dict(state["lookahead"])
            return
        self._pending = state
        self.nets = None

    def _apply_state(self, state: dict[str, Any]) -> bool:
        assert self.nets is not None and self.opts is not None
        if state.get("arch") != self._arch:
            return False  # a different architecture (config changed): start fresh
        self.nets.searchnet.load_state_dict(state["searchnet"])
        self.nets.fitnet.load_state_dict(state["fitnet"])
        self.opts.searchnet.load_state_dict(state["opt_searchnet"])
        self.opts.fitnet.load_state_dict(state["opt_fitnet"])
        if self.nets.lpm is not None and state.get("lpm") is not None:
            self.nets.lpm.load_state_dict(state["lpm"])
            if self.opts.lpm is not None and state.get("opt_lpm") is not None:
                self.opts.lpm.load_state_dict(state["opt_lpm"])
        return True

    def select_positions(self, cache: PoolCache, n: int, rng: np.random.Generator, ctx: QueryContext | None = None
                         ) -> np.ndarray:
        """Row positions in ``cache`` (= U) of the picks; AutoAL needs the full context."""
        if ctx is None:
            raise ValueError("strategy 'autoal' needs the full query context (model, data set, labeled set)")
        picks = self.query(ctx)
        where = {int(i): r for r, i in enumerate(np.asarray(cache.indices))}
        return np.asarray([where[int(i)] for i in picks], dtype=np.int64)


def _augment_fn(ds):
    """FitNet's training augmentation on normalized batches (none for digits-like data)."""
    if getattr(ds, "augmentation", "none") == "none":
        return None

    flip = ds.augmentation == "crop_flip"
    return lambda x, gen: random_crop_flip(x, flip=flip, generator=gen)
