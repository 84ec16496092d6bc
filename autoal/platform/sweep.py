"""Sweeps and ablations on Ray Tune, tracked in MLflow (DESIGN.md §4-5).

One trial = one AL run; the objective is its AUBC. The pieces, from config to results:

- :class:`SweepSpec` — the ``sweep:`` section of a config (see ``conf/sweep/base.yaml``): a search
  ``space`` of config keys (``grid``/``choice``/``uniform``/``loguniform``), optional named
  ``arms`` (config deltas: ablations), ``fixed`` deltas for every trial, paired ``seeds``, and
  the Tune settings (``max_concurrent``, ``max_failures``, ``storage_path``, ``resume``, ...).
- :func:`parse_space` turns the space into Tune search-space objects; :func:`expand_points`
  samples the random ones in the driver (seeded, ``num_samples`` draws) and crosses them with
  the grids, so that every point runs with *every* seed (paired seeds for the report's tests).
- :func:`build_arms` resolves every point (and named arm) into a full, validated run config —
  before Ray starts, so a misspelt key fails in a second, not after the first trial.
- :func:`plan_resources` declares every nested resource of a trial: Ray scorer actors are
  children of the trial and go into its placement group; Ray Train workers (Train V2) reserve a
  placement group of their own outside the trial's, so they are budgeted by capping the number
  of concurrent trials instead (otherwise two trials on 2 CPUs each hold a CPU and wait forever
  for a worker's).
- :func:`trial_fn` is the Tune function trainable: it composes the trial's config, runs
  :class:`~autoal.loop.ActiveLearningLoop` with an MLflow child run (tagged with the sweep id,
  ablation, arm, seed, data set, git sha and autoal version) and reports every round to Tune
  (``tune.report``, with a checkpoint of the run's state), so that the MLflow step and the Tune
  iteration are both the AL round. A retried trial (``max_failures``) resumes from its last
  round and continues the same MLflow run.
- :func:`run_sweep` is the driver: creates the MLflow experiment and the sweep's parent run once,
  before any trial starts; builds (or, with ``resume``, restores with ``Tuner.restore``) the
  Tuner; shows progress; returns a :class:`SweepResult` with per-trial and per-arm summaries.

MLflow with a SQLite store: every tracking call of a trial holds an exclusive lock on
``<db>.lock`` beside the database (one writer per SQLite file) and is retried when SQLite still
reports "database is locked". On a cluster use an ``mlflow server`` (``tracking.uri=http://...``).
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import itertools
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from autoal.errors import AutoALError, ConfigError
from autoal.tracking import SerializedTracker, absolute_tracking_uri, call_serialized, sqlite_lock_path

SPACE_KINDS = ("grid", "choice", "uniform", "loguniform")
#: the sections of a run config; a space/arm key without a dot naming one of them selects a
#: config-group option (``strategy: autoal`` = the composed ``conf/strategy/autoal.yaml``)
CONFIG_SECTIONS = ("dataset", "model", "train", "al", "strategy", "tracking", "scoring", "runtime")
META_FILE = "sweep_meta.json"
ROLE_TAG = "autoal_role"  # "sweep" on the parent run, "trial" on a child run

ComposeFn = Callable[[list[str]], dict]


# ------------------------------------------------------------------------------------ the spec

@dataclass
class SweepSpec:
    """The ``sweep:`` config section. Every key is documented in ``conf/sweep/base.yaml``."""

    name: str = "sweep"
    space: dict[str, Any] = field(default_factory=dict)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    num_samples: int = 1
    sample_seed: int = 0
    ablation: str | None = None
    reference: str | None = None
    max_concurrent: int = 0
    max_failures: int = 2
    storage_path: str = "ray_results"
    resume: Any = False
    resources_per_trial: dict[str, Any] | None = None
    checkpoint: bool = True
    report: bool = True
    report_dir: str | None = None
    address: str = "auto"
    num_cpus: int = 0
    progress_interval_s: float = 15.0
    fault_once_marker: str | None = None  # test only: the first trial to reach the round crashes once
    fault_once_round: int = 1             # test only

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "SweepSpec":
        d = dict(d or {})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in d if k not in fields]
        if unknown:
            raise ConfigError(f"sweep.{unknown[0]}: unknown sweep key; valid keys: {', '.join(sorted(fields))}")
        spec = cls(**{k: v for k, v in d.items()})
        spec.validate()
        return spec

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\ "):
            raise ConfigError(f"sweep.name: expected a non-empty name without '/', '\\' or spaces; got {self.name!r}")
        if isinstance(self.seeds, int) and not isinstance(self.seeds, bool):
            self.seeds = list(range(int(self.seeds)))
        if not isinstance(self.seeds, (list, tuple)) or not self.seeds:
            raise ConfigError(f"sweep.seeds: expected a non-empty list of integers (or a count); got {self.seeds!r}")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int):
                raise ConfigError(f"sweep.seeds: expected integers; got {s!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"sweep.seeds: duplicate seeds in {self.seeds!r}")
        self.seeds = [int(s) for s in self.seeds]
        for key, lo in (("num_samples", 1), ("max_failures", -1), ("max_concurrent", 0), ("num_cpus", 0),
                        ("fault_once_round", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"sweep.{key}: expected an integer >= {lo}; got {v!r}")
        for key in ("space", "arms", "fixed"):
            v = getattr(self, key)
            if v is None:
                setattr(self, key, {})
            elif not isinstance(v, Mapping):
                raise ConfigError(f"sweep.{key}: expected a mapping; got {type(v).__name__}")
        for arm, delta in self.arms.items():
            if not isinstance(delta, Mapping):
                raise ConfigError(f"sweep.arms.{arm}: expected a mapping of config keys to values "
                                  f"(e.g. {{strategy.params.lpm: false}}); got {delta!r}")
        if self.reference is not None and not isinstance(self.reference, str):
            raise ConfigError(f"sweep.reference: expected an arm name; got {self.reference!r}")
        if not isinstance(self.resume, (bool, str)):
            raise ConfigError(f"sweep.resume: expected false, true (the latest run of this sweep) or a sweep id; "
                              f"got {self.resume!r}")
        if self.resources_per_trial is not None:
            _trial_bundle(self.resources_per_trial)  # validates
        if not isinstance(self.address, str) or not self.address:
            raise ConfigError(f"sweep.address: expected auto, local or a Ray address (host:port); got {self.address!r}")
        if isinstance(self.progress_interval_s, bool) or not isinstance(self.progress_interval_s, (int, float)) \
                or self.progress_interval_s < 0:
            raise ConfigError(f"sweep.progress_interval_s: expected seconds >= 0; got {self.progress_interval_s!r}")
        if not isinstance(self.storage_path, str) or not self.storage_path:
            raise ConfigError(f"sweep.storage_path: expected a folder; got {self.storage_path!r}")
        parse_space(self.space)  # validates

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
            raise ConfigError(f"{where}: expected exactly one of {', '.join(SPACE_KINDS)} "
                              f"(e.g. {{grid: [0.5, 1.0]}}); got {dict(spec)!r}")
        kind, values = kinds[0], spec[kinds[0]]
        if kind in ("grid", "choice"):
            if key in ("strategy", "strategy.name") and values in ("all", ["all"]):
                from autoal.strategies import strategy_names

                values = strategy_names()
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"{where}.{kind}: expected a non-empty list of values; got {values!r}")
            out[key] = tune.grid_search(list(values)) if kind == "grid" else tune.choice(list(values))
        else:
            if (not isinstance(values, (list, tuple)) or len(values) != 2
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)):
                raise ConfigError(f"{where}.{kind}: expected [low, high] (two numbers); got {values!r}")
            lo, hi = float(values[0]), float(values[1])
            if not lo < hi:
                raise ConfigError(f"{where}.{kind}: expected low < high; got {values!r}")
            if kind == "loguniform" and lo <= 0:
                raise ConfigError(f"{where}.loguniform: both bounds must be > 0; got {values!r}")
            out[key] = tune.uniform(lo, hi) if kind == "uniform" else tune.loguniform(lo, hi)
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
    draws = [{k: _py(d.sample(random_state=rng)) for k, d in randoms.items()}
             for _ in range(num_samples if randoms else 1)]
    points = []
    for draw in draws:
        for combo in itertools.product(*grids.values()) if grids else [()]:
            p = dict(consts)
            p.update(dict(zip(grids, combo)))
            p.update(draw)
            points.append({k: p[k] for k in domains})  # keep the space's key order
    return points


def _py(v: Any) -> Any:
    """numpy scalars → Python scalars (JSON, MLflow tags, OmegaConf)."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return v
    return v


