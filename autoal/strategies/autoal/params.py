"""AutoAL's settings, one dataclass per formulation, each key declared once with its default and
its range (:func:`autoal.bounds.bounded`) or options (:func:`autoal.bounds.choice`):

- :class:`LookaheadParams`: the look-ahead formulation (DESIGN.md §3.9);
- :class:`PaperParams`: the paper formulation; its search keys are
  :class:`autoal.search.cycle.SearchSettings`, which it extends (the round's
  :class:`~autoal.search.cycle.SearchConfig` is built from them by name: no copy by hand);
- :class:`AutoALParams`: ``formulation``, the candidate pool, and the two above nested;
- :class:`CreditParams`: the label-credited formulation (``strategy=autoal_credit``, §3.10).

Users write the keys flat, ``strategy.params.<key>`` (conf/strategy/autoal.yaml): every key
belongs to exactly one dataclass. :data:`AUTOAL_KEYS` is that flat view (a dataclass made from the
same fields, so the same defaults and ranges), the strategy's ``params_type``. Values are typed by
the run config's coercion (a wrong type names the key) and checked by
:func:`autoal.bounds.check_bounds` (a value out of range names the key and the range)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from autoal.bounds import bounded, check_bounds, choice
from autoal.typed_config import build_dataclass
from autoal.errors import ConfigError
from autoal.models import model_names
from autoal.search.cycle import SearchSettings
from autoal.strategies.candidates import PAPER_CANDIDATES
from autoal.strategies.registry import renamed_param

FORMULATIONS = ("lookahead", "paper")
GATES = ("none", "ranks")
SELECTIONS = ("portfolio", "mixture")
CANDIDATE_MODELS = ("fitnet", "task")
FITNET_RESETS = ("cycle", "round", "never")
OPTIMIZERS = ("sgd", "adam")
SEARCH_EXECUTORS = ("local", "ray_train")
COVERAGE_SPACES = ("pixels", "model", "joint", "joint_when_balanced")
#: what the coverage side does once the long-tail guard has fired (CreditParams.tail_coverage)
TAIL_COVERAGE = ("probe", "by_class", "kcenter", "kcenter_rarity")
KCENTER = "coreset"  # the registered k-center greedy strategy that tail_coverage=kcenter covers the tail with
#: keys that were renamed: old key -> new key (the old one is refused with a message naming the new)
RENAMED = {"executor": "search_executor"}


def _err(key: str, msg: str) -> ConfigError:
    return ConfigError(f"strategy.params.{key}: {msg}")


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


@dataclass
class LookaheadParams:
    """The look-ahead formulation (:mod:`autoal.strategies.autoal.lookahead`)."""

    prior: dict[str, float] | None = None
    hedge_rate: float = bounded(1.0, 0, 100)
    fitnet_steps: float = bounded(0.5, 0.01, 10)
    lookahead_parts: int = bounded(16, 1)
    lookahead_pool_fraction: float = bounded(0.5, 0.05, 0.95)
    head_steps: int = bounded(50, 1)
    head_l2: float = bounded(0.01, 0, 1e6)
    gate: str = choice("ranks", GATES)
    gate_steps: int = bounded(30, 0)
    gate_lr: float = bounded(0.01, 1e-8, 10)
    gate_tau: float = bounded(0.05, 1e-6, 100)
    decorrelate: bool = True
    fitnet_warm_start: bool = True
    selection: str = choice("portfolio", SELECTIONS)


@dataclass
class PaperParams(SearchSettings):
    """The paper formulation (:mod:`autoal.strategies.autoal.paper`): the search's keys
    (:class:`~autoal.search.cycle.SearchSettings`) and the round's schedule, optimizers, nets
    and executor."""

    cycles: int = bounded(1, 1)
    fitnet_lr: float = bounded(0.005, 0, low_open=True)
    searchnet_lr: float = bounded(0.005, 0, low_open=True)
    searchnet_optimizer: str = choice("sgd", OPTIMIZERS)
    lpm_lr: float = bounded(0.005, 0, low_open=True)
    lpm_dim: int = bounded(32, 1)
    candidate_model: str = choice("fitnet", CANDIDATE_MODELS)
    warm_start: bool = True
    fitnet_reset: str = choice("round", FITNET_RESETS)
    model: str | None = None
    width: int | None = bounded(None, 1)
    width_factor: float = bounded(0.5, 0, 4, low_open=True)
    mc_samples: int | None = bounded(None, 0)
    momentum: float = bounded(0.9, 0)
    weight_decay: float = bounded(5e-4, 0)
    search_executor: str = choice("local", SEARCH_EXECUTORS, note="where the search's updates run")
    num_workers: int = bounded(2, 1)


@dataclass
class AutoALParams:
    """Every ``strategy.params`` key of ``strategy=autoal``: the formulation, the candidate pool
    (any registered pool strategy, by name), and each formulation's keys nested."""

    formulation: str = choice("lookahead", FORMULATIONS)
    candidates: list[str] = field(default_factory=lambda: list(PAPER_CANDIDATES))
    pool_size: int | None = None
    lookahead: LookaheadParams = field(default_factory=LookaheadParams)
    paper: PaperParams = field(default_factory=PaperParams)

    SECTIONS: ClassVar[tuple[str, ...]] = ("lookahead", "paper")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "AutoALParams":
        """Typed (the config's coercion) and checked settings from the flat ``strategy.params``."""
        flat = build_dataclass(AUTOAL_KEYS, refuse_renamed(dict(params)), "strategy.params.")
        check_bounds(flat, "strategy.params.")
        values = dataclasses.asdict(flat)
        sections = {
            name: _section_type(name)(**{f.name: values.pop(f.name) for f in dataclasses.fields(_section_type(name))})
            for name in cls.SECTIONS
        }
        p = cls(**values, **sections)
        p.validate()
        return p

    @property
    def pool(self) -> list[str]:
        """The candidate pool: ``candidates`` cut to its first ``pool_size`` (Fig. 4)."""
        return list(self.candidates[: self.pool_size] if self.pool_size is not None else self.candidates)

    def validate(self) -> None:
        """The checks that involve more than one key (ranges and options are the fields')."""
        cands = self.candidates
        if isinstance(cands, str) or not isinstance(cands, (list, tuple)) or not cands:
            raise _err("candidates", f"expected a non-empty list of registered pool strategy names; got {cands!r}")
        self.candidates = [str(c) for c in cands]
        if len(set(self.candidates)) != len(self.candidates):
            raise _err("candidates", f"duplicate candidate names in {self.candidates}")
        n = self.pool_size
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self.candidates)):
            raise _err(
                "pool_size",
                f"must be an integer in 1..{len(self.candidates)} (the paper uses 1, 3, 5, 7) or null; got {n!r}",
            )
        paper = self.paper
        if paper.model is not None and paper.model not in model_names():
            raise _err(
                "model",
                f"unknown model {paper.model!r}; valid choices: {', '.join(model_names())} or null "
                "(the task model's family)",
            )
        if paper.lpm_only and not paper.lpm:
            raise _err("lpm_only", "'LPM only' needs the loss prediction module: set strategy.params.lpm: true")
        if self.formulation == "lookahead" and paper.search_executor != "local":
            raise _err(
                "search_executor",
                f"{paper.search_executor!r} runs the paper formulation's search; the "
                "lookahead formulation runs in the trial's process (set strategy.params.formulation: paper, "
                "or search_executor: local)",
            )
        self._validate_prior()

    def _validate_prior(self) -> None:
        prior = self.lookahead.prior
        if prior is None:
            return
        if not isinstance(prior, dict) or not prior:
            raise _err("prior", f"expected a mapping of candidate name to weight, or null; got {prior!r}")
        unknown = [k for k in prior if k not in self.pool]
        if unknown:
            raise _err(
                "prior", f"names {', '.join(map(str, unknown))} are not in the candidate pool ({', '.join(self.pool)})"
            )
        if any(not _is_number(v) or v < 0 for v in prior.values()) or sum(prior.values()) <= 0:
            raise _err("prior", f"weights must be finite numbers >= 0, not all zero; got {prior!r}")
        self.lookahead.prior = {str(k): float(v) for k, v in prior.items()}


