"""What a trial reserves (:func:`plan_resources`): Ray scorer actors and the Ray tasks its strategy
declares go into the trial's placement group; Ray Train workers reserve their own, so the number
of concurrent trials is capped instead. What a strategy starts on Ray is its own declaration
(:meth:`autoal.strategies.base.Strategy.ray_resources`), looked up by name in the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from autoal.errors import ConfigError

if TYPE_CHECKING:
    from autoal.strategies.base import RayResources


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


def strategy_resources(cfg: Mapping[str, Any]) -> RayResources:
    """What one run of the config's strategy starts on Ray beyond its trial: the strategy's own
    declaration (:meth:`~autoal.strategies.base.Strategy.ray_resources`) for its
    ``strategy.params``, defaults filled in. (The strategies, and torch, load on first call.)"""
    from autoal.config import StrategyConfig
    from autoal.strategies.registry import STRATEGIES, strategy_defaults

    strategy = cfg.get("strategy") or {}
    name = strategy.get("name") or StrategyConfig.name
    params = {**strategy_defaults(name), **(strategy.get("params") or {})}
    return STRATEGIES.get(name).ray_resources(params)


def train_workers(cfg: Mapping[str, Any]) -> int:
    """Ray Train workers a run starts (as its strategy declares them: AutoAL's search on Ray
    Train), 0 if none."""
    return int(strategy_resources(cfg).train_workers)


def _task_bundle(head: dict[str, float], want: Mapping[str, float | None]) -> dict[str, float]:
    """One bundle of a strategy's Ray tasks (:class:`~autoal.strategies.base.RayResources`); a
    GPU share is taken from the trial's bundle ``head`` (half of it where unset)."""
    task = {k: float(v or 0) for k, v in want.items() if k != "GPU"}
    if head.get("GPU", 0) > 0 and "GPU" in want:
        share = float(want["GPU"] or head["GPU"] / 2)
        head["GPU"] = max(head["GPU"] - share, 0.0) or head["GPU"]
        task["GPU"] = share
    return {k: v for k, v in task.items() if v > 0} or {"CPU": 1.0}


def plan_resources(
    cfg: Mapping[str, Any],
    resources_per_trial: Mapping[str, Any] | None,
    cluster: Mapping[str, float],
    max_concurrent: int = 0,
) -> ResourcePlan:
    """Declare every nested resource of one trial (DESIGN.md §5).

    - The trial: ``resources_per_trial``, else its setting's ``setting.resources`` (the GPU setting:
      a quarter of a GPU), else one CPU per torch thread (``runtime.num_threads``, default 1) and
      1 GPU when the cluster has GPUs.
    - Ray scorer actors (``scoring.executor=ray``) are created by the trial and captured by its
      placement group: one bundle per actor, ``gpus_per_actor`` GPUs each when the trial has a
      GPU, else 1 CPU.
    - What the strategy declares (:meth:`~autoal.strategies.base.Strategy.ray_resources`):
      its Ray tasks are children of the trial, one more bundle each (ENSvarR's members:
      ``ray_num_cpus``, and half the trial's GPU when it has one); its Ray Train workers
      (AutoAL's search on Ray Train) reserve their own placement group outside the trial's
      (Train V2), so they are budgeted by capping the concurrent trials: at most
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
    declared = strategy_resources(cfg)
    bundles += [_task_bundle(head, want) for want in declared.task_bundles]
    n_workers = int(declared.train_workers)
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
