"""Strategy registry: ``build_strategy(name, **params)`` by the names in config."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from autoal.errors import ConfigError
from autoal.registry import Registry
from autoal.strategies.base import Strategy

STRATEGIES: Registry[Callable[..., Strategy]] = Registry("strategy", "strategy.name", "autoal.strategies")


def register_strategy(name: str):
    """Class decorator: register a :class:`Strategy` subclass under ``name`` (also its ``name``)."""
    def deco(cls):
        cls.name = name
        return STRATEGIES.register(name)(cls)
    return deco


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def build_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate a strategy; unknown names or parameters raise ConfigError listing choices."""
    cls = STRATEGIES.get(name)
    sig = inspect.signature(cls)
    valid = [p for p in sig.parameters if p not in ("self", "args", "kwargs")]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ConfigError(f"strategy ({name}): unknown parameter(s) {', '.join(unknown)}; "
                          f"valid parameters: {', '.join(valid) or '(none)'}")
    return cls(**params)
