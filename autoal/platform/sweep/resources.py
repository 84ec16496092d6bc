"""What a trial reserves (:func:`plan_resources`): Ray scorer actors go into the trial's placement
group; Ray Train workers reserve their own, so the number of concurrent trials is capped instead."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from autoal.errors import ConfigError


def trial_bundle(res: Mapping[str, Any]) -> dict[str, float]:
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


def train_workers(cfg: Mapping[str, Any]) -> int:
    """Ray Train workers a run starts (AutoAL's search on ``ray_train``), 0 if none."""
    for section, key in ((cfg.get("search") or {}, "executor"),
                         ((cfg.get("strategy") or {}).get("params") or {}, "search_executor")):
        if isinstance(section, Mapping) and section.get(key) == "ray_train":
            return int(section.get("num_workers", 2) or 2)
    return 0


def plan_resources(cfg: Mapping[str, Any], resources_per_trial: Mapping[str, Any] | None,
                   cluster: Mapping[str, float], max_concurrent: int = 0) -> ResourcePlan:
    """Declare every nested resource of one trial (DESIGN.md §5).

    - The trial: ``resources_per_trial``, else its setting's ``setting.resources`` (the GPU setting:
      a quarter of a GPU), else one CPU per torch thread (``runtime.num_threads``, default 1) and
      1 GPU when the cluster has GPUs.
    - Ray scorer actors (``scoring.executor=ray``) are created by the trial and captured by its
      placement group: one bundle per actor, ``gpus_per_actor`` GPUs each when the trial has a
      GPU, else 1 CPU.
    - ENSvarR's ensemble members are Ray tasks of the trial: one more bundle (``ray_num_cpus``,
      and half the trial's GPU when it has one).
    - Ray Train workers (``strategy.params.search_executor=ray_train``) reserve their own placement group outside
      the trial's (Train V2), so they are budgeted by capping the concurrent trials: at most
      ``cluster CPUs // (trial CPUs + workers)`` (likewise GPUs) run at once.
    """
    has_gpu = float(cluster.get("GPU", 0) or 0) > 0
    setting = (cfg.get("setting") or {}).get("resources") or {}
    threads = int((cfg.get("runtime") or {}).get("num_threads", 1) or 1)
    if resources_per_trial:
        head = trial_bundle(resources_per_trial)
    elif setting:
        head = trial_bundle(setting)
    else:
        head = {"CPU": float(max(1, threads)), **({"GPU": 1.0} if has_gpu else {})}
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
    n_workers = train_workers(cfg)
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
