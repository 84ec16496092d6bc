"""ALBL: Active Learning By Learning (Hsu & Lin, AAAI 2015) — EXP4.P over query strategies."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from autoal.errors import ConfigError
from autoal.strategies.base import PoolStrategy, QueryContext, Strategy
from autoal.strategies.baselines._common import require_ctx, rng_seed
from autoal.strategies.registry import build_strategy, register_strategy

DEFAULT_ARMS = ("random", "entropy", "margin", "kmeans", "coreset")
_NOT_ARMS = ("albl", "autoal")


def _build_arm(spec: Any) -> tuple[str, PoolStrategy]:
    if isinstance(spec, PoolStrategy):
        return spec.name, spec
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec:
        name, params = str(spec["name"]), dict(spec.get("params") or {})
    else:
        raise ConfigError(f"strategy (albl).arms: each arm is a strategy name or {{name, params}}; got {spec!r}")
    if name in _NOT_ARMS:
        raise ConfigError(f"strategy (albl).arms: {name!r} cannot be an arm of ALBL")
    arm = build_strategy(name, **params)
    if not isinstance(arm, PoolStrategy):
        raise ConfigError(
            f"strategy (albl).arms: {name!r} trains models of its own; an arm must choose from the "
            "round's caches (e.g. entropy, margin, kmeans, coreset, badge, typiclust)"
        )
    return name, arm


@register_strategy("albl")
class ALBL(Strategy):
    """ALBL (Hsu & Lin: "Active Learning by Learning", AAAI 2015).

    A contextual bandit, EXP4.P (Beygelzimer et al. 2011), learns online which query strategy
    to follow. The experts are the arm strategies (config ``arms``, names from the registry,
    uniform ``random`` among them by default); each expert's advice is a distribution over the
    unlabeled pool — one-hot on its next pick for a deterministic strategy, uniform for
    ``random``. With arm probabilities p_i = (1 − N·p_min)·w_i/Σw + p_min, a sample is drawn
    from q(x) = Σ_i p_i ξ_i(x) and its importance weight W = 1/q(x) is kept. The reward of a
    query is the importance-weighted accuracy (IW-ACC) of the model trained after it, on every
    sample queried so far: r = (1/(n·t)) Σ_τ W_τ·[f(x_τ) = y_τ] (n the pool size, t the number
    of queries; an unbiased estimate of the pool accuracy), clipped to [0, 1]. EXP4.P then
    updates w_i ← w_i·exp(p_min/2·(r·ξ_i(x)/q(x) + v̂_i·√(ln(N/δ)/(N·T)))), v̂_i = Σ_x ξ_i(x)²/q(x).

    Choices where the paper leaves room (deep batch AL): (1) batch queries: the b samples of a
    round are drawn one after the other without replacement, each from q restricted to the
    remaining pool (a deterministic expert advises its best remaining pick); the arm
    probabilities are fixed within a round, and the reward, available only once the next
    model is trained, is applied to every draw of the previous round at the start of the next
    one (with b = 1 this is exactly the paper's sequential algorithm); (2) the reward's model
    f is the loop's task model of the next round, its predictions on the queried samples read
    from the labeled cache; (3) the exploration floor p_min sits on the arms, not on single
    samples: EXP4.P's per-sample floor needs K·p_min ≤ 1 with K = |U| and is infeasible for
    deep-AL pools; with the uniform arm every sample still keeps probability ≥ p_min/|U|.
    Accordingly K = N (arms) in EXP4.P's constants: p_min = √(ln N/(N·T)) (at most 1/N) unless
    set; the variance term v̂_i is the second moment Σ_x ξ_i(x)²/q(x) of the reward estimate,
    which equals EXP4.P's Σ_x ξ_i(x)/q(x) for one-hot advice, while for the uniform arm EXP4.P's
    form grows with |U| and would swamp the reward (the second moment stays ≈ 1/p);
    (4) T, the horizon in queries, is ``horizon`` or else ``horizon_rounds``·b; δ = 0.1;
    (5) the weights, importance weights and pending draws are saved by ``state_dict`` for
    resume. The arm probabilities of each round are logged as ``albl/p_<arm>``.
    """

    def __init__(
        self,
        arms: list[Any] | tuple[Any, ...] = DEFAULT_ARMS,
        p_min: float | None = None,
        delta: float = 0.1,
        horizon: int | None = None,
        horizon_rounds: int = 10,
    ) -> None:
        built = [_build_arm(a) for a in (arms or ())]
        if not built:
            raise ConfigError("strategy (albl).arms: needs at least one arm")
        names: list[str] = []
        for name, _ in built:
            base, k = name, 2
            while name in names:
                name, k = f"{base}_{k}", k + 1
            names.append(name)
        self.arm_names = names
        self.arms = [s for _, s in built]
        self.uniform = np.array([s.name == "random" for s in self.arms])
        self.p_min_cfg = p_min
        self.delta = float(delta)
        self.horizon = horizon
        self.horizon_rounds = int(horizon_rounds)
        if not 0 < self.delta:
            raise ConfigError(f"strategy (albl).delta: must be > 0; got {delta!r}")
        if p_min is not None and not 0 <= p_min <= 1.0 / len(self.arms):
            raise ConfigError(f"strategy (albl).p_min: must lie in [0, 1/{len(self.arms)}]; got {p_min!r}")
        self.needs = frozenset({"labeled_cache", "dataset"}).union(*(s.needs for s in self.arms))
        self.log_w = np.zeros(len(self.arms))
        self.T: int | None = None
        self.hist_idx: list[int] = []
        self.hist_w: list[float] = []
        self.pending: dict[str, np.ndarray] | None = None
        self.last_reward: float | None = None

    # -- EXP4.P ---------------------------------------------------------------------------
    @property
    def n_arms(self) -> int:
        return len(self.arms)

    def p_min(self) -> float:
        if self.p_min_cfg is not None:
            return float(self.p_min_cfg)
        n, t = self.n_arms, max(int(self.T or 1), 1)
        return min(math.sqrt(math.log(n) / (n * t)), 1.0 / n) if n > 1 else 0.0

    def arm_probabilities(self) -> np.ndarray:
        w = np.exp(self.log_w - self.log_w.max())
        pm = self.p_min()
        return (1.0 - self.n_arms * pm) * w / w.sum() + pm

    def update(self, reward: float) -> None:
        """Apply ``reward`` to every pending draw (EXP4.P's weight update)."""
        if not self.pending or len(self.pending["q"]) == 0:
            return
        pm = self.p_min()
        c = math.sqrt(math.log(self.n_arms / self.delta) / (self.n_arms * max(int(self.T or 1), 1)))
        xi, q, vhat = self.pending["xi"], self.pending["q"], self.pending["vhat"]
        rhat = reward * xi / q[:, None]
        self.log_w = self.log_w + (pm / 2.0) * (rhat + vhat * c).sum(0)
        self.pending = None

    def reward(self, ctx: QueryContext) -> float:
        """IW-ACC of the current model (read from the labeled cache) on all queried samples."""
        lab = require_ctx(ctx, self.name, "labeled_cache", "dataset").labeled_cache
        idx = np.asarray(self.hist_idx, dtype=np.int64)
        w = np.asarray(self.hist_w, dtype=np.float64)
        order = np.argsort(lab.indices, kind="stable")
        at = np.searchsorted(lab.indices[order], idx)
        at = np.clip(at, 0, len(order) - 1)
        rows = order[at]
        found = lab.indices[rows] == idx
        pred = lab.probs.argmax(1).cpu().numpy()[rows]
        y = np.asarray(ctx.dataset.y_train)[idx]
        n_pool = len(ctx.labeled) + len(ctx.unlabeled)
        r = float((w * ((pred == y) & found)).sum() / (n_pool * max(len(idx), 1)))
        return min(max(r, 0.0), 1.0)

    # -- one round --------------------------------------------------------------------------
    def query(self, ctx: QueryContext) -> np.ndarray:
        cache, n, rng = ctx.cache, ctx.n, ctx.rng
        if self.T is None:
            self.T = int(self.horizon) if self.horizon else self.horizon_rounds * int(n)
        if self.pending is not None and len(self.pending["q"]):
            self.last_reward = self.reward(ctx)
            self.update(self.last_reward)
            ctx.log("albl/reward", self.last_reward)
        p = self.arm_probabilities()
        for name, pi in zip(self.arm_names, p):
            ctx.log(f"albl/p_{name}", float(pi))
        advice = []
        for arm, uni in zip(self.arms, self.uniform):
            arm_rng = np.random.default_rng(rng_seed(rng))
            advice.append(
                None if uni else np.asarray(arm.select_positions(cache, n, arm_rng, ctx.labeled_cache), dtype=np.int64)
            )
        picks, q, xi, vhat = self._draw(len(cache), n, p, advice, rng)
        self.pending = {"idx": cache.indices[picks].astype(np.int64), "q": q, "xi": xi, "vhat": vhat}
        self.hist_idx.extend(int(i) for i in cache.indices[picks])
        self.hist_w.extend(float(1.0 / v) for v in q)
        return cache.indices[picks].astype(np.int64)

    def _draw(
        self, m: int, n: int, p: np.ndarray, advice: list[np.ndarray | None], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """n draws without replacement from q = Σ_i p_i ξ_i over the remaining pool."""
        n_arms = len(p)
        pool = np.arange(m)  # pool[:avail] are the remaining positions
        where = np.arange(m)
        avail = m
        taken = np.zeros(m, dtype=bool)
        ptr = [0] * n_arms
        p_unif = float(p[self.uniform].sum())
        picks = np.empty(n, dtype=np.int64)
        qs = np.empty(n)
        xis = np.zeros((n, n_arms))
        vhats = np.zeros((n, n_arms))
        for t in range(n):
            cur = np.full(n_arms, -1, dtype=np.int64)  # -1: uniform advice
            for i, adv in enumerate(advice):
                if adv is None:
                    continue
                while ptr[i] < len(adv) and taken[adv[ptr[i]]]:
                    ptr[i] += 1
                if ptr[i] < len(adv):
                    cur[i] = adv[ptr[i]]
            det = cur >= 0
            unif_mass = p_unif + float(p[~det & ~self.uniform].sum())  # exhausted advice falls back to uniform
            arm = int(rng.choice(n_arms, p=p / p.sum()))
            x = int(cur[arm]) if det[arm] else int(pool[rng.integers(0, avail)])

            def q_of(y: int) -> float:  # called within this iteration only
                return unif_mass / avail + float(p[det & (cur == y)].sum())  # noqa: B023

            qx = q_of(x)
            xi = np.where(det, (cur == x).astype(float), 1.0 / avail)
            distinct = np.unique(cur[det])
            q_adv = {int(y): q_of(int(y)) for y in distinct}
            vh = np.empty(n_arms)
            for i in range(n_arms):
                if det[i]:
                    vh[i] = 1.0 / q_adv[int(cur[i])]
                else:  # Σ_x ξ(x)²/q(x) with ξ = 1/avail
                    rest = (avail - len(distinct)) / (unif_mass / avail) if unif_mass > 0 else 0.0
                    vh[i] = (rest + sum(1.0 / v for v in q_adv.values())) / avail**2
            picks[t], qs[t], xis[t], vhats[t] = x, qx, xi, vh
            # remove x from the pool (swap with the last remaining position)
            taken[x] = True
            j, last = where[x], pool[avail - 1]
            pool[j], pool[avail - 1] = last, x
            where[last], where[x] = j, avail - 1
            avail -= 1
        return picks, qs, xis, vhats

    # -- resume -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "arm_names": list(self.arm_names),
            "log_w": self.log_w.tolist(),
            "T": self.T,
            "hist_idx": list(self.hist_idx),
            "hist_w": list(self.hist_w),
            "pending": None if self.pending is None else {k: np.asarray(v).tolist() for k, v in self.pending.items()},
            "last_reward": self.last_reward,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if list(state.get("arm_names", [])) != list(self.arm_names):
            raise ValueError(f"albl: saved arms {state.get('arm_names')} differ from the configured {self.arm_names}")
        log_w = np.asarray(state["log_w"], dtype=np.float64)
        if log_w.shape != (self.n_arms,) or not np.isfinite(log_w).all():
            raise ValueError(f"albl: 'log_w' must hold {self.n_arms} finite numbers; got shape {log_w.shape}")
        T = state.get("T")
        if T is not None and (isinstance(T, bool) or not isinstance(T, int) or T < 1):
            raise ValueError(f"albl: 'T' must be a positive integer or null; got {T!r:.40}")
        self.log_w = log_w
        self.T = T
        self.hist_idx = [int(i) for i in state.get("hist_idx", [])]
        self.hist_w = [float(w) for w in state.get("hist_w", [])]
        pend = state.get("pending")
        self.pending = (
            None
            if pend is None
            else {
                "idx": np.asarray(pend["idx"], dtype=np.int64),
                "q": np.asarray(pend["q"], dtype=np.float64),
                "xi": np.asarray(pend["xi"], dtype=np.float64).reshape(len(pend["q"]), self.n_arms),
                "vhat": np.asarray(pend["vhat"], dtype=np.float64).reshape(len(pend["q"]), self.n_arms),
            }
        )
        self.last_reward = state.get("last_reward")