# ------------------------------------------------------------------------------------- arms

@dataclass
class Arm:
    """One configuration of a sweep (a point of the space, crossed with a named arm); each arm
    runs once per seed."""

    label: str
    delta: dict[str, Any]
    config: dict[str, Any]


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "-".join(_fmt_value(x) for x in v)
    return str(v)


def point_label(point: Mapping[str, Any], varying: Sequence[str]) -> str:
    """``lam=0.5,tau=0.1`` from the keys that vary; a sweep over strategies alone gives the
    strategy's name (``margin``)."""
    keys = [k for k in point if k in varying]
    if not keys:
        return ""
    if len(keys) == 1 and keys[0] in ("strategy", "strategy.name"):
        return _fmt_value(point[keys[0]])
    shorts = [k.rsplit(".", 1)[-1] for k in keys]
    names = [s if shorts.count(s) == 1 else k for s, k in zip(shorts, keys)]
    return ",".join(f"{n}={_fmt_value(point[k])}" for n, k in zip(names, keys))


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "strategy.params.lam", 0.5)``; the value replaces what was there."""
    parts = key.split(".")
    node = d
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = copy.deepcopy(value)


def _split_delta(delta: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Group selections (``strategy: autoal``) and dotted value overrides of a delta."""
    flat = {}
    for k, v in delta.items():
        if isinstance(v, Mapping) and "." not in k and k in CONFIG_SECTIONS:
            flat.update({f"{k}.{kk}": vv for kk, vv in flatten_space(v).items()})
        else:
            flat[k] = v
    groups = {k: v for k, v in flat.items() if "." not in k and k in CONFIG_SECTIONS and isinstance(v, str)}
    values = {k: v for k, v in flat.items() if k not in groups}
    for k in values:
        if "." not in k:
            raise ConfigError(f"sweep: {k!r} is not a config key; use a dotted key such as strategy.params.lam, "
                              f"or a config group ({', '.join(CONFIG_SECTIONS)}) with an option name")
    return groups, values


def resolve_groups(base: dict[str, Any], groups: Mapping[str, str], compose_fn: ComposeFn | None,
                   cache: dict | None = None) -> dict[str, Any]:
    """The base config with config-group options selected (``{"strategy": "autoal"}``): composed
    by ``compose_fn(["strategy=autoal", ...])`` (the pipelines pass Hydra's). Without a
    composer, or when ``conf/strategy/<name>.yaml`` does not exist, a strategy selection falls
    back to ``{name: <name>, params: {}}`` for any registered strategy."""
    if not groups:
        return copy.deepcopy(base)
    key = tuple(sorted(groups.items()))
    if cache is not None and key in cache:
        return copy.deepcopy(cache[key])
    out = None
    if compose_fn is not None:
        try:
            out = compose_fn([f"{g}={opt}" for g, opt in sorted(groups.items())])
            out.pop("sweep", None)
        except ConfigError:
            if set(groups) != {"strategy"}:
                raise
    if out is None:
        if set(groups) - {"strategy"}:
            raise ConfigError(f"sweep: selecting config-group options ({', '.join(sorted(groups))}) needs the "
                              "pipelines' config composer; use dotted keys instead")
        from autoal.strategies import strategy_names

        name = groups["strategy"]
        if name not in strategy_names():
            raise ConfigError(f"sweep: strategy {name!r} is unknown; valid choices: {', '.join(strategy_names())}")
        out = copy.deepcopy(base)
        out["strategy"] = {"name": name, "params": {}}
    if cache is not None:
        cache[key] = copy.deepcopy(out)
    return out


