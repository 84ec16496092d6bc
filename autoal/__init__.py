"""autoal: automated active learning (AutoAL, Wang, Zhan & Huang, ICML 2025).

    import autoal
    result = autoal.run((x_train, y_train, x_test, y_test), strategy="margin", rounds=10)
    picks = autoal.query(probs, n=10, strategy="margin")

See :mod:`autoal.api`; the modules below are the library's layers (docs/DESIGN.md §6).
``autoal.run`` and ``autoal.query`` are loaded on first use (PEP 562), so ``import autoal`` and
``autoal --help`` / ``--version`` do not import torch."""

from __future__ import annotations

from typing import Any

from autoal.version import __version__

__all__ = ["__version__", "query", "run"]

_LAZY = {"query": "autoal.api", "run": "autoal.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autoal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
