"""The driver (:func:`run_sweep`): the MLflow experiment and parent run before any trial, the Tuner
(or ``Tuner.restore`` on resume), progress, and the :class:`SweepResult` with per-trial and per-arm
summaries. Its parts: :mod:`~autoal.platform.sweep.meta` (the sweep's folder, resume),
:mod:`~autoal.platform.sweep.tuner` (the Tune experiments) and :mod:`~autoal.platform.sweep.results`."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from autoal.version import __version__
from autoal.faults import once_from_env
from autoal.platform.report import write_report
from autoal.platform.sweep.arms import Arm, build_arms, group_bases, group_keys, leader_arms
from autoal.platform.sweep.meta import (
    META_FIELDS,
    checked_sweep_tree,
    find_resumable,
    join_path,
    new_sweep_id,
    read_meta,
    sweep_folder,
    write_meta,
)
from autoal.platform.sweep.resources import ResourcePlan, plan_resources
from autoal.platform.sweep.results import (
    SweepResult,
    arm_metrics,
    finish_parent,
    format_summary,
    metric_key,
    stage_rows,
    summarize_arms,
)
from autoal.platform.sweep.spec import ComposeFn, ROLE_TAG, SweepSpec, flatten_space
from autoal.platform.sweep.trial import TrialContext, abs_path, absolutize, trial_fn
from autoal.platform.sweep.tuner import Stage, fit_stage, has_tuner, varied_keys
from autoal.tracking import check_tracking_uri, config_params, git_sha, start_parent_run, stop_runs
from autoal.writable import check_writable_folder
from autoal.api_marker import public_api

__all__ = [
    "META_FIELDS",
    "SweepResult",
    "arm_metrics",
    "check_sweep",
    "find_resumable",
    "format_summary",
    "metric_key",
    "new_sweep_id",
    "read_meta",
    "run_sweep",
    "summarize_arms",
    "sweep_folder",
    "varied_keys",
    "write_meta",
]


def _parent_run(
    uri: str,
    experiment: str,
    sweep_id: str,
    spec: SweepSpec,
    base: dict[str, Any],
    arms: list[Arm],
    meta_parent: str | None,
) -> str:
    """Create (or, on resume, reopen) the sweep's parent run; return its id."""
    tags = {
        "sweep_id": sweep_id,
        "sweep": spec.name,
        "ablation": spec.ablation or "none",
        ROLE_TAG: "sweep",
        "dataset": str((base.get("dataset") or {}).get("name")),
        "git_sha": git_sha(),
        "autoal_version": __version__,
        "arms": json.dumps([a.label for a in arms])[:5000],
        "seeds": json.dumps(spec.seeds),
        "reference": spec.reference or "",
    }
    params = {f"sweep.{k.split('.', 1)[1]}": v for k, v in config_params({"x": spec.to_dict()}).items()}
    varied = varied_keys(arms)
    # the base config minus what the arms vary (a sweep over strategies records no strategy.name)
    params.update({k: v for k, v in config_params(base).items() if k not in varied})
    params["sweep.varied_keys"] = json.dumps(sorted(varied))
    tags["varied_keys"] = ",".join(sorted(varied))[:5000]
    space = {
        "name": spec.name,
        "space": spec.space,
        "seeds": spec.seeds,
        "varied_keys": sorted(varied),
        "arms": [{"label": a.label, "delta": a.delta} for a in arms],
    }
    return start_parent_run(
        uri, experiment, sweep_id, tags, params, reopen=meta_parent, json_artifacts={"sweep_space.json": space}
    )


def check_sweep(spec: SweepSpec, base: dict[str, Any], compose_fn: ComposeFn | None = None) -> list[Arm]:
    """What a sweep can be refused for, asked before Ray starts and before anything is written:
    every arm's config (resolved and validated, :func:`build_arms`), the folders the sweep writes
    (``runtime.output_dir``, ``sweep.storage_path``, ``sweep.report_dir``), the tracking store,
    and on resume the saved sweep (its meta file checked). Returns the arms."""
    storage = abs_path(spec.storage_path)
    assert storage is not None
    if "://" not in storage:
        check_writable_folder(storage, "sweep.storage_path")
    if spec.resume:
        read_meta(find_resumable(storage, spec.name, spec.resume))
    arms = build_arms(spec, base, compose_fn) if not spec.resume else []
    check_writable_folder((base.get("runtime") or {}).get("output_dir") or "runs", "runtime.output_dir")
    if spec.report_dir:
        check_writable_folder(spec.report_dir, "sweep.report_dir")
    tracking = base.get("tracking") or {}
    if tracking.get("enabled", True):
        check_tracking_uri(str(tracking.get("uri")))
    return arms