def build_arms(spec: SweepSpec, base: dict[str, Any], compose_fn: ComposeFn | None = None) -> list[Arm]:
    """Every arm of the sweep, each with its full run config validated by
    :meth:`RunConfig.from_dict` (seed set to the sweep's first seed for validation)."""
    from autoal.config import RunConfig

    domains = parse_space(spec.space)
    points = expand_points(domains, spec.num_samples, spec.sample_seed)
    varying = [k for k, d in domains.items() if not (isinstance(d, dict) and len(d.get("grid_search", [0, 0])) < 2)]
    named = list(spec.arms.items()) or [("", {})]
    arms: list[Arm] = []
    cache: dict = {}
    seen: dict[str, int] = {}
    for (arm_name, arm_delta), point in itertools.product(named, points):
        delta: dict[str, Any] = {}
        for part in (spec.fixed, arm_delta, point):
            groups, values = _split_delta(part)
            delta.update(groups)
            delta.update(values)
        groups, values = _split_delta(delta)
        cfg = resolve_groups(base, groups, compose_fn, cache)
        for k, v in values.items():
            set_dotted(cfg, k, v)
        label = (",".join(x for x in (str(arm_name), point_label(point, varying)) if x)
                 or str((cfg.get("strategy") or {}).get("name") or spec.name))
        if label in seen:
            seen[label] += 1
            label = f"{label}#{seen[label]}"
        else:
            seen[label] = 0
        probe = copy.deepcopy(cfg)
        set_dotted(probe, "al.seed", spec.seeds[0])
        try:
            rc = RunConfig.from_dict(probe)
            from autoal.strategies import build_strategy

            build_strategy(rc.strategy.name, **rc.strategy.params)  # unknown names / parameters, now
        except ConfigError as e:
            raise ConfigError(f"sweep arm {label!r}: {e}") from None
        arms.append(Arm(label=label, delta={k: _py(v) for k, v in delta.items()}, config=cfg))
    labels = [a.label for a in arms]
    if spec.reference is not None and spec.reference not in labels and spec.reference in spec.arms:
        # a named arm crossed with a space: its first point is the reference
        spec.reference = next(x for x in labels if x.startswith(f"{spec.reference},"))
    if spec.reference is not None and spec.reference not in labels:
        raise ConfigError(f"sweep.reference: {spec.reference!r} is not an arm of this sweep; arms: "
                          f"{', '.join(a.label for a in arms)}")
    return arms


# --------------------------------------------------------------------------------- resources

def _trial_bundle(res: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(res, Mapping):
        raise ConfigError(f"sweep.resources_per_trial: expected a mapping like {{CPU: 1, GPU: 0}}; got {res!r}")
    out: dict[str, float] = {}
    for k, v in res.items():
        name = {"cpu": "CPU", "gpu": "GPU"}.get(str(k).lower(), str(k))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"sweep.resources_per_trial.{k}: expected a number >= 0; got {v!r}")
        if v > 0:
            out[name] = float(v)
    return out


