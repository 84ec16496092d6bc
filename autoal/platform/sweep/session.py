"""The Ray session a sweep runs in: a cluster's head when there is one, else a local Ray started and
stopped by the sweep."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from autoal.errors import AutoALError


def cluster_address(address: str = "auto") -> str | None:
    """Where to attach: ``RAY_ADDRESS``; else, with ``auto``, a cluster started with ``ray start``
    on this machine (e.g. the head node after ``ray up``; ``ray submit`` runs the script there);
    else None (start a local instance). ``local`` always starts a local instance."""
    if address == "local":
        return None
    if address not in ("auto", ""):
        return address
    env = os.environ.get("RAY_ADDRESS")
    if env:
        return env
    try:
        from ray._private.services import find_bootstrap_address

        return find_bootstrap_address(None)
    except Exception:  # noqa: BLE001 - private API; no cluster file means no cluster
        return None


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: the environment variable through which Ray's raylet sets its workers' niceness (Ray's default: 15)
NICENESS_ENV = "RAY_worker_niceness"


def worker_niceness_env(niceness: int | None) -> dict[str, str]:
    """The environment a Ray node (``ray.init`` or ``ray start``) needs so that its worker processes,
    and so the trials, run at ``niceness`` (0: the driver's priority); ``{}`` for Ray's default, or
    when the user's environment already sets it. Ray starts workers at nice 15 by default: beside
    any normal process a trial then gets a small fraction of a core."""
    if niceness is None or NICENESS_ENV in os.environ:
        return {}
    return {NICENESS_ENV: str(int(niceness))}


@contextmanager
def ray_session(
    address: str = "auto", num_cpus: int = 0, out: Callable[[str], None] = print, worker_niceness: int | None = 0
) -> Iterator[None]:
    """Connect to a running cluster or start a local Ray instance (``num_cpus`` CPUs, 0 = all;
    its workers at ``worker_niceness``, None = Ray's default);
    disconnect, and stop a local instance, on exit — also on Ctrl-C and errors, so that an
    interrupted sweep leaves no Ray processes behind. Uses an already-initialized Ray as is."""
    import ray

    if ray.is_initialized():
        yield
        return
    addr = cluster_address(address)
    try:
        if addr is not None:
            try:
                ray.init(address=addr, log_to_driver=False, configure_logging=False)
                out(f"attached to the Ray cluster at {addr}")
            except (ConnectionError, RuntimeError) as e:
                if address not in ("auto", "") or os.environ.get("RAY_ADDRESS"):
                    raise AutoALError(f"sweep.address: cannot attach to the Ray cluster at {addr}: {e}") from e
                out(f"no running Ray cluster at {addr} ({type(e).__name__}); starting a local one")
                addr = None
        if addr is None:
            n = int(num_cpus) or _available_cpus()
            env = worker_niceness_env(worker_niceness)
            os.environ.update(env)  # read by the raylet that ray.init starts, which its workers inherit
            try:
                ray.init(
                    address="local", num_cpus=n, include_dashboard=False, log_to_driver=False, configure_logging=False
                )
            finally:
                for k in env:
                    os.environ.pop(k, None)
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()