@dataclass
class _Sweep:
    """What one call of :func:`run_sweep` runs (fresh, or as its meta file saved it on resume) and
    where it is tracked, filled in step by step."""

    spec: SweepSpec
    sweep_id: str
    exp_path: str
    storage: str
    arms: list[Arm]
    base: dict[str, Any]
    bases: dict[str, Any]
    meta: dict[str, Any]
    enabled: bool = False
    uri: str | None = None
    experiment: str = "autoal"
    parent_run_id: str | None = None
    runs_dir: str = ""

    @property
    def store(self) -> str | None:
        """The tracking URI when tracking is on, else None."""
        return self.uri if self.enabled else None


@public_api
def run_sweep(
    spec: SweepSpec,
    base: dict[str, Any],
    compose_fn: ComposeFn | None = None,
    *,
    out: Callable[[str], None] = print,
    resume: Any = None,
    arms: list[Arm] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep on the Ray instance this process is connected to (see
    :func:`ray_session`). ``base`` is the run config (dict) the arms start from; ``arms``: as
    :func:`check_sweep` returned them (else built here)."""
    from autoal.extras import require

    require("a sweep", "ray", "mlflow")
    import ray
    from ray import tune

    t_start = time.time()
    # a snapshot of the experiment state per reported round is intended (restore is exact)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own console output off (verbose=0 alone still prints a banner): SweepProgress reports
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    resume = spec.resume if resume is None else resume
    storage = abs_path(spec.storage_path)
    assert storage is not None
    sw = _resumed_sweep(spec, storage, resume, out) if resume else _new_sweep(spec, base, compose_fn, arms, storage)
    _open_tracking(sw, bool(resume))
    plans, ctx, total = _plan_trials(sw, ray.cluster_resources(), ray.nodes(), out)
    plan = _largest(plans)
    trainable = tune.with_resources(
        tune.with_parameters(trial_fn, ctx=ctx),
        lambda config: _plan_for(plans, sw.arms, config, plan).placement_group_factory(),
    )
    stage = Stage(sw.sweep_id, sw.exp_path, storage, sw.arms, list(sw.spec.seeds), total)
    grid = fit_stage(stage, sw.spec, trainable, plan, bool(resume), out, sw.store, sw.parent_run_id)
    trials = stage_rows(grid, ctx, sw.spec, stage)
    trials += _run_leaders(sw, trials, trainable, plan, ctx, out)
    result = _result(sw, trials, t_start)
    if sw.enabled:
        _finish(sw, result, out)
    return result


def _resumed_sweep(spec: SweepSpec, storage: str, resume: Any, out: Callable[[str], None]) -> _Sweep:
    """The sweep to resume, as its meta file saved it."""
    exp_path = find_resumable(storage, spec.name, resume)
    meta = read_meta(exp_path) or {}
    # the saved spec and arms are authoritative: the sweep continues exactly as it started
    saved = SweepSpec.from_dict({**meta["spec"], "resume": False})
    for key in ("max_failures", "max_concurrent", "progress_interval_s", "report", "report_dir"):
        setattr(saved, key, getattr(spec, key))
    sweep_id = meta["sweep_id"]
    arms = [Arm(label=a["label"], delta=a["delta"], config=a["config"]) for a in meta["arms"]]
    sw = _Sweep(
        spec=saved,
        sweep_id=sweep_id,
        exp_path=exp_path,
        storage=storage,
        arms=arms,
        base=meta["base"],
        bases=meta.get("group_bases") or {},
        meta=meta,
    )
    out(f"[{sweep_id}] resuming from {exp_path}: finished trials are kept, unfinished and failed ones continue")
    return sw


def _new_sweep(
    spec: SweepSpec, base: dict[str, Any], compose_fn: ComposeFn | None, arms: list[Arm] | None, storage: str
) -> _Sweep:
    """A new sweep: its arms' configs with absolute paths, and a new sweep id."""
    base = absolutize(base)
    arms = build_arms(spec, base, compose_fn) if arms is None else arms
    arms = [Arm(a.label, a.delta, absolutize(a.config)) for a in arms]
    # a search algorithm samples its points in the trials: their configs come from these
    bases = {k: absolutize(v) for k, v in group_bases(spec, base, compose_fn).items()} if spec.searched else {}
    sweep_id = new_sweep_id(spec.name)
    return _Sweep(
        spec=spec,
        sweep_id=sweep_id,
        exp_path=join_path(storage, sweep_id),
        storage=storage,
        arms=arms,
        base=base,
        bases=bases,
        meta={},
    )


def _open_tracking(sw: _Sweep, resume: bool) -> None:
    """Create (or reopen) the parent run when tracking is on, and write the meta file."""
    tracking = sw.base.get("tracking") or {}
    sw.enabled = bool(tracking.get("enabled", True))
    sw.uri = tracking.get("uri")
    sw.experiment = tracking.get("experiment", "autoal")
    if sw.enabled:
        check_tracking_uri(sw.uri)
        sw.parent_run_id = _parent_run(
            sw.uri, sw.experiment, sw.sweep_id, sw.spec, sw.base, sw.arms, sw.meta.get("parent_run_id")
        )
    sw.runs_dir = str(Path((sw.base.get("runtime") or {}).get("output_dir") or "runs") / "sweeps" / sw.sweep_id)
    if not resume:
        sw.meta = {
            "sweep_id": sw.sweep_id,
            "name": sw.spec.name,
            "created": time.time(),
            "spec": sw.spec.to_dict(),
            "arms": [dataclasses.asdict(a) for a in sw.arms],
            "base": sw.base,
            "parent_run_id": sw.parent_run_id,
            "runs_dir": sw.runs_dir,
            "tracking_uri": sw.uri if sw.enabled else None,
            "experiment": sw.experiment,
            "group_bases": sw.bases,
        }
    else:
        sw.meta["parent_run_id"] = sw.parent_run_id
    write_meta(sw.exp_path, sw.meta)


def _largest(plans: Sequence[ResourcePlan]) -> ResourcePlan:
    """The plan with the most resources per trial (a sampled point's plan, and what is shown)."""
    return max(plans, key=lambda p: (sum(p.per_trial.values()), len(p.bundles)))


def _plan_trials(
    sw: _Sweep, cluster: Mapping[str, float], nodes: Sequence[Mapping[str, Any]], out: Callable[[str], None]
) -> tuple[list[ResourcePlan], TrialContext, int]:
    """(each arm's resource plan, the trials' context, the number of trials); says what runs where."""
    spec, arms, sweep_id = sw.spec, sw.arms, sw.sweep_id
    alive = [n for n in nodes if n.get("Alive")]
    if len(alive) > 1 and "://" not in sw.storage:
        out(
            f"[{sweep_id}] note: sweep.storage_path={sw.storage} is a local path on a cluster of {len(alive)} nodes; "
            "trials on other nodes can only checkpoint there if it is a shared mount (else use s3://..., gs://...)"
        )
    plans = [plan_resources(a.config, spec.resources_per_trial, cluster, spec.max_concurrent) for a in arms]
    plan = _largest(plans)
    ctx = TrialContext(
        sweep_id=sweep_id,
        sweep_name=spec.name,
        ablation=spec.ablation,
        parent_run_id=sw.parent_run_id,
        runs_dir=sw.runs_dir,
        arms={a.label: a.config for a in arms},
        checkpoint=spec.checkpoint,
        trial_cpus=plan.bundles[0].get("CPU", 1.0),
        fault=once_from_env(),
        search_keys=list(flatten_space(spec.space)) if spec.searched else None,
        group_keys=group_keys(spec) if spec.searched else [],
        group_bases=sw.bases,
    )
    total = spec.num_samples * len(spec.seeds) if spec.searched else len(arms) * len(spec.seeds)
    bundles = " + ".join(_fmt_bundle(b) for b in plan.bundles)
    out(
        f"[{sweep_id}] {len(arms)} arm(s) x {len(spec.seeds)} seed(s) = {total} trials; per trial {bundles}"
        + (f" + {_fmt_bundle(plan.outside)} of Ray Train workers" if plan.outside else "")
        + (f"; at most {plan.max_concurrent} at once" if plan.max_concurrent else "")
        + f"; Ray has {_fmt_bundle(cluster)}"
    )
    return plans, ctx, total


def _run_leaders(
    sw: _Sweep,
    trials: list[dict[str, Any]],
    trainable: Any,
    plan: ResourcePlan,
    ctx: TrialContext,
    out: Callable[[str], None],
) -> list[dict[str, Any]]:
    """More seeds for the arms that lead their group (the quality matrix: the best single
    strategies of every setting, and AutoAL), once every first-stage trial ended: a second Tune
    experiment beside the first, the same parent run. Returns its trial rows."""
    leaders = sw.spec.leaders
    if not leaders or any(t["status"] not in ("TERMINATED", "ERROR", "STOPPED") for t in trials):
        return []
    if "leaders" not in sw.meta:
        chosen = leader_arms(sw.arms, trials, leaders["top"], leaders["always"])
        sw.meta["leaders"] = [a.label for a in chosen]
        write_meta(sw.exp_path, sw.meta)
    lead = [a for a in sw.arms if a.label in set(sw.meta["leaders"])]
    if not lead:
        return []
    out(
        f"[{sw.sweep_id}] leaders: {len(lead)} arm(s) x {len(leaders['seeds'])} more seed(s): "
        + ", ".join(a.label for a in lead)
    )
    path = checked_sweep_tree(sweep_folder(sw.storage, f"{sw.exp_path}-leaders"))
    stage = Stage(
        sw.sweep_id,
        path,
        sw.storage,
        lead,
        list(leaders["seeds"]),
        len(lead) * len(leaders["seeds"]),
        name=f"{sw.sweep_id}-leaders",
    )
    grid = fit_stage(stage, sw.spec, trainable, plan, has_tuner(stage.path), out, sw.store, sw.parent_run_id)
    return stage_rows(grid, ctx, sw.spec, stage)


def _result(sw: _Sweep, trials: list[dict[str, Any]], t_start: float) -> SweepResult:
    """The sweep's result: trials in (arm, seed) order, per-arm summaries, the best trial; the
    trials the scheduler stopped are marked so in MLflow."""
    spec = sw.spec
    trials.sort(key=lambda t: (str(t["arm"]), t["seed"] if t["seed"] is not None else -1))
    interrupted = any(t["status"] not in ("TERMINATED", "ERROR", "STOPPED") for t in trials)
    if sw.enabled and any(t["status"] == "STOPPED" for t in trials):
        stop_runs(
            sw.uri,
            sw.experiment,
            sw.sweep_id,
            [t["trial"] for t in trials if t["status"] == "STOPPED"],
            f"stopped early by the {spec.scheduler} scheduler",
        )
    order = [a.label for a in sw.arms] if not spec.searched else list(dict.fromkeys(t["arm"] for t in trials))
    arms_rows = summarize_arms(trials, order)
    best = max(
        (t for t in trials if t["status"] == "TERMINATED" and t.get("aubc") is not None),
        key=lambda t: t["aubc"],
        default=None,
    )
    return SweepResult(
        sweep_id=sw.sweep_id,
        name=spec.name,
        experiment_path=sw.exp_path,
        parent_run_id=sw.parent_run_id,
        tracking_uri=sw.store,
        trials=trials,
        arms=arms_rows,
        interrupted=interrupted,
        seconds=time.time() - t_start,
        best=best,
    )


def _finish(sw: _Sweep, result: SweepResult, out: Callable[[str], None]) -> None:
    """End the parent run with the per-arm metrics, then write the report (unless interrupted)."""
    finish_parent(sw.uri, sw.parent_run_id, result)
    if not sw.spec.report or result.interrupted:
        return
    try:
        rep_dir = sw.spec.report_dir or str(Path(sw.runs_dir).parent.parent / "reports" / sw.sweep_id)
        rep = write_report(sw.uri, sw.experiment, sw.sweep_id, rep_dir, reference=sw.spec.reference)
        result.report_dir = str(rep.out_dir)
    except Exception as e:  # noqa: BLE001 - the sweep's results stand without the report
        out(
            f"[{sw.sweep_id}] report failed: {type(e).__name__}: {e} "
            f"(run autoal report {shlex.quote(f'sweep_id={sw.sweep_id}')})"
        )


def _plan_for(
    plans: list[ResourcePlan], arms: list[Arm], config: Mapping[str, Any], largest: ResourcePlan
) -> ResourcePlan:
    for a, p in zip(arms, plans):
        if a.label == config.get("arm"):
            return p
    return largest  # a sampled point: the largest plan of the space's arms


def _fmt_bundle(b: Mapping[str, float]) -> str:
    keys = [k for k in ("CPU", "GPU") if k in b] + sorted(
        k for k in b if k not in ("CPU", "GPU") and not k.startswith(("node:", "object_store", "memory", "accelerator"))
    )
    return "{" + ", ".join(f"{k}: {b[k]:g}" for k in keys) + "}"
