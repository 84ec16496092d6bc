"""A Griffe extension for the docs site (mkdocs.yml): a class or function marked with
``@public_api`` or ``@developer_api`` (:mod:`autoal.api_marker`) opens its entry with the level
and what it promises (``autoal.api_marker.LEVELS``), so the API pages say which names users may
rely on. The marks are read from the source (the decorators), as Griffe reads everything else."""

from __future__ import annotations

from typing import Any

import griffe

from autoal.api_marker import LEVELS

#: decorator path -> level
MARKS = {f"autoal.api_marker.{level}_api": level for level in LEVELS}


def marked_level(obj: griffe.Object) -> str | None:
    """The level a class or function is marked with, or None."""
    for deco in getattr(obj, "decorators", None) or ():
        level = MARKS.get(deco.callable_path)
        if level is not None:
            return level
    return None


def note(level: str) -> str:
    """The line that opens a marked object's documentation."""
    return f"*{LEVELS[level]}*"


class ApiMarker(griffe.Extension):
    """Prepends :func:`note` to the docstring of every marked class and function of a package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        level = marked_level(obj)
        if level is not None:
            text = obj.docstring.value if obj.docstring is not None else ""
            if not text.startswith(note(level)):
                obj.docstring = griffe.Docstring(f"{note(level)}\n\n{text}".rstrip(), parent=obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)
