"""YAML files a person writes (a cluster file, a sweep file, a config folder of one's own): read
as plain YAML (``yaml.safe_load``: no tag that builds a Python object), and any problem as one
line naming the file, the line and column, and what is wrong there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from autoal.errors import ConfigError

_TAG = re.compile(r"for the tag '(?:tag:yaml\.org,2002:)?([^']*)'")


def yaml_problem(e: BaseException, path: str | Path | None = None) -> str:
    """``e`` (a ``yaml.YAMLError``) as ``<file>: line L, column C: <problem>``; the file is
    ``path``, else the one the error's position names (Hydra reads its files by name)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    name = str(path) if path is not None else getattr(mark, "name", None)
    if name is None or name.startswith("<"):
        name = "YAML"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    tag = _TAG.search(str(problem))
    if tag:
        problem = (
            f"the tag !!{tag.group(1)} is refused (plain YAML only: mappings, lists, strings, numbers, booleans, null)"
        )
    else:
        context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if (
            context
            and cmark is not None
            and mark is not None
            and (cmark.line, cmark.column) != (mark.line, mark.column)
        ):
            context = f"{context} (from line {cmark.line + 1}, column {cmark.column + 1})"
        problem = f"{context}: {problem}" if context else str(problem)
    return f"{name}: {where}not valid YAML: {problem}"


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The contents of the YAML file at ``path``; a missing or unreadable file, or text that is
    not plain YAML, is a ConfigError naming the file (and the line and column)."""
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid YAML: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(yaml_problem(e, path)) from None
