"""autoal's own formulation of AutoAL (``strategy.params.formulation: lookahead``, the default;
DESIGN.md §3.9; its settings: :class:`~autoal.strategies.autoal.params.LookaheadParams`). One round:

1. **Candidates on U.** Each candidate's rank scores r_k(x) over U from the task model's
   shared cache (KMeans and TypiClust see the labeled set's embeddings too).
2. **A competent FitNet.** L is split into halves A and V; FitNet — the task model's
   architecture, trained on A with the task model's own recipe (``fitnet_steps`` scales its
   epochs and step floor) — has never seen V, and is used in eval mode only. With
   ``fitnet_warm_start`` (default) every labeled sample keeps its side for the whole run (a
   seeded coin per pool index), so FitNet can continue from the previous round's weights on the
   grown A at half the task model's steps and still never see V: a fresh FitNet at half the
   steps reaches only 69-79 % of the task recipe's accuracy on digits with 20-60 labels, and a
   fresh one at full steps would double the round's training.
3. **Look-ahead on V** (:mod:`autoal.lookahead.valuation`): the candidates rank V with FitNet's
   cache; over ``parts`` random partitions of V into a simulated pool P and a held-out set H,
   each candidate (and the current mixture) "labels" its top b' of P, the head is refitted on
   A ∪ picks, and the held-out cross-entropy gain is that arm's value.
4. **Safety net across rounds.** The global log-weights G take a Hedge step on the
   candidates' standardized look-ahead values (``hedge_rate`` × the distinctness of the arms'
   simulated picks), starting from the prior; the mixture therefore moves towards the
   candidates whose picks helped, by a bounded amount per round, and never leaves the set of
   convex mixtures of the candidates.
5. **Per-sample part** (``gate: ranks``; off with ``gate: none``): a small network over
   transferable features (ranks, entropy, margin) trained on the same partitions
   (:mod:`autoal.lookahead.gate`).
6. **Selection.** S̄(x) = Σ_k ω_k(x) r_k(x) over U with ω the decorrelated weights
   (:mod:`autoal.lookahead.mixture`); the top b.

Per-round trace (MLflow step = round): ``weight/<cand>`` (the global ω after decorrelation),
``value/<cand>`` (mean look-ahead gain, NaN when the round was too small to simulate),
``value/mixture``, ``lookahead/picks`` (b'), ``fitnet/accuracy_v`` (FitNet's accuracy on V),
``seconds_fitnet``, ``seconds_lookahead`` (their sum: ``seconds_search``), ``seconds_candidates``,
``seconds_selection``.

Progress (``ctx.progress``): ``autoal/fitnet`` (one unit per FitNet epoch) and
``autoal/lookahead`` (:data:`LOOKAHEAD_STEPS` units: FitNet, the candidates on V, the look-ahead);
neither when L is too small to simulate.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import numpy as np
import torch

from autoal.cache import PoolCache, compute_cache
from autoal.device import prepare_model
from autoal.errors import StateError
from autoal.lookahead.gate import RankGate, first_order_values, gate_loss, sample_features
from autoal.lookahead.mixture import (
    decorrelated_weights,
    hedge_update,
    mixture_scores,
    portfolio_picks,
    prior_log_weights,
    rank_correlation,
)
from autoal.lookahead.valuation import lookahead, partition_masks
from autoal.models import new_like, same_build
from autoal.progress import epoch_progress
from autoal.selection import top_n
from autoal.strategies.autoal.formulation import (
    STATE_VERSION,
    Formulation,
    build_candidates,
    candidate_needs,
    seeded_query,
)
from autoal.strategies.autoal.params import AutoALParams
from autoal.strategies.base import QueryContext, Strategy, restore, saved_mapping
from autoal.training import TrainConfig, train_model

#: the round's steps as ``autoal/lookahead`` reports them: FitNet trained, the candidates on V,
#: the look-ahead values (and the gate)
LOOKAHEAD_STEPS = 3
#: what the formulation reads besides its candidates' needs
NEEDS = frozenset({"embeddings", "mc", "model", "dataset", "labeled_cache"})


def candidate_ranks(
    candidates: Sequence[Strategy], cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None
) -> torch.Tensor:
    """(K, |cache|) rank scores in [0, 1] of every candidate (each evaluated once)."""
    rows = [c.rank_score(cache, n, rng, labeled) for c in candidates]
    return torch.stack([r.float().to(cache.probs.device) for r in rows])


class LookaheadFormulation(Formulation):
    """The state and round logic of the look-ahead formulation."""

    name = "lookahead"

    def __init__(self, params: AutoALParams) -> None:
        self.candidates = build_candidates(params.pool)
        self.needs = NEEDS | candidate_needs(self.candidates)
        self.p = params.lookahead
        self.log_weights = prior_log_weights(self.names, self.p.prior)
        self.gate: RankGate | None = None
        self.gate_opt: torch.optim.Optimizer | None = None
        self._pending_gate: dict[str, Any] | None = None
        self.fitnet: torch.nn.Module | None = None
        self._pending_fitnet: dict[str, torch.Tensor] | None = None
        self.split_seed: int | None = None
        self.rounds_done = 0

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        inner = {
            "log_weights": self.log_weights.clone(),
            "names": list(self.names),
            "gate": None if self.gate is None else self.gate.state_dict(),
            "gate_opt": None if self.gate_opt is None else self.gate_opt.state_dict(),
            "fitnet": None
            if self.fitnet is None
            else {k: v.detach().cpu() for k, v in self.fitnet.state_dict().items()},
            "split_seed": self.split_seed,
        }
        return {"version": STATE_VERSION, "formulation": self.name, "rounds_done": self.rounds_done, "lookahead": inner}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        inner = saved_mapping(state, "lookahead", optional=False)
        assert inner is not None
        if inner.get("names") != self.names:
            return  # another candidate pool: start from the prior
        log_weights = torch.as_tensor(inner["log_weights"]).float().clone()
        if log_weights.shape != (len(self.names),) or not torch.isfinite(log_weights).all():
            raise StateError(
                f"strategy state: 'log_weights' must hold {len(self.names)} finite numbers (one per "
                f"candidate); got shape {tuple(log_weights.shape)}"
            )
        split_seed = inner.get("split_seed")
        if split_seed is not None and (isinstance(split_seed, bool) or not isinstance(split_seed, int)):
            raise StateError(f"strategy state: 'split_seed' must be an integer or null; got {split_seed!r:.40}")
        self._pending_gate = {"gate": saved_mapping(inner, "gate"), "gate_opt": saved_mapping(inner, "gate_opt")}
        self._pending_fitnet = saved_mapping(inner, "fitnet")
        self.log_weights = log_weights
        self.split_seed = split_seed

    def _ensure_gate(self, device: torch.device) -> None:
        if self.p.gate == "none" or self.p.selection == "portfolio" or self.gate is not None:
            return
        self.gate = RankGate(len(self.names) + 2, len(self.names)).to(device)
        self.gate_opt = torch.optim.Adam(self.gate.parameters(), lr=self.p.gate_lr, weight_decay=1e-3)
        pend, self._pending_gate = self._pending_gate, None
        if pend and pend.get("gate") is not None:
            restore(self.gate, pend["gate"], "AutoAL gate")
            if pend.get("gate_opt") is not None:
                restore(self.gate_opt, pend["gate_opt"], "AutoAL gate optimizer")

    # -- the round ---------------------------------------------------------------------------
    def query(self, ctx: QueryContext) -> np.ndarray:
        if ctx.dataset is None:
            raise ValueError("strategy 'autoal' needs the data set in its context (needs = dataset)")
        picks = seeded_query(ctx, lambda: self._query(ctx, int(ctx.seed)))
        self.rounds_done += 1
        return picks

    def _query(self, ctx: QueryContext, seed: int) -> np.ndarray:
        t0 = time.perf_counter()
        rng = np.random.default_rng(int(seed))
        device = ctx.device
        self._ensure_gate(device)
        b = int(ctx.n)
        ranks_u = candidate_ranks(self.candidates, ctx.cache, b, rng, ctx.labeled_cache)
        t_cand = time.perf_counter() - t0
        values = self._lookahead_round(ctx, ranks_u, rng, seed)
        t1 = time.perf_counter()
        omega = self._omega(ranks_u)
        if self.p.selection == "portfolio":
            pos = portfolio_picks(ranks_u, omega, b, ctx.rng)
        else:
            weights = omega
            if self.gate is not None:
                with torch.no_grad():
                    feats = sample_features(ranks_u, ctx.cache.probs)
                    weights = self._per_sample(omega, feats)
            pos = top_n(mixture_scores(ranks_u, weights), b, ctx.rng)
        t_sel = time.perf_counter() - t1
        for k, name in enumerate(self.names):
            ctx.log(f"weight/{name}", float(omega[k]))
        ctx.log("seconds_candidates", t_cand + values.pop("_seconds_candidates", 0.0))
        ctx.log("seconds_selection", t_sel)
        ctx.artifacts["autoal_trace"] = {
            "formulation": "lookahead",
            "candidates": list(self.names),
            "weight": {n: float(omega[k]) for k, n in enumerate(self.names)},
            "log_weight": {n: float(self.log_weights[k]) for k, n in enumerate(self.names)},
            "value": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()},
            "seconds": {"candidates": t_cand, "selection": t_sel, "total": time.perf_counter() - t0},
        }
        for key, val in values.items():
            ctx.log(key, val)
        return ctx.unlabeled[pos]

    def _omega(self, ranks: torch.Tensor) -> torch.Tensor:
        pi = torch.softmax(self.log_weights.to(ranks.device), 0)
        return decorrelated_weights(pi, rank_correlation(ranks)) if self.p.decorrelate else pi

    def _per_sample(self, omega: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        assert self.gate is not None
        return torch.softmax(torch.log(omega.clamp_min(1e-12)).unsqueeze(0) + self.gate(feats), dim=1)

    def _lookahead_round(
        self, ctx: QueryContext, ranks_u: torch.Tensor, rng: np.random.Generator, seed: int
    ) -> dict[str, float]:
        """Steps 2-5 of the module docstring; returns the values to log ({} when L is too small)."""
        nan = float("nan")
        out = {f"value/{n}": nan for n in self.names}
        out["value/mixture"] = nan
        labeled = np.asarray(ctx.labeled, dtype=np.int64)
        b = int(ctx.n)
        if ctx.dataset is None or ctx.model is None or len(labeled) < 8:
            return out
        ds = ctx.dataset
        t0 = time.perf_counter()
        a_idx, v_idx = self._split(labeled, len(ctx.labeled) + len(ctx.unlabeled), rng, seed)
        nv = len(v_idx)
        pool_size = max(1, round(self.p.lookahead_pool_fraction * nv))
        picks = min(max(1, round(b / 2)), max(1, pool_size // 2))
        if len(a_idx) < 2 or pool_size < 2 or nv - pool_size < 2:
            return out
        ctx.progress("autoal/lookahead", 0, LOOKAHEAD_STEPS)
        fitnet = self._train_fitnet(ctx, a_idx, seed)
        ctx.progress("autoal/lookahead", 1, LOOKAHEAD_STEPS, step="fitnet")
        t1 = time.perf_counter()
        a_cache = compute_cache(fitnet, ds, a_idx, mc_samples=0, device=ctx.device)
        mc = ctx.cache.mc.samples if ctx.cache.mc is not None else 0
        v_cache = compute_cache(fitnet, ds, v_idx, mc_samples=mc, seed=seed + 11, device=ctx.device)
        ranks_v = candidate_ranks(self.candidates, v_cache, picks, rng, a_cache)
        ctx.progress("autoal/lookahead", 2, LOOKAHEAD_STEPS, step="candidates")
        t2 = time.perf_counter()
        y_a, y_v = (
            ds.y_train[torch.from_numpy(a_idx)].to(ctx.device),
            ds.y_train[torch.from_numpy(v_idx)].to(ctx.device),
        )
        arms = torch.cat([ranks_v, mixture_scores(ranks_v, self._omega(ranks_v)).unsqueeze(0)])
        res = lookahead(
            a_cache.embeddings,
            y_a,
            v_cache.embeddings,
            y_v,
            fitnet.fc.weight.detach(),
            fitnet.fc.bias.detach(),
            arms,
            picks,
            parts=self.p.lookahead_parts,
            pool_fraction=self.p.lookahead_pool_fraction,
            steps=self.p.head_steps,
            l2=self.p.head_l2,
            rng=rng,
        )
        gains = res.gain_ce.mean(1)
        # evidence weighs by how distinct the candidates' simulated picks were (a simulated pool
        # barely larger than the picks lets every candidate pick the same samples), standardized
        # with the decorrelated weights (a family of agreeing candidates counts once)
        omega_v = self._omega(ranks_v).cpu()
        self.log_weights = hedge_update(
            self.log_weights,
            gains[:-1].cpu(),
            self.p.hedge_rate * res.distinctness,
            weights=omega_v if self.p.decorrelate else None,
        )
        if self.gate is not None:
            self._train_gate(ranks_v, v_cache, y_v, picks, rng)
        ctx.progress("autoal/lookahead", 3, LOOKAHEAD_STEPS, step="lookahead")
        for k, n in enumerate(self.names):
            out[f"value/{n}"] = float(gains[k])
        out["value/mixture"] = float(gains[-1])
        out["lookahead/picks"] = float(res.picks)
        out["lookahead/distinctness"] = res.distinctness
        out["fitnet/accuracy_v"] = float((v_cache.probs.argmax(1) == y_v).float().mean())
        out["seconds_fitnet"] = t1 - t0
        out["seconds_lookahead"] = time.perf_counter() - t2
        out["_seconds_candidates"] = t2 - t1
        out["seconds_search"] = out["seconds_fitnet"] + out["seconds_lookahead"]
        return out

    def _split(
        self, labeled: np.ndarray, n_pool: int, rng: np.random.Generator, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """A and V: with ``fitnet_warm_start`` a fixed side per pool index for the whole run
        (a seeded permutation of the pool; even rank = A), else a fresh random half split."""
        if not self.p.fitnet_warm_start:
            perm = rng.permutation(len(labeled))
            half = len(labeled) // 2
            return labeled[np.sort(perm[:half])], labeled[np.sort(perm[half:])]
        if self.split_seed is None:
            self.split_seed = int(seed)
        side = np.random.default_rng(self.split_seed).permutation(max(n_pool, int(labeled.max()) + 1)) % 2
        in_a = side[labeled] == 0
        return labeled[in_a], labeled[~in_a]

    def _train_fitnet(self, ctx: QueryContext, a_idx: np.ndarray, seed: int) -> torch.nn.Module:
        """FitNet: the task model's architecture, trained on A with the task model's recipe
        scaled by ``fitnet_steps`` (epochs and step floor); fresh each round, or continued from
        the previous round's weights (``fitnet_warm_start``)."""
        net = prepare_model(new_like(ctx.model, int(seed) + 5), ctx.device)
        if self.p.fitnet_warm_start:
            if self._pending_fitnet is not None:
                self.fitnet = net
                pending, self._pending_fitnet = self._pending_fitnet, None
                restore(net, pending, "FitNet")
            elif same_build(self.fitnet, ctx.model):
                net = self.fitnet
            self.fitnet = net
        base = ctx.learner.train_cfg if ctx.learner is not None else TrainConfig()
        f = self.p.fitnet_steps
        cfg = dataclasses.replace(
            base, epochs=max(1, math.ceil(base.epochs * f)), min_steps=math.ceil(base.min_steps * f)
        )
        train_model(
            net,
            ctx.dataset,
            a_idx,
            cfg,
            device=ctx.device,
            seed=int(seed) + 6,
            progress=epoch_progress(ctx.progress, "autoal/fitnet", cfg.epochs_for(len(a_idx))),
        )
        return net.eval()

    def _train_gate(
        self, ranks_v: torch.Tensor, v_cache: PoolCache, y_v: torch.Tensor, picks: int, rng: np.random.Generator
    ) -> None:
        assert self.gate is not None and self.gate_opt is not None
        nv = ranks_v.shape[1]
        pool = partition_masks(nv, self.p.lookahead_parts, self.p.lookahead_pool_fraction, rng).to(ranks_v.device)
        if int(pool.sum(1).min()) <= picks:
            return
        values = first_order_values(v_cache.embeddings, v_cache.probs, y_v, ~pool)
        feats = sample_features(ranks_v, v_cache.probs)
        omega = self._omega(ranks_v)
        log_w = torch.log(omega.clamp_min(1e-12))
        self.gate.train()
        for _ in range(self.p.gate_steps):
            loss = gate_loss(self.gate, log_w, feats, ranks_v, values, pool, picks, self.p.gate_tau)
            self.gate_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.gate_opt.step()
        self.gate.eval()
