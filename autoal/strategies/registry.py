"""Strategy registry: ``build_strategy(name, **params)`` by the names in config."""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

from autoal.api_marker import public_api
from autoal.errors import ConfigError
from autoal.registry import Registry
from autoal.strategies.base import Strategy

STRATEGIES: Registry[Callable[..., Strategy]] = Registry("strategy", "strategy.name", "autoal.strategies")


@public_api
def register_strategy(name: str):
    """Class decorator: register a :class:`Strategy` subclass under ``name`` (also its ``name``)."""
    def deco(cls):
        cls.name = name
        return STRATEGIES.register(name)(cls)
    return deco


@public_api
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


@public_api
def build_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate a strategy; unknown names or parameters raise ConfigError listing choices."""
    cls = STRATEGIES.get(name)
    defaults = strategy_defaults(name)
    unknown = [k for k in params if k not in defaults]
    for key in unknown:  # a renamed key: say what it is called now
        if renamed_param(getattr(cls, "renamed_params", None) or {}, key):
            raise ConfigError(renamed_param(cls.renamed_params, key))
    if unknown:
        raise ConfigError(f"strategy ({name}): unknown parameter(s) {', '.join(unknown)}; "
                          f"valid parameters: {', '.join(defaults) or '(none)'}")
    for key, value in params.items():
        check_param_type(f"strategy.params.{key}", value, defaults[key])
    try:
        return cls(**params)
    except (TypeError, ValueError, OverflowError) as e:  # a value of the right type the constructor refuses
        raise ConfigError(f"strategy ({name}): {e}") from None


def renamed_param(renamed: dict[str, str], key: str) -> str | None:
    """The one-line refusal of ``strategy.params.<key>`` when ``renamed`` (a strategy's
    ``renamed_params``, old key -> new key) says it was renamed, else None."""
    new = renamed.get(key)
    return None if new is None else f"strategy.params.{key} was renamed to strategy.params.{new}; write {new} instead"


def check_param_type(where: str, value: Any, default: Any) -> None:
    """A strategy parameter of the same kind as its default: true/false for a boolean default,
    a finite integer for an integer default, a finite number for a float default, a string for
    a string default (null, lists and mappings pass where the default is null or of that kind)."""
    import math

    if default is None or value is None and default is None:
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false; got {value!r}")
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise ConfigError(f"{where}: expected a finite {'integer' if isinstance(default, int) else 'number'}; "
                              f"got {value!r}")
        if isinstance(default, int) and float(value) != int(value):
            raise ConfigError(f"{where}: expected an integer; got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string; got {value!r}")
    elif isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list; got {value!r}")
    elif isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping; got {value!r}")
