"""Fault injection for the crash tests, in one place. Both hooks are off unless an environment
variable of the process that starts the work names them; no config key or code path of a normal
run changes.

- ``AUTOAL_FAULT=phase:round`` (:func:`strike`): the AL loop kills its own process with SIGKILL
  (no cleanup, like a power cut) when it reaches ``phase`` (one of :data:`FAULT_PHASES`) of round
  ``round``. Read where the loop runs.
- ``AUTOAL_FAULT_ONCE=round:marker`` (:func:`once_from_env`, :func:`crash_once`): read by a sweep's
  driver and handed to its trials; the first trial to finish round ``round`` creates the file
  ``marker`` and raises, every later attempt finds the file and goes on — a trial that fails
  once, for the retry and resume tests.
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
