"""A Griffe extension for the docs site (mkdocs.yml): the docstrings' Sphinx roles
(``:func:`run```, ``:class:`~autoal.loop.RunResult```, ``:meth:``, ``:mod:``, ...) become
mkdocs-autorefs cross-references, resolved in the docstring's own scope. A target that the site
documents becomes a link; one it does not (a private helper) stays code, without a warning.
reST's literal-block marker (a paragraph ending in ``::``) becomes a plain colon: the indented
block after it is already a Markdown code block."""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

LITERAL_MARK = re.compile(r"(?m)(\S)::[ \t]*$|^[ \t]*::[ \t]*\n")
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`(~?)([\w.]+)(?:\(\))?`")


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as the docstring of ``obj`` means it; ``name`` itself when it
    is already absolute or cannot be resolved."""
    first, _, rest = name.partition(".")
    if first == "autoal":
        return name
    try:
        base = obj.resolve(first)
    except (griffe.NameResolutionError, Exception):  # an unknown name stays as written
        return name
    return f"{base}.{rest}" if rest else base


def convert(obj: griffe.Object, text: str) -> str:
    """``text`` with every Sphinx role replaced by an optional autorefs reference."""

    def repl(m: re.Match) -> str:
        short, name = m.group(1) == "~", m.group(2)
        shown = name.rsplit(".", 1)[-1] if short else name
        return (
            f'<autoref identifier="{html.escape(_target(obj, name))}" optional>'
            f"<code>{html.escape(shown)}</code></autoref>"
        )

    text = LITERAL_MARK.sub(lambda m: f"{m.group(1)}:" if m.group(1) else "", text)
    return ROLE.sub(repl, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = convert(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)
