"""Can a folder be created and written here? Asked before any work starts, so that a read-only
working directory (a mounted data volume, a container's read-only layer, a folder of another
user) is one clear line naming the config key, not an ``OSError`` after the data is loaded.

The check has no side effect: it walks up to the nearest existing ancestor of the folder and
asks the kernel (``access(2)``, which also answers for a read-only file system, even to root)
whether that ancestor can receive new entries.

A write that fails later for want of space (a full disk or quota, a file-size limit, a full
SQLite store) is named the same way: :func:`space_for` turns it into one
:class:`~autoal.errors.NoSpaceError` naming the config key and the file."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from autoal.errors import ConfigError, NoSpaceError
from autoal.paths import user_path


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def file_in_the_way(path: str | os.PathLike[str]) -> Path | None:
    """The file that stands where the folder ``path`` (or one of its parents) must be: ``path``
    itself or its nearest existing ancestor when that is not a folder; None when the way is clear.
    Nothing is created."""
    probe = nearest_existing(user_path(path).absolute())
    return None if probe.is_dir() else probe


def _read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_writable_folder(path: str | os.PathLike[str], key: str, example: str = "/tmp/autoal-runs") -> Path:
    """Return ``path`` resolved, or raise a :class:`ConfigError` naming ``key`` when the folder
    cannot be created or written: a file on the way, a read-only file system, no permission.
    Nothing is created."""
    target = user_path(path).resolve()
    probe = nearest_existing(target)
    if not probe.is_dir():
        raise ConfigError(
            f"{key}: {target} cannot be created: {probe} is a file; expected a folder (e.g. {key}={example})"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only_file_system(probe) else "no write permission"
        where = "" if probe == target else f" (its nearest existing folder {probe})"
        raise ConfigError(
            f"{key}: {target}{where} cannot be written: {why}; choose a writable folder, e.g. {key}={example}"
        )
    return target


#: errno values that mean "no room to write": the disk is full, the user's quota is, a file would
#: exceed the size limit of the file system or the process
SPACE_ERRNOS = frozenset(n for n in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if n is not None)
#: how SQLite (and SQLAlchemy, and MLflow around it) says the same
SQLITE_FULL = "database or disk is full"


def space_error(e: BaseException) -> BaseException | None:
    """The exception of ``e``'s chain (``e``, its causes and contexts) that says no space is left
    (an ``OSError`` with an errno of :data:`SPACE_ERRNOS`, or SQLite's "database or disk is
    full"), or None."""
    stack: list[BaseException | None] = [e]
    seen: set[int] = set()
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, OSError) and x.errno in SPACE_ERRNOS:
            return x
        if SQLITE_FULL in str(x).lower():
            return x
        stack += [x.__cause__, x.__context__]
    return None


def no_space_message(cause: BaseException, path: str | os.PathLike[str] | None, key: str | None = None) -> str:
    """One line for the space error ``cause`` (from :func:`space_error`): the file it names, else
    ``path``; the reason; and what to do (free space, or set ``key`` elsewhere)."""
    if isinstance(cause, OSError) and cause.errno in SPACE_ERRNOS:
        where = cause.filename if cause.filename is not None else path
        reason = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "the file would exceed the size limit"}.get(
            cause.errno, "no space left: the disk quota is exceeded"
        )
        reason += f" ({errno.errorcode.get(cause.errno, cause.errno)})"
    else:
        where, reason = path, f"no space left on the device (SQLite: {SQLITE_FULL})"
    fix = f", or point {key} at another disk" if key else ""
    return f"{key + ': ' if key else ''}{where if where is not None else 'a file'}: {reason}; free space there{fix}"


@contextmanager
def space_for(path: str | os.PathLike[str], key: str, store: bool = False) -> Iterator[None]:
    """Inside: a write that fails for want of space (:func:`space_error`) becomes one
    :class:`~autoal.errors.NoSpaceError` naming ``key`` and the file (else ``path``). A full
    SQLite store (which names no file) counts only where ``store`` says ``path`` is that store."""
    try:
        yield
    except NoSpaceError:
        raise
    except Exception as e:
        cause = space_error(e)
        if cause is None or not (store or isinstance(cause, OSError)):
            raise
        raise NoSpaceError(no_space_message(cause, path, key)) from e
