"""Checkpoints that never run code when loaded.

A checkpoint (a strategy's state, warm-start or final task-model weights, a labeling project's
strategy state, the Ray Train search state) holds tensors and plain containers only, and is read
with ``torch.load(weights_only=True)``: torch's restricted unpickler rebuilds tensors, dicts,
lists, tuples, sets, strings, bytes, numbers, booleans and None, and refuses every other global —
a run folder or a labeling project received from someone else is safe to open. What autoal writes
is made plain on save (:func:`plain_checkpoint`); a file that holds anything else is refused with
a :class:`~autoal.errors.StateError` naming it (:func:`safe_torch_load`)."""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoal.errors import StateError

#: leaves a checkpoint may hold as they are (exact types: a subclass pickles by its own class)
_SCALARS = (type(None), bool, int, float, str, bytes)
_LEAVES = (*_SCALARS, torch.dtype, torch.device, torch.Size)
_MAX_NAMED = 3


def plain_checkpoint(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` as tensors and plain containers, which ``torch.load(weights_only=True)`` reads
    back: NumPy scalars become Python scalars and NumPy arrays tensors (same dtype and values);
    dicts, lists, tuples and sets are walked. Returns ``obj`` itself when nothing had to change
    (a model's ``state_dict`` keeps its ``_metadata``). Anything else (a dataclass, a generator,
    an object) is a TypeError naming where it sits: a ``state_dict`` must return plain values."""
    return _plain(obj, where)


def _plain(o: Any, where: str) -> Any:
    if isinstance(o, torch.Tensor) or type(o) in _LEAVES:
        return o
    if isinstance(o, np.generic):
        if isinstance(o, (np.void, np.object_)) or type(o.item()) not in _SCALARS:
            raise TypeError(f"{where}: cannot checkpoint the NumPy {o.dtype} value {o!r:.60}")
        return o.item()
    if isinstance(o, np.ndarray):
        try:
            return torch.from_numpy(np.ascontiguousarray(o)).clone()
        except TypeError:
            raise TypeError(
                f"{where}: cannot checkpoint a NumPy array of dtype {o.dtype} (a checkpoint holds "
                "tensors and plain values only)"
            ) from None
    if type(o) in (dict, OrderedDict):
        items = [(_plain(k, f"{where} (a key)"), _plain(v, f"{where}[{k!r:.40}]")) for k, v in o.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, o.items())):
            return o
        out = type(o)(items)
        if hasattr(o, "_metadata"):  # torch's state_dict version record
            out._metadata = o._metadata  # type: ignore[attr-defined]
        return out
    if type(o) in (list, tuple, set):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(o)]
        return o if all(a is b for a, b in zip(items, o)) else type(o)(items)
    raise TypeError(
        f"{where}: cannot checkpoint a {type(o).__module__}.{type(o).__qualname__} (a checkpoint holds "
        "tensors, dicts, lists, tuples, sets, strings, numbers, booleans and None only, so that loading "
        "it never runs code); return plain values from state_dict()"
    )


def safe_torch_load(
    path: str | Path, map_location: Any = "cpu", hint: str = "move the run folder away to start the run afresh"
) -> Any:
    """``torch.load(path, weights_only=True)``: a checkpoint that holds a global torch does not
    allow (one whose unpickling could run code) is refused, naming the file and the global; an
    unreadable one (truncated, not a checkpoint) too. Both are one-line StateErrors ending with
    ``hint``; nothing in the file is executed."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        names = _unsafe_globals(path, str(e))
        if names:
            raise StateError(
                f"refusing to load {path}: it holds {names}, which could run code (autoal writes tensors "
                f"and plain values only); {hint}"
            ) from None
        raise StateError(
            f"{path}: checkpoint is unreadable as tensors and plain values ({_reason(e)}); {hint}"
        ) from None
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise StateError(f"{path}: checkpoint is unreadable ({type(e).__name__}: {_reason(e)}); {hint}") from None


def _unsafe_globals(path: Path, message: str) -> str:
    """The globals that made the weights-only unpickler refuse ``path``, as text ('' if none):
    every one the file names (read statically from a ``torch.save`` zip), else the one in the
    error message."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint: the message names the first
        found = []
    if not found:
        m = re.search(r"GLOBAL (\S+?)(?: was not| whose module|\s*$)", message, re.M) or re.search(
            r"unrecognized function (.+?)(?: which belongs|$)", message, re.M
        )
        found = [m.group(1)] if m else []
    shown = ", ".join(found[:_MAX_NAMED]) + (f" and {len(found) - _MAX_NAMED} more" if len(found) > _MAX_NAMED else "")
    return shown


def _reason(e: BaseException) -> str:
    """The informative part of torch's (multi-line) error, on one line."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
        text = text.split("Check the documentation of torch.load")[0]
    return " ".join(text.split())[:200] or type(e).__name__


__all__ = ["plain_checkpoint", "safe_torch_load"]
