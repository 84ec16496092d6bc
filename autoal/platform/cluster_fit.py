"""Does a trial's placement group fit the node types of a Ray cluster launcher file?

A trial's resources are normalised to placement-group bundles (:func:`normalize_resources`);
each node type's resources are read from ``available_node_types`` (or, for the local provider,
from the ``ray start`` flags); a trial fits when its bundles fit some node type and, in all, the
whole cluster at full scale (:func:`cluster_capacity`). Used by :mod:`autoal.platform.cluster`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from autoal.errors import ConfigError


def as_list(value: Any) -> list[str]:
    """A cluster file's command field (None, one string or a list) as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def normalize_resources(resources: Any) -> tuple[list[dict[str, float]], str]:
    """A trial's resources as placement-group bundles and a strategy.

    Accepts ``{"CPU": 2, "GPU": 1}`` (also lower-case ``cpu``/``gpu``; one bundle, which must fit
    one node), a list of bundles, or ``{"bundles": [...], "strategy": "PACK"}`` (Tune's
    PlacementGroupFactory; with PACK/SPREAD every bundle must fit some node, with STRICT_PACK
    all of them together)."""
    strategy = "STRICT_PACK"
    if isinstance(resources, Mapping) and "bundles" in resources:
        strategy = str(resources.get("strategy") or "PACK").upper()
        resources = resources["bundles"]
    elif not isinstance(resources, Mapping):
        strategy = "PACK"
    bundles = [resources] if isinstance(resources, Mapping) else list(resources or [])
    out = []
    for bundle in bundles:
        if not isinstance(bundle, Mapping):
            raise ConfigError(f"trial resources: expected a mapping like {{'CPU': 2, 'GPU': 1}}, got {bundle!r}")
        norm: dict[str, float] = {}
        for key, value in bundle.items():
            name = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}.get(str(key).lower(), str(key))
            if isinstance(value, bool):
                raise ConfigError(f"trial resources: {key}: expected a number, got {value!r}")
            try:
                amount = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"trial resources: {key}: expected a number, got {value!r}") from None
            if amount < 0:
                raise ConfigError(f"trial resources: {key}: must be >= 0, got {value!r}")
            if amount > 0:
                norm[name] = norm.get(name, 0.0) + amount
        out.append(norm)
    if not out:
        raise ConfigError("trial resources: no bundles given")
    return out, strategy


def _total(bundles: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _start_flag_resources(cmds: list[str]) -> dict[str, float] | None:
    """Resources declared on a ``ray start`` line (``--num-cpus``, ``--num-gpus``, ``--resources``)."""
    for cmd in cmds:
        if not re.search(r"\bray\s+start\b", cmd):
            continue
        res: dict[str, float] = {}
        for flag, name in (("--num-cpus", "CPU"), ("--num-gpus", "GPU")):
            m = re.search(rf"{flag}[=\s]+(\d+(?:\.\d+)?)", cmd)
            if m:
                res[name] = float(m.group(1))
        m = re.search(r"--resources[=\s]+'([^']*)'", cmd)
        if m:
            try:
                res.update({k: float(v) for k, v in json.loads(m.group(1)).items()})
            except (ValueError, AttributeError):
                pass
        return res or None
    return None


def node_resources(config: Mapping[str, Any]) -> dict[str, dict[str, float] | None]:
    """Declared resources per node type; None where Ray detects them when the node starts."""
    provider = config.get("provider") if isinstance(config.get("provider"), Mapping) else {}
    if provider.get("type") == "local":
        out: dict[str, dict[str, float] | None] = {
            "head": _start_flag_resources(as_list(config.get("head_start_ray_commands")))
        }
        if provider.get("worker_ips"):
            out["local worker"] = _start_flag_resources(as_list(config.get("worker_start_ray_commands")))
        return out
    node_types = config.get("available_node_types") or {}
    out = {}
    for name, spec in node_types.items() if isinstance(node_types, Mapping) else []:
        res = spec.get("resources") if isinstance(spec, Mapping) else None
        out[name] = (
            {k: float(v) for k, v in res.items() if isinstance(v, (int, float))}
            if isinstance(res, Mapping) and res
            else None
        )
    return out


def cluster_capacity(config: Mapping[str, Any]) -> dict[str, float]:
    """Declared resources of the whole cluster at full scale (head + every worker type at its
    ``max_workers``), as a sweep sees them in ``ray.cluster_resources()``."""
    node_types = config.get("available_node_types") or {}
    head_type = config.get("head_node_type")
    total: dict[str, float] = {}
    for name, res in node_resources(config).items():
        if not res:
            continue
        spec = node_types.get(name, {}) if isinstance(node_types, Mapping) else {}
        count = 1 if name in (head_type, "head") else int(spec.get("max_workers", config.get("max_workers", 1)) or 0)
        for k, v in res.items():
            total[k] = total.get(k, 0.0) + v * count
    return total


def _fits(bundle: Mapping[str, float], node: Mapping[str, float]) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in bundle.items())


