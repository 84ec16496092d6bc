"""AutoAL's settings (``strategy.params`` of ``strategy=autoal``) as one dataclass, built from the
config by the run config's own coercion (a wrong type names the key) and checked by
:meth:`AutoALParams.validate` (a wrong value names the key and the valid range or choices). The
meaning of every key is documented on :class:`autoal.strategies.autoal_search.AutoAL`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from autoal.config import build_dataclass
from autoal.errors import ConfigError
from autoal.models import model_names
from autoal.search.search import CANDIDATE_SCORES, SEARCHNET_INPUTS
from autoal.strategies.autoal_lookahead import GATES, SELECTIONS, LookaheadParams
from autoal.strategies.candidates import PAPER_CANDIDATES

#: every strategy that can be a candidate: the paper's seven, then TypiClust (Hacohen et al. 2022)
CANDIDATE_NAMES = (*PAPER_CANDIDATES, "typiclust")
CANDIDATE_MODELS = ("fitnet", "task")
FITNET_RESETS = ("cycle", "round", "never")
OPTIMIZERS = ("sgd", "adam")
EXECUTORS = ("local", "ray_train")
FORMULATIONS = ("lookahead", "paper")

# (key, lowest, whether the bound is strict) for numbers; (key, lowest) for integers;
# (key, lowest, highest) for bounded numbers; (key, choices) for strings
_NUMBERS = (("lam", 0.0, True), ("lam_reg", 0.0, False), ("tau", 0.0, False), ("fitnet_lr", 0.0, True),
            ("searchnet_lr", 0.0, True), ("lpm_lr", 0.0, True), ("lpm_weight", 0.0, False),
            ("momentum", 0.0, False), ("weight_decay", 0.0, False))
_INTEGERS = (("gmm_components", 1), ("gmm_samples", 10), ("cycles", 1), ("warmup_epochs", 0),
             ("search_epochs", 0), ("batch_size", 2), ("lpm_dim", 1), ("num_workers", 1),
             ("lookahead_parts", 1), ("head_steps", 1), ("gate_steps", 0))
_BOUNDED = (("hedge_rate", 0.0, 100.0), ("fitnet_steps", 0.01, 10.0), ("lookahead_pool_fraction", 0.05, 0.95),
            ("head_l2", 0.0, 1e6), ("gate_lr", 1e-8, 10.0), ("gate_tau", 1e-6, 100.0))
_CHOICES = (("searchnet_optimizer", OPTIMIZERS), ("candidate_model", CANDIDATE_MODELS),
            ("candidate_score", CANDIDATE_SCORES), ("searchnet_input", SEARCHNET_INPUTS),
            ("fitnet_reset", FITNET_RESETS), ("executor", EXECUTORS), ("formulation", FORMULATIONS),
            ("gate", GATES), ("selection", SELECTIONS))
_BOOLEANS = ("lpm", "lpm_only", "warm_start", "decorrelate", "fitnet_warm_start")
_LOOKAHEAD = LookaheadParams()


def _err(key: str, msg: str) -> ConfigError:
    return ConfigError(f"strategy.params.{key}: {msg}")


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


@dataclass
class AutoALParams:
    """Every ``strategy.params`` key of AutoAL with its default (conf/strategy/autoal.yaml lists
    the same, tested)."""

    candidates: list[str] = field(default_factory=lambda: list(PAPER_CANDIDATES))
    pool_size: int | None = None
    lam: float = 1.0
    lam_reg: float = 2.0
    tau: float = 0.1
    gmm_components: int = 3
    gmm_samples: int = 2000
    cycles: int = 1
    warmup_epochs: int = 10
    search_epochs: int = 8
    batch_size: int = 64
    fitnet_lr: float = 0.005
    searchnet_lr: float = 0.005
    searchnet_optimizer: str = "sgd"
    lpm_lr: float = 0.005
    lpm_weight: float = 1.0
    lpm: bool = True
    lpm_only: bool = False
    lpm_dim: int = 32
    candidate_model: str = "fitnet"
    candidate_score: str = "indicator"
    searchnet_input: str = "image"
    warm_start: bool = True
    fitnet_reset: str = "round"
    model: str | None = None
    width: int | None = None
    width_factor: float = 0.5
    mc_samples: int | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    executor: str = "local"
    num_workers: int = 2
    formulation: str = "lookahead"
    # the lookahead formulation's keys: defaults from LookaheadParams (one place)
    prior: dict[str, float] | None = _LOOKAHEAD.prior
    hedge_rate: float = _LOOKAHEAD.hedge_rate
    fitnet_steps: float = _LOOKAHEAD.fitnet_steps
    lookahead_parts: int = _LOOKAHEAD.parts
    lookahead_pool_fraction: float = _LOOKAHEAD.pool_fraction
    head_steps: int = _LOOKAHEAD.head_steps
    head_l2: float = _LOOKAHEAD.head_l2
    gate: str = _LOOKAHEAD.gate
    gate_steps: int = _LOOKAHEAD.gate_steps
    gate_lr: float = _LOOKAHEAD.gate_lr
    gate_tau: float = _LOOKAHEAD.gate_tau
    decorrelate: bool = _LOOKAHEAD.decorrelate
    fitnet_warm_start: bool = _LOOKAHEAD.fitnet_warm_start
    selection: str = _LOOKAHEAD.selection

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "AutoALParams":
        """Typed (the config's coercion) and validated settings from ``strategy.params``."""
        p = build_dataclass(cls, dict(params), "strategy.params.")
        p.validate()
        return p

    @property
    def pool(self) -> list[str]:
        """The candidate pool: ``candidates`` cut to its first ``pool_size`` (Fig. 4)."""
        return list(self.candidates[: self.pool_size] if self.pool_size is not None else self.candidates)

    def validate(self) -> None:
        cands = self.candidates
        if isinstance(cands, str) or not isinstance(cands, (list, tuple)) or not cands:
            raise _err("candidates", f"expected a non-empty list of candidate names from {', '.join(CANDIDATE_NAMES)}; "
                       f"got {cands!r}")
        self.candidates = [str(c) for c in cands]
        bad = [c for c in self.candidates if c not in CANDIDATE_NAMES]
        if bad:
            raise _err("candidates", f"unknown candidate(s) {', '.join(bad)}; valid choices: {', '.join(CANDIDATE_NAMES)}")
        if len(set(self.candidates)) != len(self.candidates):
            raise _err("candidates", f"duplicate candidate names in {self.candidates}")
        n = self.pool_size
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self.candidates)):
            raise _err("pool_size", f"must be an integer in 1..{len(self.candidates)} (the paper uses 1, 3, 5, 7) or "
                       f"null; got {n!r}")
        for key, lo, strict in _NUMBERS:
            v = getattr(self, key)
            if not _is_number(v) or (v <= lo if strict else v < lo):
                raise _err(key, f"must be a number {'>' if strict else '>='} {lo}; got {v!r}")
        for key, lo in _INTEGERS:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise _err(key, f"must be an integer >= {lo}; got {v!r}")
        for key, lo, hi in _BOUNDED:
            v = getattr(self, key)
            if not _is_number(v) or not lo <= v <= hi:
                raise _err(key, f"must be a number in [{lo:g}, {hi:g}]; got {v!r}")
        for key, choices in _CHOICES:
            if getattr(self, key) not in choices:
                raise _err(key, f"unknown value {getattr(self, key)!r}; valid choices: {', '.join(choices)}")
        for key in _BOOLEANS:
            if not isinstance(getattr(self, key), bool):
                raise _err(key, f"expected true or false; got {getattr(self, key)!r}")
        if not _is_number(self.width_factor) or not 0 < self.width_factor <= 4:
            raise _err("width_factor", f"must be a number in (0, 4]; got {self.width_factor!r}")
        for key in ("mc_samples", "width"):
            v, lo = getattr(self, key), (0 if key == "mc_samples" else 1)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise _err(key, f"must be an integer >= {lo} or null; got {v!r}")
        if self.model is not None and self.model not in model_names():
            raise _err("model", f"unknown model {self.model!r}; valid choices: {', '.join(model_names())} or null "
                       "(the task model's family)")
        if self.lpm_only and not self.lpm:
            raise _err("lpm_only", "'LPM only' needs the loss prediction module: set strategy.params.lpm: true")
        if self.formulation == "lookahead" and self.executor != "local":
            raise _err("executor", f"{self.executor!r} runs the paper formulation's search; the lookahead formulation "
                       "runs in the trial's process (set strategy.params.formulation: paper, or executor: local)")
        self._validate_prior()

    def _validate_prior(self) -> None:
        prior = self.prior
        if prior is None:
            return
        if not isinstance(prior, dict) or not prior:
            raise _err("prior", f"expected a mapping of candidate name to weight, or null; got {prior!r}")
        unknown = [k for k in prior if k not in self.pool]
        if unknown:
            raise _err("prior", f"names {', '.join(map(str, unknown))} are not in the candidate pool "
                       f"({', '.join(self.pool)})")
        if any(not _is_number(v) or v < 0 for v in prior.values()) or sum(prior.values()) <= 0:
            raise _err("prior", f"weights must be finite numbers >= 0, not all zero; got {prior!r}")

    def lookahead_params(self) -> LookaheadParams:
        """The settings of the lookahead formulation (:mod:`autoal.strategies.autoal_lookahead`)."""
        return LookaheadParams(
            prior=None if self.prior is None else {str(k): float(v) for k, v in self.prior.items()},
            hedge_rate=float(self.hedge_rate), fitnet_steps=float(self.fitnet_steps), parts=self.lookahead_parts,
            pool_fraction=float(self.lookahead_pool_fraction), head_steps=self.head_steps,
            head_l2=float(self.head_l2), gate=self.gate, gate_steps=self.gate_steps, gate_lr=float(self.gate_lr),
            gate_tau=float(self.gate_tau), decorrelate=self.decorrelate, fitnet_warm_start=self.fitnet_warm_start,
            selection=self.selection)
