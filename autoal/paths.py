"""Where autoal finds its YAML config groups, independent of the calling script's location
(``ray submit`` copies a script alone to the head node's home folder)."""
from __future__ import annotations

import os
from pathlib import Path


def conf_dir() -> Path:
    """``$AUTOAL_CONF_DIR``, else ``./conf`` when it holds ``config.yaml``, else the ``conf/``
    beside the installed package (editable or source install)."""
    env = os.environ.get("AUTOAL_CONF_DIR")
    if env:
        return Path(env).expanduser().resolve()
    cwd = Path.cwd() / "conf"
    if (cwd / "config.yaml").exists():
        return cwd.resolve()
    return (Path(__file__).resolve().parent.parent / "conf").resolve()
