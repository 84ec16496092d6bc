"""A labeling project's saved state (``labels.json``): its check (:func:`state_problem`; the part
it shares with an AL run's state is :func:`autoal.state.round_log_problem`'s) and what a round
of it tells the tracking run (:func:`round_metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoal.labeling.config import STATE_VERSION
from autoal.state import round_log_problem


def state_problem(st: Any, project: Path | None = None) -> str | None:
    """What is wrong with a labeling state (types and references), or None. (The pending batch's
    CSV path is not checked against ``project``: a moved or copied project keeps working, and
    batch files are always written to :meth:`~autoal.labeling.project.LabelingProject.batch_csv`.)"""
    if not isinstance(st, dict):
        return "not a JSON object"
    need = ("version", "images", "classes", "pool", "labeled", "next_round", "pending", "rounds")
    miss = [k for k in need if k not in st]
    if miss:
        return f"missing field(s) {', '.join(miss)}"
    if st["version"] != STATE_VERSION:
        return f"version {st['version']!r} (this autoal reads version {STATE_VERSION})"
    pool, classes = st["pool"], st["classes"]
    if not isinstance(st["images"], str) or not st["images"]:
        return f"images must be the images folder (a string); got {st['images']!r}"
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        return f"classes must be a list of at least 2 distinct names; got {classes!r}"[:300]
    if not isinstance(pool, list) or not all(isinstance(f, str) for f in pool) or len(set(pool)) != len(pool):
        return "pool must be a list of distinct files"
    if isinstance(st["next_round"], bool) or not isinstance(st["next_round"], int) or st["next_round"] < 0:
        return f"next_round must be an integer >= 0; got {st['next_round']!r}"
    if not isinstance(st["labeled"], list) or not isinstance(st["rounds"], list):
        return "labeled and rounds must be lists"
    # the part shared with an AL run's state (autoal.state.RunState): one record per completed round,
    # the tracking run and how many rounds it holds (projects written before these fields: none yet, 0)
    problem = round_log_problem(
        st["rounds"], st["next_round"], st.get("logged_rounds", 0), st.get("tracking_run_id"), name="rounds"
    )
    if problem:
        return problem
    seen = set()
    for e in st["labeled"]:
        if not isinstance(e, dict) or not isinstance(e.get("sample_id"), int) or not 0 <= e["sample_id"] < len(pool):
            return f"labeled entry {e!r} has no valid sample_id"
        if e["sample_id"] in seen:
            return f"sample {e['sample_id']} is labeled twice"
        seen.add(e["sample_id"])
        if e.get("label") not in classes or e.get("file") != pool[e["sample_id"]]:
            return f"labeled entry {e!r} has an unknown label or a file that does not match its sample_id"
        if not isinstance(e.get("round"), int) or not 0 <= e["round"] < st["next_round"]:
            return f"labeled entry {e!r} has a round outside [0, next_round)"
    p = st["pending"]
    if p is not None:
        if not isinstance(p, dict) or p.get("round") != st["next_round"] or not isinstance(p.get("sample_ids"), list):
            return "the pending batch does not belong to the next round"
        if any(
            isinstance(i, bool) or not isinstance(i, int) or i in seen or not 0 <= i < len(pool)
            for i in p["sample_ids"]
        ):
            return "the pending batch holds labeled or unknown samples"
        if (
            not isinstance(p.get("csv"), str)
            or not isinstance(p.get("scores"), list)
            or len(p["scores"]) != len(p["sample_ids"])
        ):
            return "the pending batch needs its csv path and one score per sample"
    return None


def round_metrics(st: dict[str, Any], rec: dict[str, Any]) -> dict[str, float]:
    """A round's metrics: the labels so far (in all and per class), those added and returned to
    the pool, and the batch's agreement with the model and training loss where recorded."""
    m = {"labeled": rec["labeled"], "added": rec["added"], "returned_to_pool": rec["returned_to_pool"]}
    m.update({f"labeled/{c}": n for c, n in counts_up_to(st, rec["round"]).items()})
    for k in ("batch_agreement", "train_loss"):
        if rec.get(k) is not None:
            m[k] = rec[k]
    return m


def counts_up_to(st: dict[str, Any], r: int) -> dict[str, int]:
    counts = {c: 0 for c in st["classes"]}
    for e in st["labeled"]:
        if e["round"] <= r:
            counts[e["label"]] += 1
    return counts
