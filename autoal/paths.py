"""Where autoal finds its YAML config groups: ``autoal/conf`` inside the installed package
(wheel, editable or source install alike), so any script or console command finds them from any
folder (``ray submit`` copies a script alone to the head node's home folder)."""
from __future__ import annotations

import os
from pathlib import Path

#: the config groups' package, as Hydra's ``pkg://`` search path names it
CONF_PACKAGE = "autoal.conf"


def packaged_conf_dir() -> Path:
    """The ``conf/`` folder shipped inside the package."""
    return (Path(__file__).resolve().parent / "conf").resolve()


def conf_dir() -> Path:
    """``$AUTOAL_CONF_DIR`` (a config tree of one's own, e.g. a copy with extra groups), else the
    package's ``autoal/conf``."""
    env = os.environ.get("AUTOAL_CONF_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return packaged_conf_dir()
