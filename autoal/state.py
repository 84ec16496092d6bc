"""A run's persistent state, written atomically after every round (write a temporary file in
the same folder, fsync, then rename), so that a crash — even during a write — leaves the
previous round intact and nothing labeled is lost."""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from autoal.checkpoint_io import plain_checkpoint, safe_torch_load
from autoal.containment import inside
from autoal.errors import StateError

STATE_FILE = "state.json"
STRATEGY_FILE = "strategy_state.pt"
#: what to do when a path of a run folder leads outside it (autoal.containment)
RUN_FOLDER_FIX = (
    "replace the link with a real folder or file (a run folder received from someone else: move it "
    "away and start the run afresh)"
)


TEMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | Path, data: bytes, *, before_replace: Callable[[Path], None] | None = None) -> None:
    """Write ``data`` to ``path`` so that ``path`` always holds either its old or its new
    content: write a temporary file ``.<name>.XXXX.tmp`` in the same folder, fsync it, rename
    it over ``path``, fsync the folder. ``before_replace(tmp)`` runs between the write and the
    rename (the crash tests kill the process there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:  # a full disk: name the file
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (a power cut after it keeps the new name). Not possible on every
    platform or file system; best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.<name>.XXXX.tmp``) that a process killed in the middle of
    :func:`atomic_write_bytes` left in ``folder`` and its sub-folders; return them. Call it only
    while no other process writes into ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    # rglob does not descend into linked folders; a linked file is checked before it is deleted
    stale = [p for p in folder.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        inside(folder, p, what="temporary file", fix=RUN_FOLDER_FIX)
        p.unlink(missing_ok=True)
    return stale


def atomic_write_json(path: str | Path, obj: Any, *, before_replace: Callable[[Path], None] | None = None) -> None:
    atomic_write_bytes(
        path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode(), before_replace=before_replace
    )


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """``obj`` (made plain: :func:`~autoal.checkpoint_io.plain_checkpoint`) as a torch checkpoint
    at ``path``, atomically; :func:`load_checkpoint` reads it back without unpickling code."""
    buf = io.BytesIO()
    torch.save(plain_checkpoint(obj, str(path)), buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def round_log_problem(
    records: Any, next_round: int, logged_rounds: Any, tracking_run_id: Any, name: str = "history"
) -> str | None:
    """What is wrong with the part of a saved state that an AL run (:class:`RunState`, its
    ``history``) and a labeling project (``labels.json``, its ``rounds``) share, or None: one
    record per completed round (``next_round`` of them, a validated integer), rounds 0, 1, 2, ...
    in order (``name``: the field that holds them); the tracking run's id (a string, or null
    before the first logging); ``logged_rounds``, how many of the rounds the tracking store holds
    (in [0, next_round]; :class:`~autoal.recorder.RunRecorder` logs the rest)."""
    if not isinstance(records, list) or len(records) != next_round:
        return (
            f"{name} must list one record per completed round ({next_round}); got "
            f"{len(records) if isinstance(records, list) else type(records).__name__}"
        )
    if any(not isinstance(h, dict) or h.get("round") != i for i, h in enumerate(records)):
        return f"{name} records must be rounds 0, 1, 2, ... in order"
    if not isinstance(logged_rounds, int) or not 0 <= logged_rounds <= next_round:
        return f"logged_rounds must lie in [0, next_round]; got {logged_rounds!r}"
    if tracking_run_id is not None and not isinstance(tracking_run_id, str):
        return f"tracking_run_id must be a string or null; got {tracking_run_id!r:.80}"
    return None


@dataclass
class RunState:
    """What a run needs to continue: the run's fingerprint (config and data), the next round to run, the
    labeled indices in the order they were labeled with the round of each, the per-round
    history, the tracking run id, and the RNG state of the run's generator."""

    fingerprint: str
    next_round: int = 0
    labeled: list[int] = field(default_factory=list)
    labeled_round: list[int] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    tracking_run_id: str | None = None
    logged_rounds: int = 0
    rng_state: dict[str, Any] = field(default_factory=dict)
    finished: bool = False
    #: the identity of the data the run computes on (ALDataset.identity), to name a mismatch
    data: dict[str, Any] = field(default_factory=dict)
    #: the identity of the task model (Learner.model_identity), to name a mismatch
    model: dict[str, Any] = field(default_factory=dict)

    def save(self, run_dir: str | Path, *, before_replace: Callable[[Path], None] | None = None) -> None:
        path = Path(run_dir) / STATE_FILE
        inside(run_dir, path, what="run state", fix=RUN_FOLDER_FIX)
        atomic_write_json(path, asdict(self), before_replace=before_replace)

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunState | None":
        """The saved state, or None when the folder has none. A file that is not valid JSON or
        whose fields are inconsistent raises StateError naming it (it is never overwritten)."""
        path = Path(run_dir) / STATE_FILE
        inside(run_dir, path, what="run state", fix=RUN_FOLDER_FIX)
        if not path.exists():
            return None
        hint = "move the file away to start the run afresh"
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            raise StateError(f"{path}: run state is unreadable ({e}); {hint}") from e
        if not isinstance(d, dict):
            raise StateError(f"{path}: run state must be a JSON object; got {type(d).__name__}; {hint}")
        try:
            state = cls(**d)
        except TypeError as e:
            raise StateError(f"{path}: run state is unreadable ({e}); {hint}") from e
        problem = state._problem()
        if problem:
            raise StateError(f"{path}: run state is inconsistent: {problem}; {hint}")
        return state

    def _problem(self) -> str | None:
        """What is wrong with the fields, or None (a hand-edited or truncated-by-tools file)."""

        def ints(v: Any) -> bool:
            return isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)

        if not isinstance(self.fingerprint, str):
            return "fingerprint must be a string"
        if not isinstance(self.next_round, int) or self.next_round < 0:
            return f"next_round must be an integer >= 0; got {self.next_round!r}"
        if not ints(self.labeled) or not ints(self.labeled_round):
            return "labeled and labeled_round must be lists of integers"
        if len(self.labeled) != len(self.labeled_round):
            return f"labeled has {len(self.labeled)} entries but labeled_round has {len(self.labeled_round)}"
        if len(set(self.labeled)) != len(self.labeled) or any(i < 0 for i in self.labeled):
            return "labeled holds duplicate or negative indices"
        problem = round_log_problem(self.history, self.next_round, self.logged_rounds, self.tracking_run_id)
        if problem:
            return problem
        for h in self.history:
            r = h["round"]
            for key in ("labels", "accuracy"):
                v = h.get(key)
                if (
                    isinstance(v, bool)
                    or not isinstance(v, (int, float))
                    or v != v
                    or v in (float("inf"), float("-inf"))
                ):
                    return f"history record of round {r}: {key} must be a finite number; got {v!r}"
            if not 0.0 <= float(h["accuracy"]) <= 1.0:
                return f"history record of round {r}: accuracy must lie in [0, 1]; got {h['accuracy']!r}"
            want = sum(1 for x in self.labeled_round if x <= r)
            if self.labeled_round and h["labels"] != want:
                return (
                    f"history record of round {r} counts {h['labels']!r} labels, but labeled_round holds {want} "
                    f"samples labeled by then"
                )
        if self.next_round > 0 and not self.labeled:
            return "labeled is empty after a completed round"
        if not isinstance(self.finished, bool):
            return f"finished must be true or false; got {self.finished!r}"
        if not isinstance(self.data, dict):
            return f"data must be an object (the data set's identity); got {type(self.data).__name__}"
        if not isinstance(self.model, dict):
            return f"model must be an object (the task model's identity); got {type(self.model).__name__}"
        return None


