"""Strategy registry: ``build_strategy(name, **params)`` by the names in config."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from autoal.errors import ConfigError
from autoal.strategies.base import Strategy

_STRATEGIES: dict[str, Callable[..., Strategy]] = {}


def register_strategy(name: str):
    def deco(cls):
        cls.name = name
        _STRATEGIES[name] = cls
        return cls
    return deco


def _import_all() -> None:
    import importlib
    for mod in ("candidates", "typiclust", "baselines", "autoal_search"):
        try:
            importlib.import_module(f"autoal.strategies.{mod}")
        except ModuleNotFoundError as e:  # modules are optional while the package grows
            if e.name != f"autoal.strategies.{mod}":
                raise


def strategy_names() -> list[str]:
    _import_all()
    return sorted(_STRATEGIES)


def build_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate a strategy; unknown names or parameters raise ConfigError listing choices."""
    _import_all()
    if name not in _STRATEGIES:
        raise ConfigError(f"strategy.name: unknown strategy {name!r}; valid choices: {', '.join(sorted(_STRATEGIES))}")
    cls = _STRATEGIES[name]
    sig = inspect.signature(cls)
    valid = [p for p in sig.parameters if p not in ("self", "args", "kwargs")]
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ConfigError(f"strategy ({name}): unknown parameter(s) {', '.join(unknown)}; "
                          f"valid parameters: {', '.join(valid) or '(none)'}")
    return cls(**params)
