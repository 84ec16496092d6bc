"""The Tune function trainable (:func:`trial_fn`): one AL run with an MLflow child run, every round
reported to Tune with a checkpoint; a retried trial resumes from its last round."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoal.version import __version__
from autoal.config import RunConfig
from autoal.containment import check_tree, inside
from autoal.device import resolve_device
from autoal.errors import ConfigError
from autoal.faults import OnceFault, crash_once
from autoal.loop import ActiveLearningLoop
from autoal.metrics import aubc
from autoal.platform.matrix import method_name
from autoal.platform.sweep.arms import point_config, point_label, set_dotted
from autoal.platform.sweep.spec import ROLE_TAG
from autoal.state import RUN_FOLDER_FIX, RunState
from autoal.recorder import tracker_for
from autoal.tracking import absolute_tracking_uri, git_sha
from autoal.paths import user_path


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
    fault: OnceFault | None = None  # the crash tests' (autoal.faults); None in every normal sweep
    #: a search-algorithm sweep (sweep.search_alg != grid): the space's keys, the group-option keys
    #: among them, and the base config composed for every combination of group options
    search_keys: list[str] | None = None
    group_keys: list[str] = dataclasses.field(default_factory=list)
    group_bases: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def arm_of(self, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(label, run config before the seed) of a Tune trial's ``config``: a named arm of the
        expanded grid, or a point that a search algorithm sampled."""
        if self.search_keys is not None:
            point = {k: config[k] for k in self.search_keys}
            return point_label(point, self.search_keys), point_config(self.group_bases, point, self.group_keys)
        arm = config["arm"]
        if arm not in self.arms:
            raise ConfigError(f"sweep: unknown arm {arm!r}; arms: {', '.join(self.arms)}")
        return arm, self.arms[arm]


def trial_config(ctx: TrialContext, arm: str, seed: int, arm_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full run config of one trial (``arm_config``: the arm's run config, default the named
    arm's)."""
    if arm_config is None:
        arm, arm_config = ctx.arm_of({"arm": arm})
    cfg = copy.deepcopy(arm_config)
    set_dotted(cfg, "al.seed", int(seed))
    rt = cfg.setdefault("runtime", {})
    rt["quiet"] = True
    rt["resume"] = True
    if not rt.get("num_threads"):
        rt["num_threads"] = max(1, int(ctx.trial_cpus))
    tr = cfg.setdefault("tracking", {})
    tr["run_name"] = f"{_safe(arm)}-seed{seed}"
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

    seed = int(config["seed"])
    arm, arm_config = ctx.arm_of(config)
    cfg = RunConfig.from_dict(trial_config(ctx, arm, seed, arm_config))
    trial_id = tune.get_context().get_trial_id() or uuid.uuid4().hex[:8]
    run_dir = Path(ctx.runs_dir) / f"{_safe(arm)}-seed{seed}-{trial_id}"
    # the trial's folder lies in the sweep's run folders and holds no link leading outside, before
    # Tune's checkpoint is copied into it (autoal.containment)
    inside(ctx.runs_dir, run_dir, what="trial run folder", fix=RUN_FOLDER_FIX)
    check_tree(run_dir, what="run folder entry", fix=RUN_FOLDER_FIX)
    reported_upto = _restore_from_checkpoint(run_dir)
    state = RunState.load(run_dir) if (run_dir / "state.json").exists() else None
    history: list[dict[str, Any]] = [dict(h) for h in state.history] if state is not None else []

    tags = _trial_tags(ctx, cfg, arm, seed, trial_id)
    # one writer at a time on the sweep's store: the trials of a machine share it
    tracker = tracker_for(cfg, tags=tags, parent_run_id=ctx.parent_run_id, serialized=True)

    reported_upto_box = [reported_upto]
    cpu_clock = [time.process_time(), time.time()]

    def report(record: dict[str, Any]) -> None:
        """One Tune result per AL round (with a checkpoint of the run's state): the round's
        metrics and the AUBC of the curve up to it (the run's AUBC at its last round)."""
        r = int(record["round"])
        if r <= reported_upto_box[0]:
            return
        if not any(h["round"] == r for h in history):
            history.append(dict(record))
        upto = sorted((h for h in history if h["round"] <= r), key=lambda h: h["round"])
        metrics = {
            k: float(v)
            for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        }
        metrics.update(
            {
                "round": r,
                "aubc": aubc([h["labels"] for h in upto], [h["accuracy"] for h in upto]),
                "rounds_done": len(upto),
            }
        )
        if r == cfg.al.rounds:
            metrics["final_accuracy"] = float(record["accuracy"])
        # the share of its threads' time the trial got since its last report (starved trials: < 0.5)
        cpu, wall = time.process_time(), time.time()
        metrics["cpu_share"] = (cpu - cpu_clock[0]) / max((wall - cpu_clock[1]) * cfg.runtime.threads(), 1e-9)
        metrics["niceness"] = os.nice(0) if hasattr(os, "nice") else 0
        cpu_clock[:] = [cpu, wall]
        ckpt, tmp = _checkpoint_of(run_dir, r) if ctx.checkpoint else (None, None)
        try:
            tune.report(metrics, checkpoint=ckpt)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        reported_upto_box[0] = r
        crash_once(ctx.fault, r)

    # rounds the run's state holds but Tune never saw (a crash between the two writes)
    for h in history:
        if h["round"] > reported_upto_box[0]:
            report(h)
    loop = ActiveLearningLoop(cfg, tracker=tracker, callbacks=[report], run_dir=run_dir)
    loop.run()


def _trial_tags(ctx: TrialContext, cfg: RunConfig, arm: str, seed: int, trial_id: str) -> dict[str, str]:
    """The MLflow tags of a trial's run: its sweep, arm, seed and trial, what it runs, and where."""
    return {
        "sweep_id": ctx.sweep_id,
        "sweep": ctx.sweep_name,
        "ablation": ctx.ablation or "none",
        "arm": arm,
        "seed": str(seed),
        "trial_id": trial_id,
        "dataset": cfg.dataset.name,
        "strategy": cfg.strategy.name,
        "method": method_name(arm, cfg.setting.name),
        "git_sha": git_sha(),
        "autoal_version": __version__,
        ROLE_TAG: "trial",
        "device": str(resolve_device(cfg.runtime.device)),
        **{str(k): str(v) for k, v in cfg.tracking.tags.items()},
    }


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in label)[:80]


def abs_path(p: str | None) -> str | None:
    if p is None or "://" in str(p):
        return p
    return str(user_path(p).resolve())


def absolutize(cfg: dict[str, Any]) -> dict[str, Any]:
    """Make the run config's paths absolute (store, run folders, data), for trials."""
    cfg = copy.deepcopy(cfg)
    tr = cfg.setdefault("tracking", {})
    if tr.get("uri"):
        tr["uri"] = absolute_tracking_uri(tr["uri"])
    rt = cfg.setdefault("runtime", {})
    rt["output_dir"] = abs_path(rt.get("output_dir", "runs"))
    ds = cfg.get("dataset") or {}
    for k in ("root", "path"):
        if ds.get(k):
            ds[k] = abs_path(ds[k])
    return cfg
