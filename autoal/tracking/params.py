"""What a run's tracking record names: a nested config as MLflow params
(:func:`config_params`, :func:`flatten`) and the code's version (:func:`git_sha`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_params(d: dict[str, Any]) -> dict[str, str]:
    """A nested config as MLflow params: flat ``a.b.c`` keys, values in JSON syntax (``0.001``,
    ``true``, ``[0, 1]``; strings as they are), and no param for a null or an empty mapping (MLflow
    params are strings; this keeps "None" and "{}" out of the UI and makes the values parseable)."""
    out = {}
    for k, v in flatten(d).items():
        if v is None or v == {} or v == []:
            continue
        out[k] = v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config → flat ``a.b.c`` params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
