"""Strategy registry: ``build_strategy(name, **params)`` by the names in config."""
from __future__ import annotations

import dataclasses
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


def strategy_defaults(name: str) -> dict[str, Any]:
    """Every parameter of strategy ``name`` with its default: the fields of its ``params_type``
    dataclass when it declares one (AutoAL), else its constructor's keyword arguments."""
    cls = STRATEGIES.get(name)
    ptype = getattr(cls, "params_type", None)
    if ptype is not None:
        return {f.name: (f.default_factory() if f.default is dataclasses.MISSING else f.default)  # type: ignore[misc]
                for f in dataclasses.fields(ptype)}
    return {k: p.default for k, p in inspect.signature(cls).parameters.items() if k not in ("self", "args", "kwargs")}


def build_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate a strategy; unknown names or parameters raise ConfigError listing choices."""
    cls = STRATEGIES.get(name)
    valid = list(strategy_defaults(name))
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ConfigError(f"strategy ({name}): unknown parameter(s) {', '.join(unknown)}; "
                          f"valid parameters: {', '.join(valid) or '(none)'}")
    return cls(**params)
