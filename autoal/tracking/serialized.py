"""One writer at a time: the concurrent trials of a sweep on one SQLite store
(:class:`SerializedTracker`, :func:`call_serialized`, :func:`sqlite_lock_path`)."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from autoal.paths import user_path
from typing import Any, Callable, Iterator

#: per thread: the lock files this thread holds (``SerializedTracker._locked`` is re-entrant)
_HELD = threading.local()


class SerializedTracker:
    """Wraps a tracker so that every call holds an exclusive ``fcntl`` lock on ``lock_path``
    (one writer per SQLite file across the trials of a machine) and is retried, with backoff,
    when the store still answers "database is locked"."""

    RETRIES = 8

    def __init__(self, tracker: Any, lock_path: str | Path | None) -> None:
        self._t = tracker
        self._lock_path = Path(lock_path) if lock_path else None

    @property
    def run_id(self):
        return self._t.run_id

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's lock; re-entrant within a thread (a call made while this thread holds the
        lock, e.g. creating the experiment inside a locked tracker construction, runs as is)."""
        if self._lock_path is None:
            yield
            return
        held = _HELD.__dict__.setdefault("paths", {})
        key = str(self._lock_path)
        if held.get(key):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            held[key] = 1
            try:
                yield
            finally:
                held[key] = 0
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return call_serialized(self._lock_path, lambda: getattr(self._t, name)(*args, **kwargs), self._locked)

    def start(self, run_id=None, identity=None):
        return self._call("start", run_id, identity)

    def log_params(self, params):
        return self._call("log_params", params)

    def log_metrics(self, metrics, step=None):
        return self._call("log_metrics", metrics, step=step)

    def log_artifact(self, path, artifact_path=None):
        return self._call("log_artifact", path, artifact_path)

    def set_tags(self, tags):
        return self._call("set_tags", tags)

    def logged_steps(self, key):
        return self._call("logged_steps", key)

    def log_dataset(self, name, digest, context, source):
        return self._call("log_dataset", name, digest, context, source)

    def log_model(self, model, registered_name=None, input_example=None):
        return self._call("log_model", model, registered_name, input_example)

    def end(self, status="FINISHED"):
        return self._call("end", status)


def _is_locked_error(e: BaseException) -> bool:
    text = f"{type(e).__name__}: {e}".lower()
    return "database is locked" in text or "database table is locked" in text


def call_serialized(lock_path: Path | None, fn: Callable[[], Any], locked=None, retries: int = 8) -> Any:
    """``fn()`` under the store's lock, retried with backoff on "database is locked"."""
    if locked is None:
        locked = SerializedTracker(None, lock_path)._locked
    delay = 0.2
    for attempt in range(retries):
        try:
            with locked():
                return fn()
        except Exception as e:  # noqa: BLE001 - MLflow wraps SQLite errors in several types
            if not _is_locked_error(e) or attempt == retries - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def sqlite_lock_path(uri: str) -> Path | None:
    """The lock file that serializes the writers of a SQLite store on this machine (in the
    temp folder, named after the database's absolute path); None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    db = str(user_path(uri[len("sqlite:///") :]).resolve())
    return Path(tempfile.gettempdir()) / "autoal-locks" / f"mlflow-{hashlib.sha1(db.encode()).hexdigest()[:16]}.lock"
