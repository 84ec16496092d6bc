"""Strategy registry: ``build_strategy(name, **params)`` by the names in config."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

from autoal.api_marker import public_api
from autoal.errors import ConfigError
from autoal.registry import Registry
from autoal.strategies.base import Strategy
from autoal.typed_config import build_typed

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


def params_type_of(name: str) -> type:
    """The dataclass of strategy ``name``'s parameters: its ``params_type`` when it declares one
    (fields with types and :func:`~autoal.bounds.bounded` / :func:`~autoal.bounds.choice`
    ranges), else one made from its constructor's keyword arguments (their annotations and
    defaults: the types are checked, there are no ranges)."""
    cls = STRATEGIES.get(name)
    ptype = getattr(cls, "params_type", None)
    if ptype is not None:
        return ptype
    fields = []
    for k, p in inspect.signature(cls).parameters.items():
        if k in ("self", "args", "kwargs") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        spec = (
            dataclasses.field(default_factory=lambda d=default: d)
            if isinstance(default, (list, dict, set))
            else dataclasses.field(default=default)
        )
        ann = p.annotation
        if ann is inspect.Parameter.empty:  # unannotated: the kind of its default
            ann = type(default).__name__ if type(default) in (bool, int, float, str) else Any
        fields.append((k, ann, spec))
    return dataclasses.make_dataclass(f"{cls.__name__}Params", fields)


def strategy_defaults(name: str) -> dict[str, Any]:
    """Every parameter of strategy ``name`` with its default: the fields of its ``params_type``
    dataclass when it declares one (AutoAL), else its constructor's keyword arguments."""
    return {
        f.name: (f.default_factory() if f.default is dataclasses.MISSING else f.default)  # type: ignore[misc]
        for f in dataclasses.fields(params_type_of(name))
    }


@public_api
def build_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate a strategy; unknown names or parameters raise ConfigError listing choices, and
    every parameter is typed and range-checked by the one typed-config path
    (:func:`autoal.typed_config.build_typed` over :func:`params_type_of`)."""
    cls = STRATEGIES.get(name)
    ptype = params_type_of(name)
    names = [f.name for f in dataclasses.fields(ptype)]
    unknown = [k for k in params if k not in names]
    for key in unknown:  # a renamed key: say what it is called now
        if renamed_param(getattr(cls, "renamed_params", None) or {}, key):
            raise ConfigError(renamed_param(cls.renamed_params, key))
    if unknown:
        raise ConfigError(
            f"strategy ({name}): unknown parameter(s) {', '.join(unknown)}; "
            f"valid parameters: {', '.join(names) or '(none)'}"
        )
    typed = build_typed(ptype, params, "strategy.params.")
    try:
        return cls(**{k: getattr(typed, k) for k in params})
    except (TypeError, ValueError, OverflowError) as e:  # a value of the right type the constructor refuses
        raise ConfigError(f"strategy ({name}): {e}") from None


def renamed_param(renamed: dict[str, str], key: str) -> str | None:
    """The one-line refusal of ``strategy.params.<key>`` when ``renamed`` (a strategy's
    ``renamed_params``, old key -> new key) says it was renamed, else None."""
    new = renamed.get(key)
    return None if new is None else f"strategy.params.{key} was renamed to strategy.params.{new}; write {new} instead"