def fitting_node_types(config: Mapping[str, Any], trial_resources: Any) -> list[str]:
    """The node types that can host the trial itself (its first bundle; with STRICT_PACK, all)."""
    bundles, strategy = normalize_resources(trial_resources)
    need = _total(bundles) if strategy == "STRICT_PACK" else bundles[0]
    return [name for name, res in node_resources(config).items() if res is not None and _fits(need, res)]


def fit_problems(config: Mapping[str, Any], trial_resources: Any) -> list[str]:
    """Why a trial's resources cannot be placed on the cluster (empty when they fit or cannot be
    checked because Ray detects some node type's resources when it starts)."""
    try:
        bundles, strategy = normalize_resources(trial_resources)
    except ConfigError as e:
        return [str(e)]
    nodes = node_resources(config)
    declared = {n: r for n, r in nodes.items() if r is not None}
    local = (
        (config.get("provider") or {}).get("type") == "local" if isinstance(config.get("provider"), Mapping) else False
    )
    if not declared:
        if local:
            return []  # a local head's resources are detected when Ray starts
        return [
            f"resources: no node type declares its resources, so a trial's {fmt_bundles(bundles)} cannot be "
            f'checked; set `resources` on each node type (e.g. {{"CPU": 4, "GPU": 1}})'
        ]
    if len(declared) < len(nodes):
        return []  # the trial might fit a type whose resources Ray detects at start
    where = "; ".join(f"{n}: {fmt_resources(r)}" for n, r in declared.items())
    needs = [_total(bundles)] if strategy == "STRICT_PACK" else bundles
    problems = []
    for need in needs:
        if not any(_fits(need, r) for r in declared.values()):
            what = "a trial needs" if len(needs) == 1 else f"a trial's bundle ({strategy} placement group) needs"
            problems.append(
                f"resources: {what} {fmt_resources(need)} on one node, which fits no node type ({where}); "
                f"lower the sweep's resources_per_trial or add a larger node type"
            )
    capacity = cluster_capacity(config)
    total = _total(bundles)
    if not problems and not local and not _fits(total, capacity):
        problems.append(
            f"resources: a trial needs {fmt_resources(total)} in all, more than the whole cluster has at "
            f"full scale ({fmt_resources(capacity)}); raise the worker types' max_workers or lower the "
            f"trial's resources"
        )
    return problems


def fmt_resources(res: Mapping[str, float]) -> str:
    """``{CPU: 2, GPU: 1}``, for messages."""
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in res.items()) + "}"


def fmt_bundles(bundles: list[dict[str, float]]) -> str:
    """Bundles joined by `` + `` (one bundle: as :func:`fmt_resources`), for messages."""
    return " + ".join(fmt_resources(b) for b in bundles) if len(bundles) != 1 else fmt_resources(bundles[0])