# The credit rule's own defaults for a coverage candidate, under what ``coverage_params`` sets:
# TypiClust takes its least-covered clusters farthest from L first, not largest first (DESIGN.md
# §3.10 step 5: level or better on the balanced tuning settings, +0.010 on a long tail the guard
# misses, where the largest uncovered clusters are the head classes').
CREDIT_COVERAGE_DEFAULTS: dict[str, dict[str, Any]] = {"typiclust": {"order": "far"}}


@dataclass
class CreditParams:
    """``strategy=autoal_credit`` (:mod:`autoal.strategies.autoal.credit`): the two candidates
    (registered pool strategies) with their own ``strategy.params`` (``coverage_params``,
    ``uncertainty_params``; empty = the candidate's defaults, with the coverage candidate's
    credit-rule defaults of ``CREDIT_COVERAGE_DEFAULTS`` underneath), the coverage space and the
    credit's numbers."""

    coverage: str = "typiclust"
    uncertainty: str = "margin"
    coverage_params: dict[str, Any] = field(default_factory=dict)
    uncertainty_params: dict[str, Any] = field(default_factory=dict)
    coverage_space: str = choice(
        "joint_when_balanced",
        COVERAGE_SPACES,
        note="pixels = PCA of the pool's pixels; model = the task model's embedding; joint = both, each scaled to a "
        "unit spread, side by side; joint_when_balanced = pixels for the first batch, then joint if the labeled set "
        "it leaves looks balanced (χ² p >= second_look_alpha), else pixels",
    )
    second_look_alpha: float = bounded(
        0.2,
        0,
        1,
        note="the second look's level: coverage_space=joint_when_balanced counts the pool as balanced at a χ² p-value "
        "of the labeled set after the first batch at or above it; second_look_guard_ratio fires the guard below it",
    )
    second_look_guard_ratio: float | None = bounded(
        2.0,
        1,
        note="when the first labeled set did not fire the long-tail guard, the second look (the labeled set after "
        "the first batch) fires it if the set shows a class imbalance beyond an exponential tail of this ratio "
        "(noncentral χ² p < second_look_alpha); the guard's tail_coverage from the second query round; null = off",
    )
    pca_dim: int = bounded(50, 1)
    low: float = bounded(0.6, 0, 1, note="competence at or below which the batch is coverage")
    high: float = bounded(0.9, 0, 1, note="competence from which the batch is uncertainty")
    probe: float = bounded(0.1, 0, 0.5)
    decay: float = bounded(0.5, 0, 1)
    competence_prior: float = bounded(
        1.0, 0, note="pseudo-count a of the Beta(a, a) prior of the competence estimate; 0 = the decayed hit rate"
    )
    imbalance_alpha: float = bounded(
        0.2, 0, 1, note="χ² p-value of the first labeled set below which the pool counts as long-tailed"
    )
    tail_probe: float = bounded(0.1, 0, 0.5, note="coverage share once the long-tail guard has fired")
    tail_prior_shift: float = bounded(
        0.0, 0, 2, note="τ of the prior shift of the uncertainty side's probabilities under the long-tail guard"
    )
    tail_coverage: str = choice(
        "kcenter",
        TAIL_COVERAGE,
        note="under the long-tail guard: kcenter = the competence rule as on balanced pools, coverage picks by "
        "k-center greedy (coreset) over uncovered groups of kcenter_group points of the task model's embedding; "
        "probe = coverage keeps tail_probe of the batch; by_class = the competence rule as on balanced pools, "
        "coverage picks split over predicted classes by 1/(labeled count + 1); kcenter_rarity = k-center coverage "
        "while its picks' class rarity is at least the uncertainty picks', then uncertainty",
    )
    kcenter_group: int = bounded(
        3, 1, note="tail_coverage=kcenter*: k-center over uncovered groups of this many pool points (1 = plain)"
    )
    late_tail_z: float | None = bounded(
        None,
        0,
        note="when the first labeled set did not fire the long-tail guard, it fires late from the round the "
        "uncertainty picks' class rarity over the run so far exceeds the coverage picks' by more than this many "
        "standard errors; null = off",
    )
    late_tail_coverage: str = choice(
        "probe", TAIL_COVERAGE, note="tail_coverage once the guard has fired late (see late_tail_z)"
    )

    formulation: ClassVar[str] = "credit"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "CreditParams":
        p = build_dataclass(cls, dict(params), "strategy.params.")
        check_bounds(p, "strategy.params.")
        if p.coverage == p.uncertainty:  # the credit is kept per candidate name: one name cannot be both sides
            raise ConfigError(
                f"strategy.params.coverage and strategy.params.uncertainty must differ; both are {p.coverage!r}"
            )
        for key in ("tail_coverage", "late_tail_coverage"):
            mode = getattr(p, key)
            if mode.startswith("kcenter") and p.uncertainty == KCENTER:
                raise ConfigError(
                    f"strategy.params.uncertainty is {KCENTER!r}, the coverage of strategy.params.{key}={mode}; "
                    f"choose another uncertainty candidate or another {key}"
                )
        if not p.low < p.high:
            raise ConfigError(f"strategy.params.low must be below strategy.params.high; got {p.low} and {p.high}")
        return p


