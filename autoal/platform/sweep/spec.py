"""The ``sweep:`` section of a config as a :class:`SweepSpec`, and its search space: Tune domains
(:func:`parse_space`) and the points every seed runs (:func:`expand_points`)."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from autoal.bounds import bounded, choice
from autoal.errors import ConfigError
from autoal.platform.sweep.resources import trial_bundle
from autoal.strategies import strategy_names
from autoal.typed_config import build_typed, check_typed


SPACE_KINDS = ("grid", "choice", "uniform", "loguniform")
#: how trials' points are chosen: every point x every seed (paired), or a Tune search algorithm
SEARCH_ALGS = ("grid", "random", "optuna")
SCHEDULERS = ("none", "asha")
#: the sections of a run config; a space/arm key without a dot naming one of them selects a
#: config-group option (``strategy: autoal`` = the composed ``conf/strategy/autoal.yaml``)
CONFIG_SECTIONS = ("dataset", "model", "train", "al", "strategy", "tracking", "scoring", "runtime", "setting")
META_FILE = "sweep_meta.json"
ROLE_TAG = "autoal_role"  # "sweep" on the parent run, "trial" on a child run

ComposeFn = Callable[[list[str]], dict]


# ------------------------------------------------------------------------------------ the spec

#: at most this many seeds or samples (MAX_SEEDS), concurrent trials or retries (MAX_TRIALS): a typo such as
#: 10**9 fails here, not in an allocation
MAX_SEEDS = 10_000
MAX_TRIALS = 1_000_000


#: the keys where null means the default (an empty mapping; no scheduler)
_NULL_IS_DEFAULT = ("space", "arms", "fixed", "scheduler", "leaders")


@dataclass
class SweepSpec:
    """The ``sweep:`` config section. Every key is documented in ``conf/sweep/base.yaml``; types
    and ranges are declared on the fields (:mod:`autoal.typed_config`), :meth:`validate` adds
    what a field's own rule cannot say."""

    name: str = "sweep"
    space: dict[str, Any] = field(default_factory=dict)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] | int = field(default_factory=lambda: [0])  # a count n means seeds 0..n-1
    num_samples: int = bounded(1, 1, MAX_SEEDS)
    sample_seed: int = bounded(0, 0, 2**32 - 1)
    ablation: str | None = None
    reference: str | None = None
    max_concurrent: int = bounded(0, 0, MAX_TRIALS, note="0 = as many as fit")
    max_failures: int = bounded(2, -1, MAX_TRIALS, note="-1 = retry without end")
    storage_path: str = "ray_results"
    resume: Any = False
    resources_per_trial: dict[str, Any] | None = None
    checkpoint: bool = True
    report: bool = True
    report_dir: str | None = None
    address: str = "auto"
    num_cpus: int = bounded(0, 0, 1 << 20, note="0 = all of the machine's")
    progress_interval_s: float = bounded(15.0, 0, 86_400, note="seconds")
    search_alg: str = choice("grid", SEARCH_ALGS)
    scheduler: str = choice("none", SCHEDULERS)
    asha: dict[str, Any] = field(default_factory=lambda: {"grace_rounds": 1, "reduction_factor": 2})
    worker_niceness: int | None = bounded(0, -20, 19, note="0: the driver's priority; null: Ray's default, 15")
    leaders: dict[str, Any] = field(default_factory=dict)

    @property
    def searched(self) -> bool:
        """Trials' points come from a Tune search algorithm (not the expanded, paired grid)."""
        return self.search_alg != "grid"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "SweepSpec":
        d = {k: v for k, v in dict(d or {}).items() if not (v is None and k in _NULL_IS_DEFAULT)}
        spec = build_typed(cls, d, "sweep.")  # unknown keys, types, ranges and choices
        spec.validate()
        return spec

    def validate(self) -> None:
        """The field rules (:func:`~autoal.typed_config.check_typed`), then what they cannot say: the
        name, the seeds, non-empty strings, the arms' and asha's contents, the leaders and the rules
        between keys."""
        check_typed(self, "sweep.")
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ConfigError(f"sweep.name: expected a non-empty name without '/', '\\' or spaces; got {self.name!r}")
        self.seeds = _seeds(self.seeds)
        for key, what in (
            ("report_dir", "a folder (or null: beside the runs)"),
            ("storage_path", "a folder"),
            ("address", "auto, local or a Ray address (host:port)"),
        ):
            if getattr(self, key) == "":
                raise ConfigError(f"sweep.{key}: expected {what}; got ''")
        for arm, delta in self.arms.items():
            if not isinstance(delta, Mapping):
                raise ConfigError(
                    f"sweep.arms.{arm}: expected a mapping of config keys to values "
                    f"(e.g. {{strategy.params.lpm: false}}); got {delta!r}"
                )
        if not isinstance(self.resume, (bool, str)):
            raise ConfigError(
                f"sweep.resume: expected false, true (the latest run of this sweep) or a sweep id; got {self.resume!r}"
            )
        if self.resources_per_trial is not None:
            trial_bundle(self.resources_per_trial)  # validates
        self.asha = _asha(self.asha)
        self.leaders = validate_leaders(self.leaders, self.seeds)
        if self.leaders and self.searched:
            raise ConfigError("sweep.leaders: more seeds for the leading arms need search_alg: grid")
        if self.searched and self.arms:
            raise ConfigError(
                "sweep.search_alg: a search algorithm samples points of sweep.space; named arms "
                "(sweep.arms) need search_alg: grid"
            )
        if self.search_alg == "optuna" and len(self.seeds) != 1:
            raise ConfigError(
                f"sweep.seeds: search_alg optuna optimizes over one seed (it would otherwise tune "
                f"the seed); got {self.seeds!r}; use search_alg random or grid for several seeds"
            )
        if self.searched and not self.space:
            raise ConfigError("sweep.search_alg: a search algorithm needs a sweep.space to sample from")
        parse_space(self.space)  # validates

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _seeds(seeds: Any) -> list[int]:
    """``sweep.seeds`` as a list: a count n is seeds 0..n-1; every seed in [0, 2**32), no repeats."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ConfigError(f"sweep.seeds: a count of seeds must lie in [1, {MAX_SEEDS}]; got {seeds!r}")
        return list(range(int(seeds)))
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise ConfigError(f"sweep.seeds: expected a non-empty list of integers (or a count); got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ConfigError(f"sweep.seeds: expected integers; got {s!r}")
        if not 0 <= s < 2**32:
            raise ConfigError(f"sweep.seeds: every seed must lie in [0, 2**32) (numpy and torch seeds); got {s!r}")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"sweep.seeds: at most {MAX_SEEDS} seeds; got {len(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"sweep.seeds: duplicate seeds in {seeds!r}")
    return [int(s) for s in seeds]


def _asha(asha: Mapping[str, Any]) -> dict[str, Any]:
    """``sweep.asha`` with its defaults: ``grace_rounds`` (an integer >= 1), ``reduction_factor`` (>= 2)."""
    if set(asha) - {"grace_rounds", "reduction_factor"}:
        raise ConfigError(f"sweep.asha: expected {{grace_rounds: int >= 1, reduction_factor: int >= 2}}; got {asha!r}")
    out = {"grace_rounds": 1, "reduction_factor": 2, **dict(asha)}
    for key, lo in (("grace_rounds", 1), ("reduction_factor", 2)):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"sweep.asha.{key}: expected an integer >= {lo}; got {v!r}")
    return out


LEADER_KEYS = ("top", "seeds", "always")


def validate_leaders(leaders: Any, seeds: list[int]) -> dict[str, Any]:
    """``sweep.leaders`` checked and normalized: ``{}`` (off) or ``{top: int >= 0, seeds: [the extra
    seeds], always: [strategy options]}``. ``seeds`` may be a count: the total number of seeds the
    leaders run (10 with ``sweep.seeds: 5`` adds the first five seeds not in ``sweep.seeds``)."""
    if leaders is None or (isinstance(leaders, Mapping) and not leaders):
        return {}
    if not isinstance(leaders, Mapping) or set(leaders) - set(LEADER_KEYS):
        raise ConfigError(
            f"sweep.leaders: expected {{top: int, seeds: count or list, always: [strategy, ...]}}; got {leaders!r}"
        )
    top = leaders.get("top", 0)
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TRIALS:
        raise ConfigError(f"sweep.leaders.top: expected an integer >= 0; got {top!r}")
    always = leaders.get("always") or []
    if not isinstance(always, (list, tuple)) or not all(isinstance(a, str) and a for a in always):
        raise ConfigError(f"sweep.leaders.always: expected a list of strategy names; got {always!r}")
    extra = leaders.get("seeds", [])
    if isinstance(extra, int) and not isinstance(extra, bool):
        if not len(seeds) <= extra <= MAX_SEEDS:
            raise ConfigError(
                f"sweep.leaders.seeds: a count is the leaders' total number of seeds, in "
                f"[{len(seeds)} (sweep.seeds), {MAX_SEEDS}]; got {extra!r}"
            )
        pool = (s for s in range(MAX_SEEDS * 2) if s not in set(seeds))
        extra = [next(pool) for _ in range(extra - len(seeds))]
    if not isinstance(extra, (list, tuple)) or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in extra
    ):
        raise ConfigError(f"sweep.leaders.seeds: expected a count or a list of seeds in [0, 2**32); got {extra!r}")
    if set(extra) & set(seeds) or len(set(extra)) != len(extra):
        raise ConfigError(
            f"sweep.leaders.seeds: the extra seeds must be distinct and not in sweep.seeds "
            f"{seeds!r}; got {list(extra)!r}"
        )
    if not extra or (not top and not always):
        return {}
    return {"top": int(top), "seeds": [int(s) for s in extra], "always": list(always)}


# ------------------------------------------------------------------------------- search space


def flatten_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested or dotted keys → ``{"a.b.c": spec}``. A leaf is a mapping with one of
    :data:`SPACE_KINDS` as its only key, a list (shorthand for a grid) or a scalar (a constant)."""
    out: dict[str, Any] = {}
    for k, v in (space or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and not (set(v) & set(SPACE_KINDS)):
            out.update(flatten_space(v, key + "."))
        else:
            out[key] = v
    return out


def parse_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: {grid: [...]}|{choice: [...]}|{uniform: [a, b]}|{loguniform: [a, b]}}`` → Tune
    search-space objects (``tune.grid_search`` dicts and ``Domain`` objects); a plain list is a
    grid, a scalar a constant. Errors name ``sweep.space.<key>`` and what was expected."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, spec in flatten_space(space).items():
        where = f"sweep.space.{key}"
        if isinstance(spec, (list, tuple)):
            spec = {"grid": list(spec)}
        if not isinstance(spec, Mapping):
            out[key] = spec
            continue
        kinds = [k for k in spec if k in SPACE_KINDS]
        if len(spec) != 1 or len(kinds) != 1:
            raise ConfigError(
                f"{where}: expected exactly one of {', '.join(SPACE_KINDS)} "
                f"(e.g. {{grid: [0.5, 1.0]}}); got {dict(spec)!r}"
            )
        kind, values = kinds[0], spec[kinds[0]]
        if kind in ("grid", "choice"):
            if key in ("strategy", "strategy.name") and values in ("all", ["all"]):
                values = strategy_names()
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"{where}.{kind}: expected a non-empty list of values; got {values!r}")
            out[key] = tune.grid_search(list(values)) if kind == "grid" else tune.choice(list(values))
        else:
            if (
                not isinstance(values, (list, tuple))
                or len(values) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)
            ):
                raise ConfigError(f"{where}.{kind}: expected [low, high] (two numbers); got {values!r}")
            lo, hi = float(values[0]), float(values[1])
            if not lo < hi:
                raise ConfigError(f"{where}.{kind}: expected low < high; got {values!r}")
            if kind == "loguniform" and lo <= 0:
                raise ConfigError(f"{where}.loguniform: both bounds must be > 0; got {values!r}")
            out[key] = tune.uniform(lo, hi) if kind == "uniform" else tune.loguniform(lo, hi)
    return out