def lock_folder(folder: Path) -> int | None:
    """An exclusive advisory lock on ``folder`` (released when the descriptor closes or the
    process dies); StateError if another process holds it. None where locks are unsupported."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateError(
            f"{folder}: another process is running this run; wait for it to finish (or end it) "
            "and run the command again"
        ) from None
    except OSError:  # a file system without locks (some network mounts): run unlocked
        os.close(fd)
        return None
    return fd


def load_checkpoint(
    path: Path, map_location: Any, hint: str = "move the run folder away to start the run afresh"
) -> Any:
    """A torch checkpoint of a run folder, read with ``weights_only=True`` (tensors and plain
    containers; nothing in the file runs): one holding anything else (a pickled object whose
    unpickling could run code) or an unreadable one is a one-line StateError naming it and
    ending with ``hint`` (:func:`~autoal.checkpoint_io.safe_torch_load`)."""
    return safe_torch_load(path, map_location, hint)


def checkpoint_path(folder: Path, kind: str, next_round: int, fix: str = RUN_FOLDER_FIX) -> Path:
    """The checkpoint of ``kind`` (``strategy``, ``task_model``) that round ``next_round`` starts
    from. Keyed by that round, so that a crash between writing checkpoints and writing the state
    never pairs a state with a later round's weights. The path is checked to lie inside
    ``folder`` (links followed: :func:`~autoal.containment.inside`; ``fix``: the advice of its
    error); returned as given."""
    path = Path(folder) / "checkpoints" / f"{kind}_{int(next_round):03d}.pt"
    inside(folder, path, what="checkpoint", fix=fix)
    return path


def prune_checkpoints(folder: Path, keep: set[int], fix: str = RUN_FOLDER_FIX) -> None:
    """Delete the checkpoints of every round not in ``keep`` (once the state points past them).
    The ``checkpoints`` folder and each file must lie inside ``folder`` (links followed): one that
    leads outside is a StateError and nothing is deleted."""
    ckpts = Path(folder) / "checkpoints"
    inside(folder, ckpts, what="checkpoints folder", fix=fix)
    if ckpts.is_dir():
        doomed = []
        for p in ckpts.glob("*_[0-9][0-9][0-9]*.pt"):
            tail = p.stem.rsplit("_", 1)[-1]
            if tail.isdigit() and int(tail) not in keep:
                inside(folder, p, what="checkpoint", fix=fix)
                doomed.append(p)
        for p in doomed:
            p.unlink(missing_ok=True)
