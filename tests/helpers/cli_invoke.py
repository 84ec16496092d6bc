"""Shared by the command-line tests: ``autoal <args>`` run in this process, and a dotted key as
a nested mapping."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from autoal.cli import main as autoal_main


def invoke(args: list[str]) -> tuple[int, str, str]:
    """``autoal <args>`` in this process: (exit code, stdout, stderr). Any exception other than
    SystemExit propagates and fails the test (a traceback for the user)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            autoal_main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def nested(key: str, value: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    node = d
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return d
