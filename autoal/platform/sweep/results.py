"""A sweep's results: one row per Tune trial (:func:`stage_rows`), mean ± std per arm, the
parent run's per-arm metrics, and the end-of-sweep text (:func:`format_summary`)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from autoal.platform.sweep.spec import SweepSpec
from autoal.platform.sweep.trial import TrialContext
from autoal.platform.sweep.tuner import Stage
from autoal.tracking import end_parent_run


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


def stage_rows(grid: Any, ctx: TrialContext, spec: SweepSpec, stage: Stage) -> list[dict[str, Any]]:
    """The stage's trial rows, with a PENDING row for every (arm, seed) Tune has not created."""
    trials = _trial_rows(grid, ctx, stoppable=spec.scheduler != "none")
    if not spec.searched:  # a trial Tune never started has no config yet: it is one of the PENDING rows below
        trials = [t for t in trials if t["arm"] is not None]
    seen = {(t["arm"], t["seed"]) for t in trials}
    if not spec.searched:
        trials += [
            {
                "trial": "",
                "arm": a.label,
                "failures": 0,
                "seed": s,
                "status": "PENDING",
                "aubc": None,
                "final_accuracy": None,
                "rounds": None,
                "labels": None,
                "error": None,
            }
            for a in stage.arms
            for s in stage.seeds
            if (a.label, s) not in seen
        ]
    elif len(trials) < stage.total:
        trials += [
            {
                "trial": "",
                "arm": "(not sampled yet)",
                "failures": 0,
                "seed": None,
                "status": "PENDING",
                "aubc": None,
                "final_accuracy": None,
                "rounds": None,
                "labels": None,
                "error": None,
            }
        ] * (stage.total - len(trials))
    return trials


def _stopped(sweep_id: str) -> set[str]:
    if "autoal.platform.sweep.schedulers" not in sys.modules:
        return set()
    return sys.modules["autoal.platform.sweep.schedulers"].STOPPED.get(sweep_id, set())


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
            status = (
                "ERROR"
                if r.error is not None
                else ("TERMINATED" if m.get("final_accuracy") is not None and not status else (status or "UNFINISHED"))
            )
        arm = (
            cfg.get("arm")
            if ctx.search_keys is None
            else (ctx.arm_of(cfg)[0] if all(k in cfg for k in ctx.search_keys) else None)
        )
        rows.append(
            {
                "trial": trial_id,
                "arm": arm,
                "failures": failures,
                "seed": cfg.get("seed"),
                "status": status,
                "aubc": m.get("aubc"),
                "final_accuracy": m.get("final_accuracy"),
                "rounds": m.get("rounds_done"),
                "labels": m.get("labels"),
                "error": (str(r.error).splitlines() or [""])[0][:200] if r.error else None,
            }
        )
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
        out.append(
            {
                "arm": arm,
                "seeds": len(done),
                "aubc_mean": float(a.mean()) if len(a) else None,
                "aubc_std": float(a.std(ddof=1)) if len(a) > 1 else (0.0 if len(a) else None),
                "final_acc_mean": float(f.mean()) if len(f) else None,
                "final_acc_std": float(f.std(ddof=1)) if len(f) > 1 else (0.0 if len(f) else None),
            }
        )
    return out


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
        out.update(
            {
                f"aubc/{k}": float(a["aubc_mean"]),
                f"aubc_std/{k}": float(a["aubc_std"]),
                f"final_accuracy/{k}": float(a["final_acc_mean"]),
                f"final_accuracy_std/{k}": float(a["final_acc_std"]),
                f"seeds/{k}": float(a["seeds"]),
            }
        )
    return out


def finish_parent(uri: str, run_id: str | None, result: SweepResult) -> None:
    if run_id is None:
        return
    metrics = {
        "trials_done": sum(t["status"] == "TERMINATED" for t in result.trials),
        "trials_failed": len(result.failed),
    }
    if result.best is not None:
        metrics["best_aubc"] = float(result.best["aubc"])
    metrics.update(arm_metrics(result.arms))
    status = "KILLED" if result.interrupted else ("FAILED" if result.failed else "FINISHED")
    end_parent_run(
        uri,
        run_id,
        status,
        metrics=metrics,
        tags={"best_arm": str(result.best["arm"]) if result.best else ""},
        json_artifacts={"trials.json": {"trials": result.trials, "arms": result.arms}},
    )


def format_summary(result: SweepResult, table: Callable[[list[dict[str, Any]], list[str]], str]) -> str:
    """The end-of-sweep text: AUBC per trial, mean ± std per arm, and where things are."""
    lines = []
    trows = [
        {
            "arm": t["arm"],
            "seed": t["seed"],
            "status": t["status"],
            "AUBC": t["aubc"] if t["aubc"] is not None and t["status"] == "TERMINATED" else "-",
            "final acc": t["final_accuracy"] if t["final_accuracy"] is not None else "-",
            "rounds": t["rounds"] if t["rounds"] is not None else "-",
        }
        for t in result.trials
    ]
    lines.append(table(trows, ["arm", "seed", "status", "AUBC", "final acc", "rounds"]))
    lines.append("")
    arows = []
    best = max((a["aubc_mean"] for a in result.arms if a["aubc_mean"] is not None), default=None)
    for a in result.arms:
        if a["aubc_mean"] is None:
            arows.append({"arm": a["arm"], "seeds": 0, "AUBC mean ± std": "-", "final acc mean ± std": "-"})
            continue
        mark = " *" if best is not None and a["aubc_mean"] == best else ""
        arows.append(
            {
                "arm": a["arm"],
                "seeds": a["seeds"],
                "AUBC mean ± std": f"{a['aubc_mean']:.4f} ± {a['aubc_std']:.4f}{mark}",
                "final acc mean ± std": f"{a['final_acc_mean']:.4f} ± {a['final_acc_std']:.4f}",
            }
        )
    lines.append(table(arows, ["arm", "seeds", "AUBC mean ± std", "final acc mean ± std"]))
    lines.append("(* best mean AUBC)")
    return "\n".join(lines)