@dataclass
class ResourcePlan:
    """A trial's placement-group bundles (the trial itself first, then its Ray scorer actors),
    what it reserves outside its placement group (Ray Train workers), and the number of trials
    that may run at once (0 = as many as the placement groups allow)."""

    bundles: list[dict[str, float]]
    outside: dict[str, float]
    max_concurrent: int

    def placement_group_factory(self):
        from ray import tune

        return tune.PlacementGroupFactory(self.bundles, strategy="PACK")

    @property
    def per_trial(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for b in [*self.bundles, self.outside]:
            for k, v in b.items():
                total[k] = total.get(k, 0.0) + v
        return total


def _train_workers(cfg: Mapping[str, Any]) -> int:
    """Ray Train workers a run starts (AutoAL's search on ``ray_train``), 0 if none."""
    for section in (cfg.get("search") or {}, (cfg.get("strategy") or {}).get("params") or {}):
        if isinstance(section, Mapping) and section.get("executor") == "ray_train":
            return int(section.get("num_workers", 2) or 2)
    return 0


def plan_resources(cfg: Mapping[str, Any], resources_per_trial: Mapping[str, Any] | None,
                   cluster: Mapping[str, float], max_concurrent: int = 0) -> ResourcePlan:
    """Declare every nested resource of one trial (DESIGN.md §5).

    - The trial: ``resources_per_trial`` (default: 1 CPU, and 1 GPU when the cluster has GPUs).
    - Ray scorer actors (``scoring.executor=ray``) are created by the trial and captured by its
      placement group: one bundle per actor, ``gpus_per_actor`` GPUs each when the trial has a
      GPU, else 1 CPU.
    - ENSvarR's ensemble members are Ray tasks of the trial: one more bundle (``ray_num_cpus``,
      and half the trial's GPU when it has one).
    - Ray Train workers (search ``executor=ray_train``) reserve their own placement group outside
      the trial's (Train V2), so they are budgeted by capping the concurrent trials: at most
      ``cluster CPUs // (trial CPUs + workers)`` (likewise GPUs) run at once.
    """
    has_gpu = float(cluster.get("GPU", 0) or 0) > 0
    head = _trial_bundle(resources_per_trial) if resources_per_trial else {"CPU": 1.0, **({"GPU": 1.0} if has_gpu else {})}
    if not head:
        head = {"CPU": 1.0}
    bundles = [head]
    scoring = cfg.get("scoring") or {}
    if scoring.get("executor") == "ray":
        g = float(scoring.get("gpus_per_actor", 0) or 0)
        actor = {"GPU": g} if head.get("GPU", 0) > 0 and g > 0 else {"CPU": float(scoring.get("num_cpus", 1) or 1)}
        bundles += [dict(actor) for _ in range(int(scoring.get("num_actors", 1)))]
    strategy = cfg.get("strategy") or {}
    if strategy.get("name") == "ens_var_r":
        # ENSvarR trains its members as Ray tasks (ray_num_cpus / ray_num_gpus each), children of
        # the trial: one bundle where they run one after another, with half the trial's GPU
        params = strategy.get("params") or {}
        task = {"CPU": float(params.get("ray_num_cpus", 1.0) or 0)}
        if head.get("GPU", 0) > 0:
            share = float(params.get("ray_num_gpus") or head["GPU"] / 2)
            head["GPU"] = max(head["GPU"] - share, 0.0) or head["GPU"]
            task["GPU"] = share
        bundles.append({k: v for k, v in task.items() if v > 0} or {"CPU": 1.0})
    n_workers = _train_workers(cfg)
    outside: dict[str, float] = {}
    if n_workers:
        outside = {"CPU": float(n_workers)}
        if head.get("GPU", 0) > 0:
            outside["GPU"] = float(n_workers)
    limit = int(max_concurrent or 0)
    if outside:
        per = {k: sum(b.get(k, 0.0) for b in bundles) + outside.get(k, 0.0) for k in ("CPU", "GPU")}
        caps = [int(float(cluster.get(k, 0) or 0) // v) for k, v in per.items() if v > 0 and cluster.get(k)]
        cap = max(1, min(caps)) if caps else 1
        limit = min(limit, cap) if limit else cap
    return ResourcePlan(bundles=bundles, outside=outside, max_concurrent=limit)


def _abs_path(p: str | None) -> str | None:
    if p is None or "://" in str(p):
        return p
    return str(Path(p).expanduser().resolve())


def absolutize(cfg: dict[str, Any]) -> dict[str, Any]:
    """Make the run config's paths absolute (store, run folders, data), for trials."""
    cfg = copy.deepcopy(cfg)
    tr = cfg.setdefault("tracking", {})
    if tr.get("uri"):
        tr["uri"] = absolute_tracking_uri(tr["uri"])
    rt = cfg.setdefault("runtime", {})
    rt["output_dir"] = _abs_path(rt.get("output_dir", "runs"))
    ds = cfg.get("dataset") or {}
    for k in ("root", "path"):
        if ds.get(k):
            ds[k] = _abs_path(ds[k])
    return cfg


# ---------------------------------------------------------------------------- the trainable

@dataclass
class TrialContext:
    """What every trial needs besides its (arm, seed): shipped once through the object store
    (``tune.with_parameters``)."""

    sweep_id: str
    sweep_name: str
    ablation: str | None
    parent_run_id: str | None
    runs_dir: str
    arms: dict[str, dict[str, Any]]
    checkpoint: bool = True
    trial_cpus: float = 1.0
    fault_once_marker: str | None = None
    fault_once_round: int = 1


def trial_config(ctx: TrialContext, arm: str, seed: int) -> dict[str, Any]:
    """The full run config of one trial."""
    if arm not in ctx.arms:
        raise ConfigError(f"sweep: unknown arm {arm!r}; arms: {', '.join(ctx.arms)}")
    cfg = copy.deepcopy(ctx.arms[arm])
    set_dotted(cfg, "al.seed", int(seed))
    rt = cfg.setdefault("runtime", {})
    rt["quiet"] = True
    rt["resume"] = True
    if not rt.get("num_threads"):
        rt["num_threads"] = max(1, int(ctx.trial_cpus))
    tr = cfg.setdefault("tracking", {})
    tr["run_name"] = f"{arm}-seed{seed}"
    return cfg


def _restore_from_checkpoint(run_dir: Path) -> int:
    """Copy Tune's latest checkpoint into ``run_dir`` when the folder has no state (the trial
    moved to another node); return the last round Tune has seen (-1 if none)."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return -1
    with ckpt.as_directory() as d:
        d = Path(d)
        meta = json.loads((d / "tune_round.json").read_text()) if (d / "tune_round.json").exists() else {}
        if not (run_dir / "state.json").exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            for item in d.iterdir():
                if item.name == "tune_round.json":
                    continue
                dest = run_dir / item.name
                if item.is_dir():
                    shutil.copytree(item, dest, dirs_exist_ok=True)
                else:
                    shutil.copy2(item, dest)
    return int(meta.get("round", -1))


def _checkpoint_of(run_dir: Path, round_: int):
    """A Tune checkpoint holding the run's state after ``round_`` (state, strategy state,
    task model, per-round picks)."""
    from ray import tune

    tmp = Path(tempfile.mkdtemp(prefix="autoal-ckpt-"))
    for item in run_dir.iterdir():
        if item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, tmp / item.name)
        elif item.suffix in (".json", ".pt"):
            shutil.copy2(item, tmp / item.name)
    (tmp / "tune_round.json").write_text(json.dumps({"round": round_}))
    return tune.Checkpoint.from_directory(str(tmp)), tmp


def trial_fn(config: dict[str, Any], ctx: TrialContext) -> None:
    """The Tune function trainable: one AL run, reported round by round."""
    from ray import tune

    from autoal import __version__
    from autoal.config import RunConfig
    from autoal.device import resolve_device
    from autoal.loop import ActiveLearningLoop
    from autoal.metrics import aubc
    from autoal.state import RunState
    from autoal.tracking import MLflowTracker, NullTracker, git_sha

    arm, seed = config["arm"], int(config["seed"])
    cfg = RunConfig.from_dict(trial_config(ctx, arm, seed))
    trial_id = tune.get_context().get_trial_id() or uuid.uuid4().hex[:8]
    run_dir = Path(ctx.runs_dir) / f"{_safe(arm)}-seed{seed}-{trial_id}"
    reported_upto = _restore_from_checkpoint(run_dir)
    state = RunState.load(run_dir) if (run_dir / "state.json").exists() else None
    history: list[dict[str, Any]] = [dict(h) for h in state.history] if state is not None else []

    tags = {"sweep_id": ctx.sweep_id, "sweep": ctx.sweep_name, "ablation": ctx.ablation or "none",
            "arm": arm, "seed": str(seed), "trial_id": trial_id, "dataset": cfg.dataset.name,
            "strategy": cfg.strategy.name, "git_sha": git_sha(), "autoal_version": __version__, ROLE_TAG: "trial",
            "device": str(resolve_device(cfg.runtime.device)),
            **{str(k): str(v) for k, v in cfg.tracking.tags.items()}}
    if cfg.tracking.enabled:
        lock = sqlite_lock_path(cfg.tracking.uri)
        inner = call_serialized(lock, lambda: MLflowTracker(cfg.tracking.uri, cfg.tracking.experiment,
                                                            run_name=cfg.tracking.run_name, tags=tags,
                                                            parent_run_id=ctx.parent_run_id))
        tracker: Any = SerializedTracker(inner, lock)
    else:
        tracker = NullTracker()

    reported_upto_box = [reported_upto]

    def report(record: dict[str, Any]) -> None:
        """One Tune result per AL round (with a checkpoint of the run's state): the round's
        metrics and the AUBC of the curve up to it (the run's AUBC at its last round)."""
        r = int(record["round"])
        if r <= reported_upto_box[0]:
            return
        if not any(h["round"] == r for h in history):
            history.append(dict(record))
        upto = sorted((h for h in history if h["round"] <= r), key=lambda h: h["round"])
        metrics = {k: float(v) for k, v in record.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
        metrics.update({"round": r, "aubc": aubc([h["labels"] for h in upto], [h["accuracy"] for h in upto]),
                        "rounds_done": len(upto)})
        if r == cfg.al.rounds:
            metrics["final_accuracy"] = float(record["accuracy"])
        ckpt, tmp = _checkpoint_of(run_dir, r) if ctx.checkpoint else (None, None)
        try:
            tune.report(metrics, checkpoint=ckpt)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        reported_upto_box[0] = r
        _maybe_fault(ctx, r)

    # rounds the run's state holds but Tune never saw (a crash between the two writes)
    for h in history:
        if h["round"] > reported_upto_box[0]:
            report(h)
    loop = ActiveLearningLoop(cfg, tracker=tracker, callbacks=[report], run_dir=run_dir)
    loop.run()


def _maybe_fault(ctx: TrialContext, round_: int) -> None:
    """Test only (``sweep.fault_once_marker``): the first trial to finish round
    ``fault_once_round`` creates the marker file and crashes; every later attempt finds the
    marker and goes on."""
    if not ctx.fault_once_marker or round_ != ctx.fault_once_round:
        return
    try:
        fd = os.open(ctx.fault_once_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    raise RuntimeError(f"injected test fault after round {round_} (sweep.fault_once_marker={ctx.fault_once_marker})")


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in label)[:80]


# --------------------------------------------------------------------------------- progress

def _tune_callback_base():
    from ray.tune import Callback

    return Callback


class _ProgressMixin:
    def __init__(self, sweep_id: str, total: int, interval_s: float, out: Callable[[str], None]) -> None:
        self.sweep_id = sweep_id
        self.total = total
        self.interval_s = float(interval_s)
        self.out = out
        self.t0 = time.time()
        self._last = 0.0
        self._last_line = ""

    def line(self, trials: Sequence[Any]) -> str:
        counts = {"TERMINATED": 0, "RUNNING": 0, "PENDING": 0, "ERROR": 0, "PAUSED": 0}
        best = None
        for t in trials:
            res = t.last_result or {}
            status = t.status
            if status == "TERMINATED" and res.get("final_accuracy") is None:
                status = "PAUSED"  # stopped before its last round (Ctrl-C): it resumes
            counts[status] = counts.get(status, 0) + 1
            if status == "TERMINATED" and "aubc" in res:
                if best is None or res["aubc"] > best[0]:
                    best = (res["aubc"], t.config.get("arm"), t.config.get("seed"))
        retried = sum(1 for t in trials if getattr(t, "num_failures", 0))
        el = int(time.time() - self.t0)
        parts = [f"[{self.sweep_id}] {counts['TERMINATED']}/{max(self.total, len(trials))} done",
                 f"{counts['RUNNING']} running", f"{counts['PENDING'] + counts['PAUSED']} pending"]
        if counts["ERROR"]:
            parts.append(f"{counts['ERROR']} failed")
        if retried:
            parts.append(f"{retried} retried")
        parts.append(f"best AUBC {best[0]:.4f} ({best[1]}, seed {best[2]})" if best else "best AUBC -")
        parts.append(f"{el // 60}:{el % 60:02d}")
        return " · ".join(parts)

    def emit(self, trials: Sequence[Any], force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < self.interval_s:
            return
        text = self.line(trials)
        if force or text != self._last_line:
            self.out(text)
        self._last, self._last_line = now, text


def make_progress_callback(sweep_id: str, total: int, interval_s: float, out: Callable[[str], None] = print):
    """A Tune callback that prints trials done / running / pending (and failed, retried) with the
    best AUBC so far: on every finished or failed trial and every ``interval_s`` seconds."""
    Callback = _tune_callback_base()

    class SweepProgress(_ProgressMixin, Callback):
        def __init__(self) -> None:
            _ProgressMixin.__init__(self, sweep_id, total, interval_s, out)

        def on_step_end(self, iteration, trials, **info):
            self.emit(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.emit(trials, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.emit(trials, force=True)

        def on_experiment_end(self, trials, **info):
            self.emit(trials, force=True)

        def on_trial_recover(self, iteration, trials, trial, **info):
            self.out(f"[{sweep_id}] trial {trial.config.get('arm')} seed {trial.config.get('seed')} failed; "
                     f"retrying from its last round (attempt {getattr(trial, 'num_failures', 0) + 1})")

    return SweepProgress()


# ------------------------------------------------------------------------------------ driver

@dataclass
class SweepResult:
    sweep_id: str
    name: str
    experiment_path: str
    parent_run_id: str | None
    tracking_uri: str | None
    trials: list[dict[str, Any]]
    arms: list[dict[str, Any]]
    interrupted: bool
    seconds: float
    report_dir: str | None = None
    best: dict[str, Any] | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["status"] == "ERROR"]

    @property
    def complete(self) -> bool:
        return all(t["status"] == "TERMINATED" for t in self.trials) and not self.interrupted


def new_sweep_id(name: str) -> str:
    return f"{name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def _fs(path: str):
    import pyarrow.fs as pafs

    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def write_meta(exp_path: str, meta: dict[str, Any]) -> None:
    fs, p = _fs(_join(exp_path, META_FILE))
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(json.dumps(meta, indent=1, sort_keys=True, default=str).encode())


def read_meta(exp_path: str) -> dict[str, Any] | None:
    import pyarrow.fs as pafs

    fs, p = _fs(_join(exp_path, META_FILE))
    if fs.get_file_info(p).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(p) as f:
        return json.loads(f.read().decode())


def find_resumable(storage_path: str, name: str, resume: Any) -> str:
    """The experiment folder to resume: ``resume`` = a sweep id (or a path), or true = the most
    recent sweep called ``name`` under ``storage_path``."""
    import pyarrow.fs as pafs

    if isinstance(resume, str) and resume not in ("true", "latest"):
        for cand in (resume, _join(storage_path, resume)):
            if read_meta(cand) is not None:
                return cand
        raise ConfigError(f"sweep.resume: no sweep {resume!r} under {storage_path} (expected {_join(storage_path, resume)}/"
                          f"{META_FILE})")
    fs, root = _fs(storage_path)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)) if root else []
    found = []
    for info in infos:
        if info.type == pafs.FileType.Directory and info.base_name.startswith(f"{name}-"):
            meta = read_meta(_join(storage_path, info.base_name))
            if meta is not None and meta.get("name") == name:
                found.append((meta.get("created", 0), _join(storage_path, info.base_name)))
    if not found:
        raise ConfigError(f"sweep.resume: no earlier run of sweep {name!r} under {storage_path} to resume; "
                          f"run it without sweep.resume first")
    return max(found)[1]


def _parent_run(uri: str, experiment: str, sweep_id: str, spec: SweepSpec, base: dict[str, Any],
                arms: list[Arm], meta_parent: str | None) -> str:
    """Create (or, on resume, reopen) the sweep's parent run; return its id."""
    from mlflow.tracking import MlflowClient

    from autoal import __version__
    from autoal.tracking import ensure_experiment, flatten, git_sha

    lock = sqlite_lock_path(uri)

    def go() -> str:
        exp_id = ensure_experiment(uri, experiment)
        client = MlflowClient(tracking_uri=uri)
        if meta_parent:
            try:
                client.update_run(meta_parent, status="RUNNING")
                return meta_parent
            except Exception:  # noqa: BLE001 - the store was reset: start a new parent run
                pass
        tags = {"sweep_id": sweep_id, "sweep": spec.name, "ablation": spec.ablation or "none", ROLE_TAG: "sweep",
                "dataset": str((base.get("dataset") or {}).get("name")), "git_sha": git_sha(),
                "autoal_version": __version__, "arms": json.dumps([a.label for a in arms])[:5000],
                "seeds": json.dumps(spec.seeds), "reference": spec.reference or ""}
        run = client.create_run(exp_id, run_name=sweep_id, tags=tags)
        from mlflow.entities import Param

        params = {f"sweep.{k}": json.dumps(v, default=str) if isinstance(v, (dict, list)) else v
                  for k, v in spec.to_dict().items() if k not in ("fault_once_marker", "fault_once_round")}
        params.update({k: v for k, v in flatten(base).items()})
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(run.info.run_id, params=items[i:i + 100])
        return run.info.run_id

    return call_serialized(lock, go)


def run_sweep(spec: SweepSpec, base: dict[str, Any], compose_fn: ComposeFn | None = None, *,
              out: Callable[[str], None] = print, resume: Any = None) -> SweepResult:
    """Run (or resume) a sweep on the Ray instance this process is connected to (see
    :func:`ray_session`). ``base`` is the run config (dict) the arms start from."""
    import ray
    from ray import tune

    t_start = time.time()
    # a snapshot of the experiment state per reported round is intended (restore is exact)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own console output off (verbose=0 alone still prints a banner): SweepProgress reports
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    resume = spec.resume if resume is None else resume
    storage = _abs_path(spec.storage_path)
    assert storage is not None
    if resume:
        exp_path = find_resumable(storage, spec.name, resume)
        meta = read_meta(exp_path) or {}
        # the saved spec and arms are authoritative: the sweep continues exactly as it started
        saved = SweepSpec.from_dict({**meta["spec"], "resume": False})
        for key in ("max_failures", "max_concurrent", "progress_interval_s", "report", "report_dir"):
            setattr(saved, key, getattr(spec, key))
        spec = saved
        sweep_id = meta["sweep_id"]
        arms = [Arm(label=a["label"], delta=a["delta"], config=a["config"]) for a in meta["arms"]]
        base = meta["base"]
        out(f"[{sweep_id}] resuming from {exp_path}: finished trials are kept, unfinished and failed ones continue")
    else:
        base = absolutize(base)
        arms = build_arms(spec, base, compose_fn)
        arms = [Arm(a.label, a.delta, absolutize(a.config)) for a in arms]
        sweep_id = new_sweep_id(spec.name)
        exp_path = _join(storage, sweep_id)
        meta = {}

    tracking = base.get("tracking") or {}
    enabled = bool(tracking.get("enabled", True))
    uri = tracking.get("uri")
    experiment = tracking.get("experiment", "autoal")
    parent_run_id = None
    if enabled:
        from autoal.tracking import check_tracking_uri

        check_tracking_uri(uri)
        parent_run_id = _parent_run(uri, experiment, sweep_id, spec, base, arms, meta.get("parent_run_id"))
    runs_dir = str(Path((base.get("runtime") or {}).get("output_dir") or "runs") / "sweeps" / sweep_id)
    if not resume:
        meta = {"sweep_id": sweep_id, "name": spec.name, "created": time.time(), "spec": spec.to_dict(),
                "arms": [dataclasses.asdict(a) for a in arms], "base": base, "parent_run_id": parent_run_id,
                "runs_dir": runs_dir, "tracking_uri": uri if enabled else None, "experiment": experiment}
        write_meta(exp_path, meta)
    else:
        meta["parent_run_id"] = parent_run_id
        write_meta(exp_path, meta)

    cluster = ray.cluster_resources()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) > 1 and "://" not in storage:
        out(f"[{sweep_id}] note: sweep.storage_path={storage} is a local path on a cluster of {len(alive)} nodes; "
            "trials on other nodes can only checkpoint there if it is a shared mount (else use s3://..., gs://...)")
    plans = [plan_resources(a.config, spec.resources_per_trial, cluster, spec.max_concurrent) for a in arms]
    plan = max(plans, key=lambda p: (sum(p.per_trial.values()), len(p.bundles)))
    ctx = TrialContext(sweep_id=sweep_id, sweep_name=spec.name, ablation=spec.ablation, parent_run_id=parent_run_id,
                       runs_dir=runs_dir, arms={a.label: a.config for a in arms}, checkpoint=spec.checkpoint,
                       trial_cpus=plan.bundles[0].get("CPU", 1.0), fault_once_marker=spec.fault_once_marker,
                       fault_once_round=spec.fault_once_round)
    trainable = tune.with_resources(tune.with_parameters(trial_fn, ctx=ctx),
                                    lambda config: _plan_for(plans, arms, config).placement_group_factory())
    total = len(arms) * len(spec.seeds)
    progress = make_progress_callback(sweep_id, total, spec.progress_interval_s, out)
    bundles = " + ".join(_fmt_bundle(b) for b in plan.bundles)
    out(f"[{sweep_id}] {len(arms)} arm(s) x {len(spec.seeds)} seed(s) = {total} trials; per trial {bundles}"
        + (f" + {_fmt_bundle(plan.outside)} of Ray Train workers" if plan.outside else "")
        + (f"; at most {plan.max_concurrent} at once" if plan.max_concurrent else "")
        + f"; Ray has {_fmt_bundle(cluster)}")
    fit_ok = False
    try:
        if resume:
            tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True, resume_errored=True,
                                       param_space=_param_space(arms, spec))
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=_param_space(arms, spec),
                tune_config=tune.TuneConfig(metric="aubc", mode="max", max_concurrent_trials=plan.max_concurrent or None,
                                            reuse_actors=True),
                run_config=tune.RunConfig(
                    name=sweep_id, storage_path=storage, verbose=0, callbacks=[progress],
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
        if resume:
            _attach_callbacks(tuner, progress, spec)
        grid = tuner.fit()
        fit_ok = True
    finally:
        if enabled and not fit_ok:
            _end_parent(uri, parent_run_id, "KILLED")
    trials = _trial_rows(grid)
    seen = {(t["arm"], t["seed"]) for t in trials}
    trials += [{"trial": "", "arm": a.label, "failures": 0, "seed": s, "status": "PENDING", "aubc": None,
                "final_accuracy": None, "rounds": None, "labels": None, "error": None}
               for a in arms for s in spec.seeds if (a.label, s) not in seen]
    trials.sort(key=lambda t: (str(t["arm"]), t["seed"] if t["seed"] is not None else -1))
    interrupted = any(t["status"] not in ("TERMINATED", "ERROR") for t in trials)
    arms_rows = summarize_arms(trials, [a.label for a in arms])
    best = max((t for t in trials if t["status"] == "TERMINATED" and t.get("aubc") is not None),
               key=lambda t: t["aubc"], default=None)
    result = SweepResult(sweep_id=sweep_id, name=spec.name, experiment_path=exp_path, parent_run_id=parent_run_id,
                         tracking_uri=uri if enabled else None, trials=trials, arms=arms_rows, interrupted=interrupted,
                         seconds=time.time() - t_start, best=best)
    if enabled:
        _finish_parent(uri, parent_run_id, result)
        if spec.report and not interrupted:
            try:
                from autoal.platform.report import write_report

                rep_dir = spec.report_dir or str(Path(runs_dir).parent.parent / "reports" / sweep_id)
                rep = write_report(uri, experiment, sweep_id, rep_dir, reference=spec.reference)
                result.report_dir = str(rep.out_dir)
            except Exception as e:  # noqa: BLE001 - the sweep's results stand without the report
                out(f"[{sweep_id}] report failed: {type(e).__name__}: {e} (run pipelines/report.py sweep_id={sweep_id})")
    return result


def _plan_for(plans: list[ResourcePlan], arms: list[Arm], config: Mapping[str, Any]) -> ResourcePlan:
    for a, p in zip(arms, plans):
        if a.label == config.get("arm"):
            return p
    return plans[0]


def _attach_callbacks(tuner: Any, progress: Any, spec: SweepSpec) -> None:
    """A restored Tuner keeps its saved RunConfig; put the progress callback and the current
    failure budget on it."""
    internal = getattr(tuner, "_local_tuner", None)
    rc = getattr(internal, "_run_config", None) if internal is not None else None
    if rc is None:
        return
    from ray import tune

    rc.callbacks = [progress]
    rc.verbose = 0
    rc.failure_config = tune.FailureConfig(max_failures=spec.max_failures)


def _param_space(arms: list[Arm], spec: SweepSpec) -> dict[str, Any]:
    from ray import tune

    return {"arm": tune.grid_search([a.label for a in arms]), "seed": tune.grid_search(list(spec.seeds))}


def _fmt_bundle(b: Mapping[str, float]) -> str:
    keys = [k for k in ("CPU", "GPU") if k in b] + sorted(k for k in b if k not in ("CPU", "GPU") and
                                                           not k.startswith(("node:", "object_store", "memory", "accelerator")))
    return "{" + ", ".join(f"{k}: {b[k]:g}" for k in keys) + "}"


def _trial_rows(grid: Any) -> list[dict[str, Any]]:
    statuses: dict[str, tuple[str, int]] = {}
    for t in getattr(getattr(grid, "_experiment_analysis", None), "trials", None) or []:
        statuses[t.trial_id] = (t.status, int(getattr(t, "num_failures", 0) or 0))
    rows = []
    for r in grid:
        m = r.metrics or {}
        cfg = r.config or {}
        trial_id = str(m.get("trial_id") or (Path(r.path).name if r.path else ""))
        status, failures = statuses.get(trial_id, ("", 0))
        if status == "TERMINATED" and m.get("final_accuracy") is None:
            status = "UNFINISHED"  # stopped (Ctrl-C) before its last round
        elif status not in ("TERMINATED", "ERROR"):
            status = "ERROR" if r.error is not None else (
                "TERMINATED" if m.get("final_accuracy") is not None and not status else (status or "UNFINISHED"))
        rows.append({"trial": trial_id, "arm": cfg.get("arm"), "failures": failures,
                     "seed": cfg.get("seed"), "status": status, "aubc": m.get("aubc"),
                     "final_accuracy": m.get("final_accuracy"), "rounds": m.get("rounds_done"),
                     "labels": m.get("labels"), "error": (str(r.error).splitlines() or [""])[0][:200] if r.error else None})
    rows.sort(key=lambda t: (str(t["arm"]), t["seed"] if t["seed"] is not None else -1))
    return rows


def summarize_arms(trials: list[dict[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Mean ± std (over seeds) of AUBC and final accuracy per arm, finished trials only."""
    import numpy as np

    out = []
    for arm in order:
        done = [t for t in trials if t["arm"] == arm and t["status"] == "TERMINATED" and t["aubc"] is not None]
        a = np.asarray([t["aubc"] for t in done], dtype=float)
        f = np.asarray([t["final_accuracy"] for t in done], dtype=float)
        out.append({"arm": arm, "seeds": len(done),
                    "aubc_mean": float(a.mean()) if len(a) else None,
                    "aubc_std": float(a.std(ddof=1)) if len(a) > 1 else (0.0 if len(a) else None),
                    "final_acc_mean": float(f.mean()) if len(f) else None,
                    "final_acc_std": float(f.std(ddof=1)) if len(f) > 1 else (0.0 if len(f) else None)})
    return out


def _end_parent(uri: str | None, run_id: str | None, status: str) -> None:
    if not uri or not run_id:
        return
    from mlflow.tracking import MlflowClient

    try:
        call_serialized(sqlite_lock_path(uri), lambda: MlflowClient(tracking_uri=uri).set_terminated(run_id, status=status))
    except Exception:  # noqa: BLE001 - best effort while shutting down
        pass


def _finish_parent(uri: str, run_id: str | None, result: SweepResult) -> None:
    if run_id is None:
        return
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    def go() -> None:
        client = MlflowClient(tracking_uri=uri)
        ts = int(time.time() * 1000)
        metrics = [Metric("trials_done", sum(t["status"] == "TERMINATED" for t in result.trials), ts, 0),
                   Metric("trials_failed", len(result.failed), ts, 0)]
        if result.best is not None:
            metrics.append(Metric("best_aubc", float(result.best["aubc"]), ts, 0))
        client.log_batch(run_id, metrics=metrics)
        client.set_tag(run_id, "best_arm", str(result.best["arm"]) if result.best else "")
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "trials.json"
            p.write_text(json.dumps({"trials": result.trials, "arms": result.arms}, indent=1, default=str))
            client.log_artifact(run_id, str(p))
        status = "KILLED" if result.interrupted else ("FAILED" if result.failed else "FINISHED")
        client.set_terminated(run_id, status=status)

    call_serialized(sqlite_lock_path(uri), go)


# ------------------------------------------------------------------------------ Ray session

def cluster_address(address: str = "auto") -> str | None:
    """Where to attach: ``RAY_ADDRESS``; else, with ``auto``, a cluster started with ``ray start``
    on this machine (e.g. the head node after ``ray up``; ``ray submit`` runs the script there);
    else None (start a local instance). ``local`` always starts a local instance."""
    if address == "local":
        return None
    if address not in ("auto", ""):
        return address
    env = os.environ.get("RAY_ADDRESS")
    if env:
        return env
    try:
        from ray._private.services import find_bootstrap_address

        return find_bootstrap_address(None)
    except Exception:  # noqa: BLE001 - private API; no cluster file means no cluster
        return None


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def ray_session(address: str = "auto", num_cpus: int = 0, out: Callable[[str], None] = print) -> Iterator[None]:
    """Connect to a running cluster or start a local Ray instance (``num_cpus`` CPUs, 0 = all);
    disconnect, and stop a local instance, on exit — also on Ctrl-C and errors, so that an
    interrupted sweep leaves no Ray processes behind. Uses an already-initialized Ray as is."""
    import ray

    if ray.is_initialized():
        yield
        return
    addr = cluster_address(address)
    try:
        if addr is not None:
            try:
                ray.init(address=addr, log_to_driver=False, configure_logging=False)
                out(f"attached to the Ray cluster at {addr}")
            except (ConnectionError, RuntimeError) as e:
                if address not in ("auto", "") or os.environ.get("RAY_ADDRESS"):
                    raise AutoALError(f"sweep.address: cannot attach to the Ray cluster at {addr}: {e}") from e
                out(f"no running Ray cluster at {addr} ({type(e).__name__}); starting a local one")
                addr = None
        if addr is None:
            n = int(num_cpus) or _available_cpus()
            ray.init(address="local", num_cpus=n, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()


# ------------------------------------------------------------------------------------ output

def format_summary(result: SweepResult, table: Callable[[list[dict[str, Any]], list[str]], str]) -> str:
    """The end-of-sweep text: AUBC per trial, mean ± std per arm, and where things are."""
    lines = []
    trows = [{"arm": t["arm"], "seed": t["seed"], "status": t["status"],
              "AUBC": t["aubc"] if t["aubc"] is not None and t["status"] == "TERMINATED" else "-",
              "final acc": t["final_accuracy"] if t["final_accuracy"] is not None else "-",
              "rounds": t["rounds"] if t["rounds"] is not None else "-"} for t in result.trials]
    lines.append(table(trows, ["arm", "seed", "status", "AUBC", "final acc", "rounds"]))
    lines.append("")
    arows = []
    best = max((a["aubc_mean"] for a in result.arms if a["aubc_mean"] is not None), default=None)
    for a in result.arms:
        if a["aubc_mean"] is None:
            arows.append({"arm": a["arm"], "seeds": 0, "AUBC mean ± std": "-", "final acc mean ± std": "-"})
            continue
        mark = " *" if best is not None and a["aubc_mean"] == best else ""
        arows.append({"arm": a["arm"], "seeds": a["seeds"],
                      "AUBC mean ± std": f"{a['aubc_mean']:.4f} ± {a['aubc_std']:.4f}{mark}",
                      "final acc mean ± std": f"{a['final_acc_mean']:.4f} ± {a['final_acc_std']:.4f}"})
    lines.append(table(arows, ["arm", "seeds", "AUBC mean ± std", "final acc mean ± std"]))
    lines.append("(* best mean AUBC)")
    return "\n".join(lines)
