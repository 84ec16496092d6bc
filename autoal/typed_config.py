"""One typed-config path for every config section of autoal: a section is a dataclass whose fields
declare their type (the annotation: ``int``, ``float | None``, ``list[str]``, ``dict[str, Any]``)
and, where they have one, their range or options (:func:`autoal.bounds.bounded`,
:func:`autoal.bounds.choice`). :func:`build_typed` turns a mapping into such a dataclass: unknown
keys, values of the wrong type (:func:`coerce`) and values out of range
(:func:`autoal.bounds.check_bounds`) each raise one :class:`~autoal.errors.ConfigError` naming
``<prefix><key>``. :func:`check_typed` applies the same rules to an instance built in code.

Used by the run config (:meth:`autoal.config.RunConfig.from_dict`), strategy parameters
(:func:`autoal.strategies.registry.build_strategy`: a strategy's ``params_type`` dataclass, or one
made from its constructor's signature), the sweep spec and the labeling config."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from autoal.bounds import check_bounds
from autoal.errors import ConfigError

#: the annotation names a field's kind is read from; "any" (Any, object, several kinds): unchecked
_KINDS = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "dict": dict,
    "Mapping": dict,
    "list": list,
    "tuple": list,
    "Sequence": list,
}
_EXPECTED = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a mapping",
    list: "a list",
}


def _split_union(ann: str) -> list[str]:
    """``"list[int] | dict[str, Any] | None"`` → its top-level parts, brackets respected."""
    parts, depth, cur = [], 0, ""
    for ch in ann:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*parts, cur.strip()]


def field_type(f: dataclasses.Field) -> tuple[type | None, bool]:
    """(the kind of a config field: bool, int, float, str, dict or list, or None for a field of
    several kinds or of any value; whether null is allowed), from its annotation and default."""
    ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    ann = ann.replace("typing.", "")
    if ann.startswith("Optional[") and ann.endswith("]"):
        ann = f"{ann[len('Optional[') : -1]} | None"
    parts = _split_union(ann)
    nullable = "None" in parts or f.default is None
    kinds = {_KINDS.get(p.split("[", 1)[0].strip()) for p in parts if p != "None"}
    if len(kinds) == 1 and None not in kinds:
        return kinds.pop(), nullable
    default = f.default if f.default is not dataclasses.MISSING else None
    return (type(default) if not kinds and type(default) in (bool, int, float, str) else None), nullable


def coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    """``value`` checked against the field's kind (:func:`field_type`) and converted to it: null
    only where the field allows it, booleans as booleans, integers integral (``3.0`` → 3),
    numbers finite (no NaN or infinity; an int becomes a float for a float field), strings as
    strings, mappings and lists (or tuples) as such; a field of any kind takes any value."""
    t, nullable = field_type(f)
    if value is None:
        if nullable or t is None:
            return None
        raise ConfigError(f"{where}: expected {_EXPECTED[t]}; got null")
    if t is None:
        return value
    if t is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false; got {value!r}")
        return value
    if t in (int, float):
        return _number(value, t is int, where)
    if t is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string; got {value!r}")
    if t is dict and not isinstance(value, Mapping) or t is list and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected {_EXPECTED[t]}; got {value!r:.200}")
    return value


def _number(value: Any, integer: bool, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{where}: expected {'an integer' if integer else 'a number'}; got {value!r}")
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number; got {value!r}")
    if integer and not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise ConfigError(f"{where}: expected an integer; got {value!r}")
    try:
        return int(value) if integer else float(value)
    except OverflowError:  # an integer of 400 digits for a float
        raise ConfigError(
            f"{where}: expected a finite number; got an integer of {len(str(abs(value)))} digits"
        ) from None


def _section(f: dataclasses.Field) -> type | None:
    """The dataclass of a nested section (a field whose default_factory is a dataclass), or None."""
    sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
    return sub if sub is not None and dataclasses.is_dataclass(sub) else None


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping; got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in fields]
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown config key; valid keys under "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in d.items():
        sub = _section(fields[name])
        if sub is not None:
            kwargs[name] = _build(sub, value if value is not None else {}, f"{prefix}{name}.")
        else:
            kwargs[name] = coerce(value, fields[name], f"{prefix}{name}")
    return cls(**kwargs)


def build_dataclass(cls: type, d: Mapping[str, Any], prefix: str) -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``d``: unknown keys and values of
    the wrong type raise ConfigError naming ``prefix`` + the key (nested dataclasses recurse).
    Ranges are not checked: :func:`build_typed` does both."""
    return _build(cls, d, prefix)


def build_typed(cls: type, d: Mapping[str, Any] | None, prefix: str) -> Any:
    """The one typed-config path: :func:`build_dataclass`, then every field's declared range or
    options (:func:`autoal.bounds.check_bounds`), errors naming ``prefix`` + the key."""
    obj = _build(cls, d if d is not None else {}, prefix)
    check_bounds(obj, prefix)
    return obj


def check_typed(obj: Any, prefix: str) -> None:
    """The rules of :func:`build_typed` for an instance built in code: every field's value checked
    against its type (and converted in place, ``3.0`` → 3), nested sections included, then the
    declared ranges and options."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_typed(value, f"{prefix}{f.name}.")
        else:
            setattr(obj, f.name, coerce(value, f, f"{prefix}{f.name}"))
    check_bounds(obj, prefix)
