"""The allowed range of every number of the run config, declared on the field it bounds
(``lr: float = bounded(1e-3, 0, 10, low_open=True)``) and checked by one function,
:func:`check_bounds`, that :meth:`autoal.config.RunConfig.validate` calls (hence
``RunConfig.from_dict``, ``autoal run --check`` and every run, before anything is written).
A value outside its range is one :class:`~autoal.errors.ConfigError` naming the key, the value
and the range."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from autoal.errors import ConfigError


@dataclass(frozen=True)
class Bound:
    """The interval ``low .. high`` (None: unbounded on that side; ``*_open``: the end itself is
    excluded) and a note that says what the number means, for the error message."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def __contains__(self, v: float) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return not (self.high is not None and (v >= self.high if self.high_open else v > self.high))

    def __str__(self) -> str:
        """``lie in (0, 10]``, ``be >= 1``: the range, to follow ``must``."""
        if self.high is None:
            return f"be {'>' if self.low_open else '>='} {_num(self.low)}" if self.low is not None else "be finite"
        low = "-inf" if self.low is None else _num(self.low)
        opening = "(" if self.low_open or self.low is None else "["
        return f"lie in {opening}{low}, {_num(self.high)}{')' if self.high_open else ']'}"


def _num(x: float) -> str:
    """``x`` as written in a config: 10, 0.001, 4294967296 (not 4.29497e+09)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def bounded(
    default: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
) -> Any:
    """A dataclass field with ``default`` whose value must lie in the :class:`Bound` given (None,
    where the field allows it, is not checked)."""
    return field(default=default, metadata={"bound": Bound(low, high, low_open, high_open, note)})


def choice(default: Any, options: tuple, *, note: str = "") -> Any:
    """A dataclass field with ``default`` whose value must be one of ``options`` (None, where the
    field allows it, is not checked)."""
    return field(default=default, metadata={"choices": tuple(options), "note": note})


def choices_of(f: dataclasses.Field) -> tuple | None:
    """The options declared on the dataclass field ``f`` by :func:`choice`, or None."""
    return f.metadata.get("choices")


def bound_of(f: dataclasses.Field) -> Bound | None:
    """The :class:`Bound` declared on the dataclass field ``f``, or None."""
    return f.metadata.get("bound")


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Raise ConfigError for the first bounded field of the dataclass ``obj`` (nested dataclasses
    included, their keys prefixed ``section.``) whose value is not a finite number in its range,
    or of a :func:`choice` field whose value is not one of its options."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_bounds(value, f"{where}.")
            continue
        options = choices_of(f)
        if options is not None and value is not None and value not in options:
            note = f" ({f.metadata['note']})" if f.metadata.get("note") else ""
            raise ConfigError(f"{where}: expected one of {', '.join(map(str, options))}{note}; got {value!r}")
        b = bound_of(f)
        if b is None or value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or (not isinstance(value, numbers.Integral) and not math.isfinite(value))
        ):
            raise ConfigError(f"{where}: expected a finite number (it must {b}); got {value!r}")
        if value not in b:
            shown = repr(value) if len(repr(value)) <= 40 else f"an integer of {len(str(abs(value)))} digits"
            raise ConfigError(f"{where}: must {b}{' (' + b.note + ')' if b.note else ''}; got {shown}")
