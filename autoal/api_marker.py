"""Which names a user may rely on. ``@public_api`` marks what users import and build on
(``autoal.run``/``autoal.query``, the strategy contract and its registry, ``ModuleAdapter``, the
data set API); ``@developer_api`` marks what extensions use (a registry, a backbone's contract,
a strategy's Ray declaration) and may change between minor versions. Anything unmarked is
internal.

A mark is an attribute on the class or function itself (the object is returned unchanged: no
wrapper); :func:`api_level` reads it, and the documentation site prints the level at the top of
the object's entry (``scripts/docs_api_marker.py``). Import-light: no torch, no NumPy.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

#: the attribute a mark sets on the marked class or function
ATTR = "__autoal_api__"
PUBLIC = "public"
DEVELOPER = "developer"
#: what each level promises, as the documentation site prints it
LEVELS = {
    PUBLIC: "Public API: users may import it and rely on it; it changes only after a deprecation.",
    DEVELOPER: "Developer API: for extensions (strategies, data sets, backbones, executors); it may change "
    "between minor versions.",
}


def _mark(obj: T, level: str) -> T:
    if not callable(obj):
        raise TypeError(f"@{level}_api marks a class or a function; got {type(obj).__name__}")
    setattr(obj, ATTR, level)
    return obj


def public_api(obj: T) -> T:
    """Mark a class or function as public API (users import it; changed only after a
    deprecation)."""
    return _mark(obj, PUBLIC)


def developer_api(obj: T) -> T:
    """Mark a class or function as developer API (for extensions; may change between minor
    versions)."""
    return _mark(obj, DEVELOPER)


def api_level(obj: Any) -> str | None:
    """``"public"``, ``"developer"``, or None (internal) for ``obj``. A class's mark is its own:
    a subclass of a public class is not public unless marked itself."""
    return (getattr(obj, "__dict__", None) or {}).get(ATTR)


__all__ = ["ATTR", "DEVELOPER", "LEVELS", "PUBLIC", "api_level", "developer_api", "public_api"]
