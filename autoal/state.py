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
from typing import Any

import numpy as np
import torch

from autoal.errors import StateError

STATE_FILE = "state.json"
STRATEGY_FILE = "strategy_state.pt"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode())


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


@dataclass
class RunState:
    """What a run needs to continue: the config fingerprint, the next round to run, the
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

    def save(self, run_dir: str | Path) -> None:
        atomic_write_json(Path(run_dir) / STATE_FILE, asdict(self))

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunState | None":
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
            return cls(**d)
        except (json.JSONDecodeError, TypeError) as e:
            raise StateError(f"{path}: run state is unreadable ({e}); move the file away to start the run afresh") from e
