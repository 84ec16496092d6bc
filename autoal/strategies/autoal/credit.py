"""AutoAL credited by the labels that arrive (DESIGN.md §3.10): the round's weights over a coverage
candidate and an uncertainty candidate move with what the last round's labels revealed.

Why: the leading strategy changes within a run — coverage (TypiClust, KMeans) leads while the
model is poor, Margin once it is competent (SelectAL, Hacohen & Weinshall 2023; TCM, Doucet et
al. 2024; DCoM, Mishal & Weinshall 2024) — while choosing one strategy per run gains at most
+0.001 to +0.005 AUBC even with an oracle (bench/README.md). So the weights must move inside a
run, and by evidence, not by a round number.

Per round:

1. *Credit*: the previous round's picks are labeled now. For each candidate, the accuracy of the
   model's pre-label predictions on its picks (competence), TAILOR's class rarity and the class
   diversity of its picks (:mod:`autoal.strategies.autoal.label_credit`); logged as
   ``competence/<candidate>``, ``rarity/<candidate>``, ``diversity/<candidate>``.
2. *Weights*: a decayed Beta posterior of the competence on coverage picks gives the uncertainty
   share w = probe + (1 − 2·probe)·clip((ĉ − low)/(high − low), 0, 1); each side keeps at least
   the probe share so it keeps being measured. Logged as ``weight/<candidate>``.
3. *Long-tail guard*: when the first labeled set (a random sample of the pool) rejects a uniform
   class prior (χ² p < ``imbalance_alpha``), density coverage (TypiClust) would sample the head
   classes. With ``tail_coverage=kcenter`` (the default) coverage becomes k-center greedy over
   uncovered groups of ``kcenter_group`` points (Coreset, Sener & Savarese, ICLR 2018, made
   robust to outliers: :func:`~autoal.strategies.baselines.coreset.group_k_center_greedy`) on
   the task model's embedding — the uncovered regions far from the labeled set, which is where
   unlabeled tail classes lie — and the competence rule stays. With ``probe`` rare classes are
   left to uncertainty: the share starts, and stays, at 1 − ``tail_probe``. With
   ``kcenter_rarity`` the k-center coverage keeps the batch while its picks' TAILOR class rarity
   (decayed) is at least the uncertainty picks'; with ``by_class`` coverage is split over
   predicted classes. The uncertainty candidate
   scores the model's probabilities shifted from the labeled set's class prior to a uniform one
   (:func:`~autoal.strategies.autoal.label_credit.prior_shifted`, exponent ``tail_prior_shift``;
   0 = the model's own; candidates that read the MC-dropout moments see them unshifted).
   *Late*: with ``late_tail_z`` set, a pool the first labeled set did not flag is flagged from
   the round the uncertainty picks' class rarity over the run so far exceeds the coverage picks'
   by more than ``late_tail_z`` standard errors (:func:`~autoal.strategies.autoal.label_credit.late_tail_signal`:
   on a long tail density coverage keeps finding head classes); from then on
   ``late_tail_coverage`` plays the part of ``tail_coverage``. Logged as ``credit/late_tail``.
   *Second look*: with ``second_look_guard_ratio`` set, a first set that did not fire the guard is
   read again with the first batch's labels (step 5's second look): the guard fires from the
   second query round if that set shows a class imbalance beyond an exponential tail of that ratio
   (:func:`~autoal.strategies.autoal.label_credit.imbalance_beyond_pvalue`, at
   ``second_look_alpha``), with ``tail_coverage``. Logged as ``credit/second_look_guard``.
4. *Picks*: ⌊(1 − w)·b⌉ by the coverage candidate, the rest by the
   uncertainty candidate among the samples coverage left. TypiClust as the coverage candidate
   takes its least-covered clusters farthest from the labeled set first (``order: far``, the
   rule's default: ``params.CREDIT_COVERAGE_DEFAULTS``), not largest first, so that on a long
   tail the guard missed its picks do not stay in the head classes.
5. *The coverage space* (``coverage_space``): ``pixels``, a label-free embedding of the pool (pixel
   PCA, :mod:`autoal.strategies.autoal.pool_embedding`); ``model``, the task model's embedding;
   ``joint``, both side by side, each scaled to a unit spread; ``joint_when_balanced`` (the
   default), pixels for the first batch, then — once its labels arrive — a *second look*: a χ²
   test on the labeled set (the first set and the first batch) at ``second_look_alpha``; joint
   from then on if it looks balanced, pixels if not. On balanced pools the model's embedding
   adds what 20-80 labels already teach about the classes; on a long tail it places the rare
   classes among the head classes', and pixel PCA, which no label shaped, keeps finding them.
   The first batch of coverage is class-balanced on a balanced pool and follows the head on a
   tail, so the set after it shows a tail the first labels missed more often.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from autoal.cache import PoolCache
from autoal.errors import ConfigError, StateError
from autoal.strategies.autoal.formulation import Formulation, build_candidate
from autoal.strategies.autoal.label_credit import (
    CompetenceEstimate,
    DecayedMean,
    class_quotas,
    imbalance_beyond_pvalue,
    imbalance_pvalue,
    late_tail_signal,
    pick_credit,
    prior_shifted,
    rarity_share,
    split_batch,
    uncertainty_share,
)
from autoal.strategies.autoal.params import CREDIT_COVERAGE_DEFAULTS, KCENTER, CreditParams
from autoal.strategies.autoal.pool_embedding import joint_embedding, pixel_pca
from autoal.strategies.base import QueryContext


class CreditFormulation(Formulation):
    """AutoAL credited by the labels that arrive (module docstring; DESIGN.md §3.10): its two
    candidates are ``coverage`` and ``uncertainty``."""

    name = "credit"

    def __init__(self, params: CreditParams) -> None:
        coverage_params = {**CREDIT_COVERAGE_DEFAULTS.get(params.coverage, {}), **params.coverage_params}
        self.coverage = build_candidate("coverage", params.coverage, "coverage_params", **coverage_params)
        self.uncertainty = build_candidate(
            "uncertainty", params.uncertainty, "uncertainty_params", **params.uncertainty_params
        )
        self.candidates = [self.coverage, self.uncertainty]
        self.coverage_space, self.pca_dim = params.coverage_space, params.pca_dim
        # coverage_space=joint_when_balanced: the second look, decided once the first batch's labels arrive
        self.second_look_alpha = float(params.second_look_alpha)
        self.second_look_p = math.nan
        self.balanced: bool | None = None
        # second_look_guard_ratio: the second look also reads the long-tail guard
        self.second_look_guard_ratio = params.second_look_guard_ratio
        self.second_look_guard_p = math.nan
        self.second_looked = False  # the first batch's labels have arrived and been looked at
        self.guard_round: int | None = None  # the round the second look fired the guard, if it did
        self.low, self.high = float(params.low), float(params.high)
        self.probe = float(params.probe)
        self.alpha = float(params.imbalance_alpha)
        self.tail_probe, self.tail_prior_shift = float(params.tail_probe), float(params.tail_prior_shift)
        self.tail_coverage = params.tail_coverage
        self.late_tail_z = None if params.late_tail_z is None else float(params.late_tail_z)
        self.late_tail_coverage = params.late_tail_coverage
        # tail_coverage=kcenter: once the guard fires, coverage is k-center greedy on the task model's
        # embedding, over uncovered groups of kcenter_group points
        modes = {self.tail_coverage} | ({self.late_tail_coverage} if self.late_tail_z is not None else set())
        self.tail_kcenter = (
            build_candidate("tail_coverage", KCENTER, group=int(params.kcenter_group))
            if any(m.startswith("kcenter") for m in modes)
            else None
        )
        self.competence = CompetenceEstimate(decay=float(params.decay), prior=float(params.competence_prior))
        # TAILOR's class rarity of each side's picks, decayed like the competence (tail_coverage=kcenter_rarity)
        self.rarity = {
            "coverage": DecayedMean(decay=float(params.decay)),
            "uncertainty": DecayedMean(decay=float(params.decay)),
        }
        # the same over the whole run (late_tail_z): whether the pool is long-tailed does not drift
        self.rarity_run = {"coverage": DecayedMean(decay=1.0), "uncertainty": DecayedMean(decay=1.0)}
        self.needs = (
            frozenset({"embeddings", "dataset"})
            | self.uncertainty.needs
            | (self.coverage.needs if self.coverage_space == "model" else frozenset())
            | (frozenset({"labeled_cache"}) if self.coverage_space.startswith("joint") else frozenset())
            | (self.tail_kcenter.needs if self.tail_kcenter is not None else frozenset())
        )
        self.long_tailed: bool | None = None  # decided on the first labeled set, or late (late_tail_z)
        self.late_round: int | None = None  # the round the guard fired late, if it did
        self.imbalance_p = math.nan
        self.pending: dict[str, list[int]] = {"picks": [], "predicted": [], "arm": []}
        self._pca: tuple[int, torch.Tensor] | None = None

    # -- the label-free space --------------------------------------------------------------------
    def _space(self) -> str:
        """The space coverage runs on this round: ``joint_when_balanced`` is pixels until the
        second look has found the labeled set balanced."""
        if self.coverage_space == "joint_when_balanced":
            return "joint" if self.balanced else "pixels"
        return self.coverage_space

    def _second_look(self, labeled_counts: np.ndarray, round_: int) -> None:
        """Step 5: χ² on the labeled set the first batch left; balanced = joint from now on. With
        ``second_look_guard_ratio`` the same set also reads the long-tail guard (step 3): a first set
        that did not fire it fires it now if the set shows an imbalance beyond that ratio's tail."""
        self.second_looked = True
        if self.coverage_space == "joint_when_balanced":
            self.second_look_p = imbalance_pvalue(labeled_counts)
            self.balanced = self.second_look_p >= self.second_look_alpha
        if self.second_look_guard_ratio is not None and not self.long_tailed:
            self.second_look_guard_p = imbalance_beyond_pvalue(labeled_counts, float(self.second_look_guard_ratio))
            if self.second_look_guard_p < self.second_look_alpha:
                self.long_tailed, self.guard_round = True, round_

    def _log_second_look(self, ctx: QueryContext, kcenter: bool) -> None:
        if self.coverage_space == "joint_when_balanced":
            ctx.log("credit/second_look_p", self.second_look_p)
            ctx.log("credit/coverage_joint", float(self._space() == "joint" and not kcenter))
        if self.second_look_guard_ratio is not None:
            ctx.log("credit/second_look_guard_p", self.second_look_guard_p)
            ctx.log("credit/second_look_guard", float(self.guard_round is not None))

    def _coverage_caches(self, ctx: QueryContext) -> tuple[PoolCache, PoolCache | None]:
        space = self._space()
        if space == "model":
            return ctx.cache, ctx.labeled_cache
        ds = ctx.dataset
        n = ds.x_train.shape[0]
        if self._pca is None or self._pca[0] != n:  # pixels, or the standardized features (ALDataset.pca_input)
            self._pca = (n, pixel_pca(ds.pca_input() if hasattr(ds, "pca_input") else ds.x_train, self.pca_dim))
        z = self._pca[1].to(ctx.cache.embeddings.device)
        z_pool = z[torch.as_tensor(ctx.unlabeled, dtype=torch.long)]
        z_labeled = z[torch.as_tensor(ctx.labeled, dtype=torch.long)]
        if space == "joint":
            if ctx.labeled_cache is None:
                raise StateError("coverage_space=joint needs the labeled set's embeddings (labeled_cache)")
            z_pool, z_labeled = joint_embedding(
                (z_pool, z_labeled), (ctx.cache.embeddings.to(z.device), ctx.labeled_cache.embeddings.to(z.device))
            )
        pool = replace(ctx.cache, embeddings=z_pool, mc=None)
        nl = len(ctx.labeled)
        empty = torch.zeros(nl, ctx.cache.probs.shape[1], device=z.device)
        labeled = PoolCache(np.asarray(ctx.labeled), empty, z_labeled, empty)
        return pool, labeled

    def _coverage_by_class(
        self,
        ctx: QueryContext,
        pool: PoolCache,
        labeled: PoolCache | None,
        n: int,
        labeled_y: np.ndarray,
        labeled_counts: np.ndarray,
    ) -> np.ndarray:
        """``n`` coverage picks split over the task model's predicted classes by
        :func:`~autoal.strategies.autoal.label_credit.class_quotas` (rare classes of the labeled set
        get more); within a class, the coverage candidate among the pool samples predicted to be
        of it, against the labeled samples that are. On a long tail, coverage of the whole pool
        follows its density, i.e. the head classes; by class it looks for the tail."""
        predicted = ctx.cache.probs.argmax(1).cpu().numpy()
        available = np.bincount(predicted, minlength=len(labeled_counts))
        quotas = class_quotas(n, labeled_counts, available)
        picks = []
        for c in np.flatnonzero(quotas):
            members = np.flatnonzero(predicted == c)
            if quotas[c] >= len(members):
                picks.append(members)
                continue
            mine = None if labeled is None else labeled.subset(np.flatnonzero(labeled_y == c))
            sel = self.coverage.select_positions(pool.subset(members), int(quotas[c]), ctx.rng, mine)
            picks.append(members[np.asarray(sel, dtype=np.int64)])
        return np.concatenate(picks).astype(np.int64) if picks else np.zeros(0, dtype=np.int64)

    # -- credit ----------------------------------------------------------------------------------
    def _credit(self, ctx: QueryContext, y: np.ndarray, num_classes: int) -> None:
        picks = np.asarray(self.pending["picks"], dtype=np.int64)
        if not len(picks):
            return
        arrived = np.isin(picks, ctx.labeled)
        picks = picks[arrived]
        predicted = np.asarray(self.pending["predicted"], dtype=np.int64)[arrived]
        arms = np.asarray(self.pending["arm"], dtype=object)[arrived]
        before = np.bincount(y[np.setdiff1d(ctx.labeled, picks)], minlength=num_classes)
        coverage_names = [self.coverage.name] + ([self.tail_kcenter.name] if self.tail_kcenter is not None else [])
        for name in dict.fromkeys(coverage_names + [self.uncertainty.name]):
            mine = arms == name
            credit = pick_credit(predicted[mine], y[picks[mine]], before)
            if credit.count:
                ctx.log(f"competence/{name}", credit.competence)
                ctx.log(f"rarity/{name}", credit.rarity)
                ctx.log(f"diversity/{name}", credit.diversity)
            if name != self.uncertainty.name and credit.count:  # competence is measured on coverage picks
                self.competence.update(predicted[mine], y[picks[mine]])
            if credit.count:
                side = "uncertainty" if name == self.uncertainty.name else "coverage"
                self.rarity[side].update(credit.rarity, credit.count)
                self.rarity_run[side].update(credit.rarity, credit.count)
        self.pending = {"picks": [], "predicted": [], "arm": []}

    def query(self, ctx: QueryContext) -> np.ndarray:
        if ctx.dataset is None:
            raise ConfigError("autoal_credit needs the data set (labels of the picks that arrived)")
        y = (
            ctx.dataset.y_train.cpu().numpy()
            if torch.is_tensor(ctx.dataset.y_train)
            else np.asarray(ctx.dataset.y_train)
        )
        num_classes = int(ctx.dataset.num_classes)
        labeled_counts = np.bincount(y[ctx.labeled], minlength=num_classes)
        if self.long_tailed is None:
            self.imbalance_p = imbalance_pvalue(labeled_counts)
            self.long_tailed = self.imbalance_p < self.alpha
        first_batch_arrived = bool(self.pending["picks"]) and not self.second_looked
        self._credit(ctx, y, num_classes)
        if first_batch_arrived:
            self._second_look(labeled_counts, int(ctx.round))
        run = self.rarity_run
        if not self.long_tailed and late_tail_signal(run["coverage"], run["uncertainty"], self.late_tail_z):
            self.long_tailed, self.late_round = True, int(ctx.round)
        tail = self.late_tail_coverage if self.late_round is not None else self.tail_coverage

        by_class = bool(self.long_tailed) and tail == "by_class"
        # the guard keeps coverage at its probe share (by_class and kcenter keep the competence rule)
        tail_probe_only = bool(self.long_tailed) and tail == "probe"
        share = uncertainty_share(self.competence.mean, self.low, self.high, self.probe)
        if self.long_tailed and tail == "kcenter_rarity":
            share = rarity_share(self.rarity["coverage"].mean, self.rarity["uncertainty"].mean, self.probe)
        if tail_probe_only:
            share = max(share, 1.0 - self.tail_probe)
        n_cov, n_unc = split_batch(ctx.n, share, self.tail_probe if tail_probe_only else self.probe)

        kcenter = bool(self.long_tailed) and tail.startswith("kcenter")
        coverage = self.tail_kcenter if kcenter else self.coverage
        pool, labeled = (ctx.cache, ctx.labeled_cache) if kcenter else self._coverage_caches(ctx)
        if not n_cov:
            cov = np.zeros(0, dtype=np.int64)
        elif by_class:
            cov = self._coverage_by_class(ctx, pool, labeled, n_cov, y[ctx.labeled], labeled_counts)
        else:
            cov = np.asarray(coverage.select_positions(pool, n_cov, ctx.rng, labeled), dtype=np.int64)
        rest = np.setdiff1d(np.arange(len(ctx.cache)), cov)
        unc_cache = ctx.cache.subset(rest)
        if self.long_tailed and self.tail_prior_shift > 0:
            logits, probs = prior_shifted(unc_cache.logits, labeled_counts, self.tail_prior_shift)
            unc_cache = replace(unc_cache, logits=logits, probs=probs)
        unc = (
            rest[
                np.asarray(
                    self.uncertainty.select_positions(unc_cache, n_unc, ctx.rng, ctx.labeled_cache),
                    dtype=np.int64,
                )
            ]
            if n_unc
            else np.zeros(0, dtype=np.int64)
        )
        positions = np.concatenate([cov, unc])
        picks = ctx.unlabeled[positions]
        predicted = ctx.cache.probs[torch.as_tensor(positions, dtype=torch.long)].argmax(1).cpu().numpy()
        self.pending = {
            "picks": picks.tolist(),
            "predicted": predicted.tolist(),
            "arm": [coverage.name] * len(cov) + [self.uncertainty.name] * len(unc),
        }

        ctx.log(f"weight/{coverage.name}", 1.0 - share)
        ctx.log(f"weight/{self.uncertainty.name}", share)
        ctx.log(f"share/{coverage.name}", len(cov) / max(ctx.n, 1))
        ctx.log(f"share/{self.uncertainty.name}", len(unc) / max(ctx.n, 1))
        ctx.log("credit/competence_estimate", self.competence.mean)
        for side, rarity in self.rarity.items():
            if rarity.count:  # no metric before a side's first picks arrive
                ctx.log(f"credit/rarity_{side}", rarity.mean)
        ctx.log("credit/imbalance_p", self.imbalance_p)
        ctx.log("credit/long_tailed", float(self.long_tailed))
        self._log_second_look(ctx, kcenter)
        if self.late_tail_z is not None:
            ctx.log("credit/late_tail", float(self.late_round is not None))
        return picks

    # -- resume ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "competence": self.competence.state_dict(),
            "rarity": {side: r.state_dict() for side, r in self.rarity.items()},
            "rarity_run": {side: r.state_dict() for side, r in self.rarity_run.items()},
            "long_tailed": self.long_tailed,
            "late_round": self.late_round,
            "imbalance_p": self.imbalance_p,
            "second_look": {
                "p": self.second_look_p,
                "balanced": self.balanced,
                "done": self.second_looked,
                "guard_p": self.second_look_guard_p,
                "guard_round": self.guard_round,
            },
            "pending": {k: list(v) for k, v in self.pending.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            comp = state["competence"]
            self.competence = CompetenceEstimate(
                float(comp["correct"]), float(comp["wrong"]), float(comp["decay"]), self.competence.prior
            )
            self.long_tailed = None if state["long_tailed"] is None else bool(state["long_tailed"])
            late = state.get("late_round")  # absent in states saved before late_tail_z
            self.late_round = None if late is None else int(late)
            for side, r in state.get("rarity", {}).items():  # absent in states saved before kcenter_rarity
                self.rarity[side] = DecayedMean(float(r["total"]), float(r["count"]), float(r["decay"]))
            for side, r in state.get("rarity_run", {}).items():  # absent in states saved before late_tail_z
                self.rarity_run[side] = DecayedMean(float(r["total"]), float(r["count"]), 1.0)
            self.imbalance_p = float(state["imbalance_p"])
            second = state.get("second_look", {"p": math.nan, "balanced": None})  # absent before joint_when_balanced
            self.second_look_p = float(second["p"])
            self.balanced = None if second["balanced"] is None else bool(second["balanced"])
            # done, guard_p and guard_round are absent in states saved before second_look_guard_ratio
            self.second_looked = bool(second.get("done", self.balanced is not None))
            self.second_look_guard_p = float(second.get("guard_p", math.nan))
            guard_round = second.get("guard_round")
            self.guard_round = None if guard_round is None else int(guard_round)
            pending = state["pending"]
            self.pending = {k: list(pending[k]) for k in ("picks", "predicted", "arm")}
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(
                f"autoal_credit: the saved strategy state does not fit ({type(e).__name__}: {e}); "
                "move the run folder away to start the run afresh"
            ) from None
        if not len(self.pending["picks"]) == len(self.pending["predicted"]) == len(self.pending["arm"]):
            raise StateError("autoal_credit: the saved pending picks, predictions and arms differ in length")
