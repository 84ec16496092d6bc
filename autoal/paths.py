"""Where autoal finds its YAML config groups: ``autoal/conf`` inside the installed package
(wheel, editable or source install alike), so any script or console command finds them from any
folder (``ray submit`` copies a script alone to the head node's home folder)."""

from __future__ import annotations

import os
from pathlib import Path

#: the config groups' package, as Hydra's ``pkg://`` search path names it
CONF_PACKAGE = "autoal.conf"


def user_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded where the user exists, else unchanged:
    unlike :meth:`pathlib.Path.expanduser`, an unknown user (``~0``) is a plain folder name,
    never an exception."""
    return Path(os.path.expanduser(os.fspath(path)))


def packaged_conf_dir() -> Path:
    """The ``conf/`` folder shipped inside the package."""
    return (Path(__file__).resolve().parent / "conf").resolve()


def conf_dir() -> Path:
    """``$AUTOAL_CONF_DIR`` (a config tree of one's own, e.g. a copy with extra groups), else the
    package's ``autoal/conf``."""
    env = os.environ.get("AUTOAL_CONF_DIR")
    if env:
        return user_path(env).resolve()
    return packaged_conf_dir()
