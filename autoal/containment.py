"""Containment: every path autoal writes, deletes or reads inside a folder it owns — a run folder,
a sweep's storage, a labeling project, the images folder a project reads — lies inside that folder
once symbolic links and ``..`` are resolved.

A run folder or a labeling project received from someone else (or damaged by hand) may hold a
link such as ``rounds -> /home/you/other`` or a file list entry such as ``../../private.png``;
followed blindly, a write, a checkpoint pruning or an image read would reach outside. Both sides
are resolved first (:func:`resolved`), so a root that is itself a link the user made on purpose
(``runs -> /big/disk/runs``) keeps working: what counts is where the path really lies.

:func:`inside` checks one path; :func:`check_tree` every link under a root (run once before a
command changes anything, so that a refusal leaves every file as it was)."""

from __future__ import annotations

import os
from pathlib import Path

from autoal.errors import AutoALError, StateError

#: the advice that ends every containment error unless the caller names its own
DEFAULT_FIX = "replace the link with a real folder or file, or remove the entry"


def resolved(path: str | os.PathLike[str], error: type[AutoALError] = StateError) -> Path:
    """``path`` (``~`` expanded) made absolute with every symbolic link followed and ``..`` applied
    (the parts that do not exist yet are appended as written). A link loop, or a name no file system accepts (a
    NUL byte, an unknown ``~user``), is ``error`` naming the path."""
    try:
        return Path(os.path.expanduser(path)).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # RuntimeError: Python 3.11's "Symlink loop from ..."
        raise error(
            f"{str(path)!r:.300}: cannot be resolved ({type(e).__name__}: {e}); give a path without looping "
            "links or NUL bytes"
        ) from None


def inside(
    root: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    what: str = "path",
    fix: str = DEFAULT_FIX,
    error: type[AutoALError] = StateError,
) -> Path:
    """``path`` (absolute, or relative to ``root``; a ``~`` in it is a name, not a home folder)
    resolved — links followed, ``..`` applied — provided it lies inside ``root`` resolved the
    same way (``root`` itself counts as inside); else ``error`` naming the path, where it leads,
    the root, and ``fix``."""
    base = resolved(root, error)
    given = Path(path)
    target = resolved(given if given.is_absolute() else base / given, error)
    if target != base and not target.is_relative_to(base):
        shown = given if given.is_absolute() else Path(os.path.expanduser(root)) / given
        raise error(
            f"{what} {shown} leads to {target}, outside {base} (through a symbolic link or '..'); autoal "
            f"writes, deletes and reads only inside {base}: {fix}"
        )
    return target


def check_tree(
    root: str | os.PathLike[str], *, what: str = "entry", fix: str = DEFAULT_FIX, error: type[AutoALError] = StateError
) -> None:
    """Refuse (``error``, as :func:`inside`) a symbolic link anywhere under ``root`` that leads
    outside ``root``; links that stay inside are allowed, links are never followed while walking.
    A ``root`` that does not exist holds nothing to check. Cost: one directory listing per folder
    (a run folder or a labeling project holds a few dozen entries)."""
    base = resolved(root, error)
    if not base.is_dir():
        return
    pending = [base]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:  # unreadable: nothing autoal could follow there either
            continue
        for entry in entries:
            if entry.is_symlink():
                inside(base, entry.path, what=what, fix=fix, error=error)
            elif entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))


__all__ = ["DEFAULT_FIX", "check_tree", "inside", "resolved"]