def refuse_renamed(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` unchanged, or a ConfigError for the first renamed key in it, naming the new key."""
    for key in params:
        message = renamed_param(RENAMED, key)
        if message:
            raise ConfigError(message)
    return params


def _section_type(name: str) -> type:
    return {f.name: f.default_factory for f in dataclasses.fields(AutoALParams)}[name]  # type: ignore[return-value]


def _flat_view() -> type:
    """The flat ``strategy.params`` dataclass: AutoALParams' own fields, then each section's,
    the same field objects (defaults, ranges, options); a key declared twice is a programming
    error."""
    specs: list[tuple[str, Any, dataclasses.Field]] = []
    own = [f for f in dataclasses.fields(AutoALParams) if f.name not in AutoALParams.SECTIONS]
    for f in own + [g for s in AutoALParams.SECTIONS for g in dataclasses.fields(_section_type(s))]:
        copy = field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)  # type: ignore[call-overload]
        specs.append((f.name, f.type, copy))
    names = [s[0] for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TypeError(f"AutoAL params: keys {dup} are declared by more than one formulation")
    keys = dataclasses.make_dataclass("AutoALKeys", specs)
    keys.__module__ = __name__
    return keys


#: the flat ``strategy.params`` of ``strategy=autoal`` (the strategy's ``params_type``)
AUTOAL_KEYS = _flat_view()
