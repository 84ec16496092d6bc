"""A labeling project remembers the settings (config overrides) of its last successful export,
and later commands start from them: a setting given again replaces the stored one, so a forgotten
``strategy=...`` never silently changes the sequence of queries.

Paths are stored absolute (:func:`pin_paths`): a relative ``labeling.images``, ``labeling.seed_csv``
or ``tracking.uri`` (the default ``sqlite:///mlflow.db`` included) is resolved against the working
folder of the command that gives it, once, so that a later command from any other folder (a team
member's shell, a cron job) uses the same images and the same MLflow store. (A project created
before this kept them as typed; its next export stores them resolved against that export's folder.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from autoal.containment import inside
from autoal.errors import ConfigError
from autoal.state import atomic_write_json
from autoal.paths import user_path

SETTINGS = "settings.json"  # in the project folder: the overrides of the last successful export
NOT_STORED = ("labeling.project", "labeling.allow_partial")  # per command, never remembered
PATH_KEYS = (("labeling", "images"), ("labeling", "seed_csv"))  # stored resolved against the working folder
_FIX = "replace the link with a real file, or delete it and pass the settings on the command line"


def override_key(override: str) -> str:
    """``a.b=c`` -> ``a.b`` (Hydra's ``+``/``~`` prefixes dropped)."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(stored: list[str], given: list[str]) -> list[str]:
    """Stored settings first, then the command line's; a key given again replaces the stored one."""
    keys = {override_key(o) for o in given}
    return [o for o in stored if override_key(o) not in keys] + list(given)


def project_dir(overrides: list[str], usage: str = "") -> Path:
    """The project folder named by the last ``labeling.project=...`` of ``overrides``."""
    vals = [o.split("=", 1)[1] for o in overrides if override_key(o) == "labeling.project" and "=" in o]
    if not vals or not vals[-1]:
        raise ConfigError(
            "labeling.project: required, e.g. labeling.project=/data/photos-al" + (f" ({usage})" if usage else "")
        )
    return user_path(vals[-1]).resolve()


def stored_overrides(project: Path) -> list[str]:
    """The overrides stored in ``project`` ([] for a new project); an unreadable file is a
    ConfigError naming it."""
    f = Path(project) / SETTINGS
    inside(project, f, what="the project's stored settings", fix=_FIX)  # never read through a link leading outside
    if not f.is_file():
        return []
    try:
        d = json.loads(f.read_text())
        out = d["overrides"]
        if not isinstance(out, list) or not all(isinstance(o, str) for o in out):
            raise TypeError("'overrides' is not a list of strings")
        return out
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{f}: the project's stored settings are unreadable ({e}); delete the file and pass "
            "the settings on the command line"
        ) from None


def store_overrides(project: Path, overrides: list[str]) -> None:
    """Remember ``overrides`` (less the per-command ones) for the project's next commands."""
    f = Path(project) / SETTINGS
    inside(project, f, what="the project's stored settings", fix=_FIX)
    atomic_write_json(f, {"overrides": [o for o in overrides if override_key(o) not in NOT_STORED]})


def pin_paths(d: dict, overrides: list[str], override: Callable[[str, str], str]) -> list[str]:
    """Resolve the composed config ``d``'s relative paths against the working folder (in place:
    ``labeling.images``, ``labeling.seed_csv``, a local ``tracking.uri``) and return ``overrides``
    with those keys replaced by their absolute values (the form :func:`store_overrides` keeps),
    each written by ``override(key, value)`` (the CLI's quoting for its config grammar)."""
    from autoal.tracking import absolute_tracking_uri

    pinned: dict[str, str] = {}
    for section, key in PATH_KEYS:
        v = d.get(section, {}).get(key)
        if isinstance(v, str) and v.strip():
            d[section][key] = str(user_path(v).resolve())
            pinned[f"{section}.{key}"] = d[section][key]
    tr = d.get("tracking", {})
    if isinstance(tr.get("uri"), str) and tr["uri"]:
        tr["uri"] = absolute_tracking_uri(tr["uri"])
        pinned["tracking.uri"] = tr["uri"]
    return [o for o in overrides if override_key(o) not in pinned] + [override(k, v) for k, v in pinned.items()]
