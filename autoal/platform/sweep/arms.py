"""Arms: every point of the space (and every named arm) resolved into a full, validated run config
before Ray starts (:func:`build_arms`)."""

from __future__ import annotations

import copy
import json
import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from autoal.config import RunConfig
from autoal.errors import ConfigError
from autoal.platform.sweep.spec import (
    ComposeFn,
    CONFIG_SECTIONS,
    SweepSpec,
    expand_points,
    flatten_space,
    parse_space,
    plain_value,
)
from autoal.strategies import build_strategy, strategy_names


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
            raise ConfigError(
                f"sweep: {k!r} is not a config key; use a dotted key such as strategy.params.lam, "
                f"or a config group ({', '.join(CONFIG_SECTIONS)}) with an option name"
            )
    return groups, values


def resolve_groups(
    base: dict[str, Any], groups: Mapping[str, str], compose_fn: ComposeFn | None, cache: dict | None = None
) -> dict[str, Any]:
    """The base config with config-group options selected (``{"strategy": "autoal"}``): composed
    by ``compose_fn(["strategy=autoal", ...])`` (the CLI passes Hydra's). Without a
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
            raise ConfigError(
                f"sweep: selecting config-group options ({', '.join(sorted(groups))}) needs the "
                "CLI's config composer; use dotted keys instead"
            )

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
        label = ",".join(x for x in (str(arm_name), point_label(point, varying)) if x) or str(
            (cfg.get("strategy") or {}).get("name") or spec.name
        )
        if label in seen:
            seen[label] += 1
            label = f"{label}#{seen[label]}"
        else:
            seen[label] = 0
        probe = copy.deepcopy(cfg)
        set_dotted(probe, "al.seed", spec.seeds[0])
        try:
            rc = RunConfig.from_dict(probe)

            build_strategy(rc.strategy.name, **rc.strategy.params)  # unknown names / parameters, now
        except ConfigError as e:
            raise ConfigError(f"sweep arm {label!r}: {e}") from None
        arms.append(Arm(label=label, delta={k: plain_value(v) for k, v in delta.items()}, config=cfg))
    labels = [a.label for a in arms]
    if spec.reference is not None and spec.reference not in labels and spec.reference in spec.arms:
        # a named arm crossed with a space: its first point is the reference
        spec.reference = next(x for x in labels if x.startswith(f"{spec.reference},"))
    if spec.reference is not None and spec.reference not in labels:
        raise ConfigError(
            f"sweep.reference: {spec.reference!r} is not an arm of this sweep; arms: {', '.join(a.label for a in arms)}"
        )
    return arms


# ------------------------------------------------------------------ search-algorithm sweeps


def group_keys(spec: SweepSpec) -> list[str]:
    """The space's keys that select config-group options (``strategy``, ``model``, ...)."""
    return [k for k in flatten_space(spec.space) if "." not in k and k in CONFIG_SECTIONS]


def _group_key(groups: Mapping[str, Any]) -> str:
    return json.dumps(sorted((k, str(v)) for k, v in groups.items()))


def group_bases(spec: SweepSpec, base: dict[str, Any], compose_fn: ComposeFn | None = None) -> dict[str, dict]:
    """For a search-algorithm sweep: the base config (with ``sweep.fixed`` applied) composed for
    every combination of the space's config-group options, keyed by :func:`_group_key`, so that a
    trial builds its config from a sampled point without Hydra (:func:`point_config`)."""
    domains = parse_space(spec.space)
    keys = group_keys(spec)
    options = []
    for k in keys:
        d = domains[k]
        values = d["grid_search"] if isinstance(d, dict) and "grid_search" in d else getattr(d, "categories", [d])
        options.append([str(v) for v in values])
    fixed_groups, fixed_values = _split_delta(spec.fixed)
    out: dict[str, dict] = {}
    cache: dict = {}
    for combo in itertools.product(*options) if keys else [()]:
        chosen = dict(zip(keys, combo))
        cfg = resolve_groups(base, {**fixed_groups, **chosen}, compose_fn, cache)
        for k, v in fixed_values.items():
            set_dotted(cfg, k, v)
        out[_group_key(chosen)] = cfg
    return out


def point_config(bases: Mapping[str, dict], point: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The run config of a sampled point: the composed base for its group options, then its
    dotted values."""
    chosen = {k: str(point[k]) for k in keys}
    key = _group_key(chosen)
    if key not in bases:
        raise ConfigError(f"sweep: no composed config for the group options {chosen}")
    cfg = copy.deepcopy(bases[key])
    for k, v in point.items():
        if k not in keys:
            set_dotted(cfg, k, plain_value(v))
    return cfg


# ----------------------------------------------------------------------------------- leaders


def strategy_option(arm: Arm) -> str:
    """The strategy an arm runs, as the sweep names it: the config-group option it selects
    (``autoal_paper``), else its ``strategy.name``."""
    for key in ("strategy", "strategy.name"):
        if isinstance(arm.delta.get(key), str):
            return arm.delta[key]
    return str((arm.config.get("strategy") or {}).get("name"))


def arm_group(arm: Arm) -> str:
    """What an arm shares with the arms it competes with: its delta without the strategy (for the
    quality matrix, its setting), as a stable string."""
    rest = {k: v for k, v in arm.delta.items() if k not in ("strategy", "strategy.name")}
    return json.dumps(rest, sort_keys=True, default=str)


def leader_arms(
    arms: Sequence[Arm], trials: Sequence[Mapping[str, Any]], top: int, always: Sequence[str] = ()
) -> list[Arm]:
    """The arms that earn more seeds (``sweep.leaders``): in every group of arms that differ only in
    the strategy (:func:`arm_group`), the ``top`` arms by mean AUBC over their finished trials
    (``trials``: rows with ``arm``, ``status``, ``aubc``), among those whose strategy is not in
    ``always``; plus every arm whose strategy is in ``always``. In the arms' order; ties by order."""
    mean: dict[str, float] = {}
    for a in arms:
        vals = [
            float(t["aubc"])
            for t in trials
            if t.get("arm") == a.label and t.get("status") == "TERMINATED" and t.get("aubc") is not None
        ]
        if vals:
            mean[a.label] = sum(vals) / len(vals)
    chosen: set[str] = {a.label for a in arms if strategy_option(a) in set(always)}
    groups: dict[str, list[Arm]] = {}
    for a in arms:
        if strategy_option(a) not in set(always) and a.label in mean:
            groups.setdefault(arm_group(a), []).append(a)
    for members in groups.values():
        ranked = sorted(members, key=lambda a: -mean[a.label])  # stable: ties keep the arms' order
        chosen.update(a.label for a in ranked[:top])
    return [a for a in arms if a.label in chosen]
