"""Can a folder be created and written here? Asked before any work starts, so that a read-only
working directory (a mounted data volume, a container's read-only layer, a folder of another
user) is one clear line naming the config key, not an ``OSError`` after the data is loaded.

The check has no side effect: it walks up to the nearest existing ancestor of the folder and
asks the kernel (``access(2)``, which also answers for a read-only file system, even to root)
whether that ancestor can receive new entries."""
from __future__ import annotations

import os
from pathlib import Path

from autoal.errors import ConfigError


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_writable_folder(path: str | os.PathLike[str], key: str, example: str = "/tmp/autoal-runs") -> Path:
    """Return ``path`` resolved, or raise a :class:`ConfigError` naming ``key`` when the folder
    cannot be created or written: a file on the way, a read-only file system, no permission.
    Nothing is created."""
    target = Path(path).expanduser().resolve()
    probe = nearest_existing(target)
    if not probe.is_dir():
        raise ConfigError(f"{key}: {target} cannot be created: {probe} is a file; expected a folder "
                          f"(e.g. {key}={example})")
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only_file_system(probe) else "no write permission"
        where = "" if probe == target else f" (its nearest existing folder {probe})"
        raise ConfigError(f"{key}: {target}{where} cannot be written: {why}; choose a writable folder, "
                          f"e.g. {key}={example}")
    return target
