"""The driver (:func:`run_sweep`): the MLflow experiment and parent run before any trial, the Tuner
(or ``Tuner.restore`` on resume), progress, and the :class:`SweepResult` with per-trial and per-arm
summaries."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import re
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from autoal.version import __version__
from autoal.containment import check_tree, resolved
from autoal.errors import ConfigError, StateError
from autoal.faults import once_from_env
from autoal.platform.report import write_report
from autoal.platform.sweep.arms import Arm, build_arms, group_bases, group_keys, leader_arms
from autoal.platform.sweep.progress import make_progress_callback
from autoal.platform.sweep.resources import ResourcePlan, plan_resources
from autoal.platform.sweep.spec import ComposeFn, META_FILE, ROLE_TAG, SweepSpec, flatten_space, search_domains
from autoal.platform.sweep.trial import TrialContext, abs_path, absolutize, trial_fn
from autoal.tracking import (check_tracking_uri, config_params, end_parent_run, flatten, git_sha, start_parent_run,
                             stop_runs)
from autoal.writable import check_writable_folder


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


#: what a sweep's meta file must hold to resume it, with the type of each field
META_FIELDS = {"sweep_id": str, "name": str, "spec": dict, "arms": list, "base": dict}


def read_meta(exp_path: str) -> dict[str, Any] | None:
    """The sweep's ``sweep_meta.json`` (None when the folder has none); a file that is not JSON,
    or lacks a field resume needs, raises StateError naming the file and the field."""
    import pyarrow.fs as pafs

    fs, p = _fs(_join(exp_path, META_FILE))
    if fs.get_file_info(p).type != pafs.FileType.File:
        return None
    where = _join(exp_path, META_FILE)
    try:
        with fs.open_input_stream(p) as f:
            meta = json.loads(f.read().decode())
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise StateError(f"{where}: the sweep's meta file is unreadable ({type(e).__name__}: {e}); the sweep "
                         "cannot be resumed from it (start it afresh without sweep.resume)") from None
    if not isinstance(meta, dict):
        raise StateError(f"{where}: expected a JSON object; got {type(meta).__name__}")
    for key, kind in META_FIELDS.items():
        if not isinstance(meta.get(key), kind):
            raise StateError(f"{where}: field {key!r} must be a {kind.__name__}; got {meta.get(key)!r:.80}")
    for i, a in enumerate(meta["arms"]):
        if not isinstance(a, dict) or not isinstance(a.get("label"), str) or not isinstance(a.get("config"), dict) \
                or not isinstance(a.get("delta"), dict):
            raise StateError(f"{where}: arms[{i}] must hold a label, a delta and a config")
    return meta


def sweep_folder(storage_path: str, path: str, resume: Any = None) -> str:
    """``path`` as the experiment folder of a sweep of ``storage_path``: a folder directly under
    it once links and ``..`` are resolved (a remote ``storage_path``, ``s3://...``: by its text),
    returned as ``<storage_path>/<name>``. Anything else is a ConfigError naming ``sweep.resume``
    (the value ``resume`` given), where the path leads and what to do: resuming unpickles the
    folder's Tune state and writes to the MLflow store its meta file names, so a sweep resumes
    only from the storage the command names."""
    what = f"sweep.resume={resume}" if resume is not None else "the sweep folder"
    fix = (f"a sweep resumes only from a folder directly under sweep.storage_path ({storage_path}), since its Tune "
           "state is unpickled and its MLflow store written: give the id of a sweep there (or its absolute path), "
           "or set sweep.storage_path to the folder that holds the sweep")
    if "://" in storage_path:
        prefix = storage_path.rstrip("/") + "/"
        rest = path[len(prefix):].rstrip("/") if path.startswith(prefix) else ""
        if not rest or "/" in rest or rest in (".", ".."):
            raise ConfigError(f"{what}: {path} is not a sweep folder directly under {storage_path}; {fix}")
        return _join(storage_path, rest)
    base = resolved(storage_path, ConfigError)
    target = resolved(path, ConfigError)
    if target.parent != base:
        raise ConfigError(f"{what}: {path} leads to {target}, not a sweep folder directly under {base} (through "
                          f"'..', a symbolic link or another folder); {fix}")
    return _join(storage_path, target.name)


def _checked_sweep_tree(exp_path: str) -> str:
    """``exp_path`` (local) holding no symbolic link that leads outside it (its Tune state, trial
    checkpoints and meta file are read from there on resume): a StateError otherwise."""
    if "://" not in exp_path:
        check_tree(exp_path, what="sweep folder entry",
                   fix="replace the link with the real folder or file, or start the sweep afresh without sweep.resume")
    return exp_path


def find_resumable(storage_path: str, name: str, resume: Any) -> str:
    """The experiment folder to resume: ``resume`` = a sweep id (a folder name under
    ``storage_path``; a relative path is taken relative to ``storage_path``, an absolute one as
    given), or true = the most recent sweep called ``name`` under ``storage_path``. Either way
    the folder must lie directly under ``storage_path`` with links and ``..`` resolved
    (:func:`sweep_folder`) and hold no link leading outside it; else ConfigError or StateError,
    before anything is read from it."""
    import pyarrow.fs as pafs

    if isinstance(resume, str) and resume not in ("true", "latest"):
        remote = "://" in storage_path
        given = resume if (remote and "://" in resume) or (not remote and os.path.isabs(os.path.expanduser(resume))) \
            else _join(storage_path, resume)
        cand = sweep_folder(storage_path, given, resume)
        if read_meta(_checked_sweep_tree(cand)) is not None:
            return cand
        raise ConfigError(f"sweep.resume: no sweep {resume!r} under {storage_path} (expected {cand}/{META_FILE})")
    fs, root = _fs(storage_path)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)) if root else []
    found, outside = [], []
    for info in infos:
        if info.type == pafs.FileType.Directory and info.base_name.startswith(f"{name}-"):
            try:
                cand = sweep_folder(storage_path, _join(storage_path, info.base_name))
            except ConfigError:  # a link to a folder elsewhere: not a sweep of this storage
                outside.append(info.base_name)
                continue
            try:
                meta = read_meta(_checked_sweep_tree(cand))
            except StateError:  # a damaged folder cannot be the latest resumable run (resume it by id to see why)
                continue
            if meta is not None and meta.get("name") == name:
                found.append((meta.get("created", 0), cand))
    if not found:
        skipped = (f" ({', '.join(outside[:3])} lead outside it through a symbolic link and are never resumed)"
                   if outside else "")
        raise ConfigError(f"sweep.resume: no earlier run of sweep {name!r} under {storage_path} to resume{skipped}; "
                          f"run it without sweep.resume first")
    return max(found)[1]


def _parent_run(uri: str, experiment: str, sweep_id: str, spec: SweepSpec, base: dict[str, Any],
                arms: list[Arm], meta_parent: str | None) -> str:
    """Create (or, on resume, reopen) the sweep's parent run; return its id."""
    tags = {"sweep_id": sweep_id, "sweep": spec.name, "ablation": spec.ablation or "none", ROLE_TAG: "sweep",
            "dataset": str((base.get("dataset") or {}).get("name")), "git_sha": git_sha(),
            "autoal_version": __version__, "arms": json.dumps([a.label for a in arms])[:5000],
            "seeds": json.dumps(spec.seeds), "reference": spec.reference or ""}
    params = {f"sweep.{k.split('.', 1)[1]}": v for k, v in config_params({"x": spec.to_dict()}).items()}
    varied = varied_keys(arms)
    # the base config minus what the arms vary (a sweep over strategies records no strategy.name)
    params.update({k: v for k, v in config_params(base).items() if k not in varied})
    params["sweep.varied_keys"] = json.dumps(sorted(varied))
    tags["varied_keys"] = ",".join(sorted(varied))[:5000]
    space = {"name": spec.name, "space": spec.space, "seeds": spec.seeds, "varied_keys": sorted(varied),
             "arms": [{"label": a.label, "delta": a.delta} for a in arms]}
    return start_parent_run(uri, experiment, sweep_id, tags, params, reopen=meta_parent,
                            json_artifacts={"sweep_space.json": space})


def varied_keys(arms: Sequence[Arm]) -> set[str]:
    """The flat config keys whose values differ between the arms (what the sweep compares)."""
    flats = [config_params(a.config) for a in arms]
    keys = set().union(*flats) if flats else set()
    return {k for k in keys if len({f.get(k) for f in flats}) > 1}


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


def run_sweep(spec: SweepSpec, base: dict[str, Any], compose_fn: ComposeFn | None = None, *,
              out: Callable[[str], None] = print, resume: Any = None, arms: list[Arm] | None = None) -> SweepResult:
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
        bases = meta.get("group_bases") or {}
        out(f"[{sweep_id}] resuming from {exp_path}: finished trials are kept, unfinished and failed ones continue")
    else:
        base = absolutize(base)
        arms = build_arms(spec, base, compose_fn) if arms is None else arms
        arms = [Arm(a.label, a.delta, absolutize(a.config)) for a in arms]
        # a search algorithm samples its points in the trials: their configs come from these
        bases = ({k: absolutize(v) for k, v in group_bases(spec, base, compose_fn).items()}
                 if spec.searched else {})
        sweep_id = new_sweep_id(spec.name)
        exp_path = _join(storage, sweep_id)
        meta = {}

    tracking = base.get("tracking") or {}
    enabled = bool(tracking.get("enabled", True))
    uri = tracking.get("uri")
    experiment = tracking.get("experiment", "autoal")
    parent_run_id = None
    if enabled:
        check_tracking_uri(uri)
        parent_run_id = _parent_run(uri, experiment, sweep_id, spec, base, arms, meta.get("parent_run_id"))
    runs_dir = str(Path((base.get("runtime") or {}).get("output_dir") or "runs") / "sweeps" / sweep_id)
    if not resume:
        meta = {"sweep_id": sweep_id, "name": spec.name, "created": time.time(), "spec": spec.to_dict(),
                "arms": [dataclasses.asdict(a) for a in arms], "base": base, "parent_run_id": parent_run_id,
                "runs_dir": runs_dir, "tracking_uri": uri if enabled else None, "experiment": experiment,
                "group_bases": bases}
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
                       trial_cpus=plan.bundles[0].get("CPU", 1.0), fault=once_from_env(),
                       search_keys=list(flatten_space(spec.space)) if spec.searched else None,
                       group_keys=group_keys(spec) if spec.searched else [], group_bases=bases)
    trainable = tune.with_resources(tune.with_parameters(trial_fn, ctx=ctx),
                                    lambda config: _plan_for(plans, arms, config, plan).placement_group_factory())
    total = spec.num_samples * len(spec.seeds) if spec.searched else len(arms) * len(spec.seeds)
    bundles = " + ".join(_fmt_bundle(b) for b in plan.bundles)
    out(f"[{sweep_id}] {len(arms)} arm(s) x {len(spec.seeds)} seed(s) = {total} trials; per trial {bundles}"
        + (f" + {_fmt_bundle(plan.outside)} of Ray Train workers" if plan.outside else "")
        + (f"; at most {plan.max_concurrent} at once" if plan.max_concurrent else "")
        + f"; Ray has {_fmt_bundle(cluster)}")
    stage = _Stage(sweep_id, exp_path, storage, arms, list(spec.seeds), total)
    grid = _fit_stage(stage, spec, trainable, plan, bool(resume), out, uri if enabled else None, parent_run_id)
    trials = _stage_rows(grid, ctx, spec, stage)
    leaders = spec.leaders
    if leaders and not any(t["status"] not in ("TERMINATED", "ERROR", "STOPPED") for t in trials):
        # more seeds for the arms that lead their group (the quality matrix: the best single strategies
        # of every setting, and AutoAL): a second Tune experiment beside the first, the same parent run
        if "leaders" not in meta:
            chosen = leader_arms(arms, trials, leaders["top"], leaders["always"])
            meta["leaders"] = [a.label for a in chosen]
            write_meta(exp_path, meta)
        lead = [a for a in arms if a.label in set(meta["leaders"])]
        if lead:
            out(f"[{sweep_id}] leaders: {len(lead)} arm(s) x {len(leaders['seeds'])} more seed(s): "
                + ", ".join(a.label for a in lead))
            stage2 = _Stage(sweep_id, _checked_sweep_tree(sweep_folder(storage, f"{exp_path}-leaders")), storage, lead, list(leaders["seeds"]),
                            len(lead) * len(leaders["seeds"]), name=f"{sweep_id}-leaders")
            grid2 = _fit_stage(stage2, spec, trainable, plan, _has_tuner(stage2.path), out,
                               uri if enabled else None, parent_run_id)
            trials += _stage_rows(grid2, ctx, spec, stage2)
    trials.sort(key=lambda t: (str(t["arm"]), t["seed"] if t["seed"] is not None else -1))
    interrupted = any(t["status"] not in ("TERMINATED", "ERROR", "STOPPED") for t in trials)
    if enabled and any(t["status"] == "STOPPED" for t in trials):
        stop_runs(uri, experiment, sweep_id, [t["trial"] for t in trials if t["status"] == "STOPPED"],
                  f"stopped early by the {spec.scheduler} scheduler")
    order = [a.label for a in arms] if not spec.searched else list(dict.fromkeys(t["arm"] for t in trials))
    arms_rows = summarize_arms(trials, order)
    best = max((t for t in trials if t["status"] == "TERMINATED" and t.get("aubc") is not None),
               key=lambda t: t["aubc"], default=None)
    result = SweepResult(sweep_id=sweep_id, name=spec.name, experiment_path=exp_path, parent_run_id=parent_run_id,
                         tracking_uri=uri if enabled else None, trials=trials, arms=arms_rows, interrupted=interrupted,
                         seconds=time.time() - t_start, best=best)
    if enabled:
        _finish_parent(uri, parent_run_id, result)
        if spec.report and not interrupted:
            try:
                rep_dir = spec.report_dir or str(Path(runs_dir).parent.parent / "reports" / sweep_id)
                rep = write_report(uri, experiment, sweep_id, rep_dir, reference=spec.reference)
                result.report_dir = str(rep.out_dir)
            except Exception as e:  # noqa: BLE001 - the sweep's results stand without the report
                out(f"[{sweep_id}] report failed: {type(e).__name__}: {e} (run autoal report {shlex.quote(f'sweep_id={sweep_id}')})")
    return result