def search_domains(space: Mapping[str, Any]) -> dict[str, Any]:
    """The space as a search algorithm samples it: grids become choices (a searcher picks values,
    it does not enumerate them), other domains and constants stay."""
    from ray import tune

    out = {}
    for k, v in parse_space(space).items():
        out[k] = tune.choice(list(v["grid_search"])) if isinstance(v, dict) and "grid_search" in v else v
    return out


def expand_points(domains: Mapping[str, Any], num_samples: int = 1, sample_seed: int = 0) -> list[dict[str, Any]]:
    """Every point of the space: the product of the grids, times ``num_samples`` draws of the
    random dimensions (drawn here, seeded by ``sample_seed``, so that every point runs with every
    seed of the sweep). Without random dimensions ``num_samples`` is ignored (repeating a grid
    point only repeats its trials)."""
    import numpy as np
    from ray.tune.search.sample import Domain

    grids = {k: v["grid_search"] for k, v in domains.items() if isinstance(v, dict) and "grid_search" in v}
    randoms = {k: v for k, v in domains.items() if isinstance(v, Domain)}
    consts = {k: v for k, v in domains.items() if k not in grids and k not in randoms}
    rng = np.random.default_rng(sample_seed)
    draws = [
        {k: plain_value(d.sample(random_state=rng)) for k, d in randoms.items()}
        for _ in range(num_samples if randoms else 1)
    ]
    points = []
    for draw in draws:
        for combo in itertools.product(*grids.values()) if grids else [()]:
            p = dict(consts)
            p.update(dict(zip(grids, combo)))
            p.update(draw)
            points.append({k: p[k] for k in domains})  # keep the space's key order
    return points


def plain_value(v: Any) -> Any:
    """numpy scalars → Python scalars (JSON, MLflow tags, OmegaConf)."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return v
    return v
