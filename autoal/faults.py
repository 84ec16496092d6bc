"""Fault injection for the crash tests, in one place. Every hook is off unless an environment
variable of the process that starts the work names them; no config key or code path of a normal
run changes.

- ``AUTOAL_FAULT=phase:round`` (:func:`strike`): the AL loop kills its own process with SIGKILL
  (no cleanup, like a power cut) when it reaches ``phase`` (one of :data:`FAULT_PHASES`) of round
  ``round``. Read where the loop runs.
- ``AUTOAL_FAULT_ONCE=round:marker`` (:func:`once_from_env`, :func:`crash_once`): read by a sweep's
  driver and handed to its trials; the first trial to finish round ``round`` creates the file
  ``marker`` and raises, every later attempt finds the file and goes on — a trial that fails
  once, for the retry and resume tests.
- ``AUTOAL_FAULT_STORE=point`` (:func:`store_fault`, :func:`strike_store`): the tracking code
  kills its own process with SIGKILL at a named point of a SQLite store's first creation
  (``sql:N``: after the N-th SQL statement of MLflow's table creation and migrations in the
  temporary file; ``created``: the temporary file complete, not yet renamed; ``replaced``:
  renamed into place, the experiment not yet created) or of logging the model (``model``: the
  logged model exists, PENDING, its files not yet written).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from autoal.errors import ConfigError

#: where AUTOAL_FAULT can strike: before training, scoring, selection, before the end-of-round
#: writes, and inside the state write (temporary file written, not yet renamed)
FAULT_PHASES = ("train", "score", "select", "state_write", "state_write_tmp")


def strike(phase: str, round_: int) -> None:
    """SIGKILL this process if ``AUTOAL_FAULT`` names this phase and round."""
    if os.environ.get("AUTOAL_FAULT") == f"{phase}:{round_}":
        os.kill(os.getpid(), signal.SIGKILL)


#: where AUTOAL_FAULT_STORE can strike (besides ``sql:N``)
STORE_FAULT_POINTS = ("created", "replaced", "model")


def store_fault() -> str | None:
    """The point ``AUTOAL_FAULT_STORE`` names, or None."""
    return os.environ.get("AUTOAL_FAULT_STORE") or None


def strike_store(point: str) -> None:
    """SIGKILL this process if ``AUTOAL_FAULT_STORE`` names ``point``."""
    if store_fault() == point:
        os.kill(os.getpid(), signal.SIGKILL)


def store_sql_fault() -> int | None:
    """N of ``AUTOAL_FAULT_STORE=sql:N``, or None."""
    spec = store_fault() or ""
    head, _, n = spec.partition(":")
    return int(n) if head == "sql" and n.isdigit() else None


def kill_now(*_args: object) -> None:
    """SIGKILL this process (a callback for the hooks above)."""
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class OnceFault:
    """A crash that happens once: in the first trial to finish round ``round``."""

    round: int
    marker: str


def once_from_env() -> OnceFault | None:
    """The fault ``AUTOAL_FAULT_ONCE`` asks for, or None."""
    spec = os.environ.get("AUTOAL_FAULT_ONCE")
    if not spec:
        return None
    head, sep, marker = spec.partition(":")
    if not sep or not head.isdigit() or not marker:
        raise ConfigError(f"AUTOAL_FAULT_ONCE: expected 'round:marker_path' (e.g. 1:/tmp/fault.marker); got {spec!r}")
    return OnceFault(int(head), marker)


def crash_once(fault: OnceFault | None, round_: int) -> None:
    """Raise if ``fault`` is due at ``round_`` and its marker file does not exist yet (created
    atomically, so exactly one attempt of one trial crashes)."""
    if fault is None or round_ != fault.round:
        return
    try:
        fd = os.open(fault.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    raise RuntimeError(f"injected test fault after round {round_} (AUTOAL_FAULT_ONCE, marker {fault.marker})")