@dataclass
class _Stage:
    """One Tune experiment of a sweep: the arms x seeds it runs, where it is stored."""

    sweep_id: str
    path: str
    storage: str
    arms: list[Arm]
    seeds: list[int]
    total: int
    name: str | None = None


def _has_tuner(path: str) -> bool:
    """Whether a stage's Tune experiment was started (and so is restored, not started anew)."""
    from ray import tune

    return bool(tune.Tuner.can_restore(path))


@contextlib.contextmanager
def _quiet_restore() -> Iterator[None]:
    """Tune's restore reads every trial's results and warns, one line per trial, for each trial
    that has none yet (every pending trial of an interrupted sweep: a wall of FileNotFoundErrors);
    the sweep's own status line counts them. Silence that one logger while restoring."""
    log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _fit_stage(stage: _Stage, spec: SweepSpec, trainable: Any, plan: ResourcePlan, resume: bool,
               out: Callable[[str], None], uri: str | None, parent_run_id: str | None) -> Any:
    """Run (or, with ``resume``, restore and continue) one stage's Tuner; the parent run ends
    KILLED when the fit does not return."""
    from ray import tune

    progress = make_progress_callback(stage.sweep_id, stage.total, spec.progress_interval_s, out)
    space = _param_space(stage.arms, spec, stage.seeds)
    fit_ok = False
    try:
        if resume:
            with _quiet_restore():
                tuner = tune.Tuner.restore(stage.path, trainable=trainable, resume_unfinished=True,
                                           resume_errored=True, param_space=space)
            _attach_callbacks(tuner, progress, spec)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(metric="aubc", mode="max",
                                            max_concurrent_trials=None if spec.searched else (plan.max_concurrent or None),
                                            reuse_actors=True, num_samples=spec.num_samples if spec.searched else 1,
                                            search_alg=_search_alg(spec, plan.max_concurrent),
                                            scheduler=_scheduler(spec, stage.arms, stage.sweep_id)),
                run_config=tune.RunConfig(
                    name=stage.name or stage.sweep_id, storage_path=stage.storage, verbose=0, callbacks=[progress],
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
        grid = tuner.fit()
        fit_ok = True
    finally:
        if uri and not fit_ok:
            _end_parent(uri, parent_run_id, "KILLED")
    return grid


def _stage_rows(grid: Any, ctx: TrialContext, spec: SweepSpec, stage: _Stage) -> list[dict[str, Any]]:
    """The stage's trial rows, with a PENDING row for every (arm, seed) Tune has not created."""
    trials = _trial_rows(grid, ctx, stoppable=spec.scheduler != "none")
    if not spec.searched:  # a trial Tune never started has no config yet: it is one of the PENDING rows below
        trials = [t for t in trials if t["arm"] is not None]
    seen = {(t["arm"], t["seed"]) for t in trials}
    if not spec.searched:
        trials += [{"trial": "", "arm": a.label, "failures": 0, "seed": s, "status": "PENDING", "aubc": None,
                    "final_accuracy": None, "rounds": None, "labels": None, "error": None}
                   for a in stage.arms for s in stage.seeds if (a.label, s) not in seen]
    elif len(trials) < stage.total:
        trials += [{"trial": "", "arm": "(not sampled yet)", "failures": 0, "seed": None, "status": "PENDING",
                    "aubc": None, "final_accuracy": None, "rounds": None, "labels": None, "error": None}] * (stage.total - len(trials))
    return trials


def _plan_for(plans: list[ResourcePlan], arms: list[Arm], config: Mapping[str, Any],
              largest: ResourcePlan) -> ResourcePlan:
    for a, p in zip(arms, plans):
        if a.label == config.get("arm"):
            return p
    return largest  # a sampled point: the largest plan of the space's arms


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


def _param_space(arms: list[Arm], spec: SweepSpec, seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """What Tune sees of each trial: the seed and the actual values of the swept keys (so that
    ``ResultGrid``, ``get_best_result`` and Tune's analysis show configurations): for the grid,
    the arm's label plus each varied key's value in that arm (resolved by ``sample_from`` from
    the arm); for a search algorithm, the space's domains themselves."""
    from ray import tune

    seeds = list(spec.seeds if seeds is None else seeds)
    if spec.searched:
        return {**search_domains(spec.space),
                "seed": seeds[0] if spec.search_alg == "optuna" else tune.grid_search(seeds)}
    values = {a.label: flatten(a.config) for a in arms}
    keys = sorted(varied_keys(arms))
    space: dict[str, Any] = {"arm": tune.grid_search([a.label for a in arms]), "seed": tune.grid_search(seeds)}
    for k in keys:
        space[k] = tune.sample_from(lambda config, k=k: values[config["arm"]].get(k))
    return space


def _search_alg(spec: SweepSpec, max_concurrent: int = 0) -> Any:
    """None for the grid (Tune's default generator enumerates it), Tune's BasicVariantGenerator
    drawing random points (seeded by ``sweep.sample_seed``), or an Optuna searcher."""
    if spec.search_alg == "grid":
        return None
    if spec.search_alg == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=spec.sample_seed, max_concurrent=int(max_concurrent or 0))
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError("sweep.search_alg: optuna is not installed (pip install optuna)")
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search import ConcurrencyLimiter

    searcher = OptunaSearch(seed=spec.sample_seed)
    return ConcurrencyLimiter(searcher, max_concurrent=int(max_concurrent)) if max_concurrent else searcher


def _scheduler(spec: SweepSpec, arms: Sequence[Arm], sweep_id: str) -> Any:
    """ASHA over AL rounds (one Tune iteration per round; the metric is the AUBC so far)."""
    if spec.scheduler == "none":
        return None
    from autoal.platform.sweep.schedulers import RecordingASHA

    rounds = max(int((a.config.get("al") or {}).get("rounds", 10)) for a in arms) if arms else 10
    return RecordingASHA(sweep_id, time_attr="training_iteration", max_t=rounds + 1,
                         grace_period=spec.asha["grace_rounds"], reduction_factor=spec.asha["reduction_factor"])


def _stopped(sweep_id: str) -> set[str]:
    if "autoal.platform.sweep.schedulers" not in sys.modules:
        return set()
    return sys.modules["autoal.platform.sweep.schedulers"].STOPPED.get(sweep_id, set())


def _fmt_bundle(b: Mapping[str, float]) -> str:
    keys = [k for k in ("CPU", "GPU") if k in b] + sorted(k for k in b if k not in ("CPU", "GPU") and
                                                           not k.startswith(("node:", "object_store", "memory", "accelerator")))
    return "{" + ", ".join(f"{k}: {b[k]:g}" for k in keys) + "}"


def _trial_rows(grid: Any, ctx: TrialContext, stoppable: bool = False) -> list[dict[str, Any]]:
    """One row per Tune trial. ``stoppable`` (a scheduler): a trial that ended before its last
    round without an error was stopped early (status STOPPED), not interrupted."""
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
            # stopped by the scheduler, or (Ctrl-C) before its last round
            status = "STOPPED" if stoppable and trial_id in _stopped(ctx.sweep_id) else "UNFINISHED"
        elif status not in ("TERMINATED", "ERROR"):
            status = "ERROR" if r.error is not None else (
                "TERMINATED" if m.get("final_accuracy") is not None and not status else (status or "UNFINISHED"))
        arm = cfg.get("arm") if ctx.search_keys is None else (
            ctx.arm_of(cfg)[0] if all(k in cfg for k in ctx.search_keys) else None)
        rows.append({"trial": trial_id, "arm": arm, "failures": failures,
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
    try:
        end_parent_run(uri, run_id, status)
    except Exception:  # noqa: BLE001 - best effort while shutting down
        pass


def metric_key(arm: str) -> str:
    """An arm label as the tail of an MLflow metric key (letters, digits, ``_-. /``; other
    characters, e.g. the ``=`` and ``,`` of ``setting=digits,strategy=margin``, become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", arm)


def arm_metrics(arms: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per-arm mean and std of AUBC and final accuracy and the seed count, as the parent run's
    metrics (``aubc/<arm>``, ``aubc_std/<arm>``, ``final_accuracy/<arm>``,
    ``final_accuracy_std/<arm>``, ``seeds/<arm>``): the runs page compares the arms without
    opening a child run or the report."""
    out: dict[str, float] = {}
    for a in arms:
        if a.get("aubc_mean") is None:
            continue
        k = metric_key(str(a["arm"]))
        out.update({f"aubc/{k}": float(a["aubc_mean"]), f"aubc_std/{k}": float(a["aubc_std"]),
                    f"final_accuracy/{k}": float(a["final_acc_mean"]),
                    f"final_accuracy_std/{k}": float(a["final_acc_std"]), f"seeds/{k}": float(a["seeds"])})
    return out


def _finish_parent(uri: str, run_id: str | None, result: SweepResult) -> None:
    if run_id is None:
        return
    metrics = {"trials_done": sum(t["status"] == "TERMINATED" for t in result.trials),
               "trials_failed": len(result.failed)}
    if result.best is not None:
        metrics["best_aubc"] = float(result.best["aubc"])
    metrics.update(arm_metrics(result.arms))
    status = "KILLED" if result.interrupted else ("FAILED" if result.failed else "FINISHED")
    end_parent_run(uri, run_id, status, metrics=metrics,
                   tags={"best_arm": str(result.best["arm"]) if result.best else ""},
                   json_artifacts={"trials.json": {"trials": result.trials, "arms": result.arms}})


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
