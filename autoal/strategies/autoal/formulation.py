"""The small interface every AutoAL formulation meets, and the candidates it mixes.

A formulation is built from its params (:mod:`autoal.strategies.autoal.params`) and holds the
state of one run: ``query(ctx)`` returns the round's picks, ``needs`` says what the context must
carry (the candidates' needs included), ``state_dict``/``load_state_dict`` save and restore it.
:class:`autoal.strategies.autoal.strategy.AutoAL` picks one by ``strategy.params.formulation``.

Candidates are built through the strategy registry (:func:`build_candidates`): any registered
:class:`~autoal.strategies.base.PoolStrategy` — one of autoal's or a user's — is a candidate by
its name, like ALBL's arms.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from autoal.errors import ConfigError, StateError
from autoal.strategies.base import PoolStrategy, QueryContext
from autoal.strategies.registry import build_strategy, strategy_names

#: the version of the ``autoal`` strategy's saved state (look-ahead and paper formulations)
STATE_VERSION = 1


def build_candidate(key: str, name: Any, params_key: str | None = None, **params: Any) -> PoolStrategy:
    """The registered strategy ``name`` with its defaults (or ``params``), as a candidate: it must
    choose from the round's caches (a :class:`PoolStrategy`). A ConfigError names
    ``strategy.params.<key>``, or ``strategy.params.<params_key>.<its key>`` for a bad value of
    ``params`` set by the user under ``params_key``."""
    if not isinstance(name, str) or name not in strategy_names():
        raise ConfigError(
            f"strategy.params.{key}: expected the name of a registered strategy; got {name!r} "
            f"(registered: {', '.join(strategy_names())})"
        )
    try:
        strategy = build_strategy(name, **params)
    except ConfigError as e:
        if params_key is None:
            raise
        message, own = str(e), "strategy.params."  # a candidate's own parameter: name where it was set
        nested = f"{own}{params_key}."
        raise ConfigError(
            nested + message[len(own) :] if message.startswith(own) else f"{nested[:-1]}: {message}"
        ) from None
    if not isinstance(strategy, PoolStrategy):
        raise ConfigError(
            f"strategy.params.{key}: {name!r} is not a pool strategy (it trains models of its own); "
            "choose one that picks from the round's caches (e.g. typiclust, kmeans, margin)"
        )
    return strategy


def build_candidates(names: Sequence[str], key: str = "candidates") -> list[PoolStrategy]:
    """One candidate per name (:func:`build_candidate`), in order."""
    return [build_candidate(key, n) for n in names]


def candidate_needs(candidates: Sequence[PoolStrategy]) -> frozenset[str]:
    """What the candidates read from the context, together."""
    return frozenset().union(*(c.needs for c in candidates))


def seeded_query(ctx: QueryContext, query: Callable[[], np.ndarray]) -> np.ndarray:
    """``query()`` under torch's global RNG seeded by the round (``ctx.seed``), restored after:
    the search's draws do not move the task model's."""
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(ctx.seed) % (2**63 - 1))
        return query()


def saved_rounds(state: dict[str, Any]) -> int:
    """The ``rounds_done`` of a saved ``autoal`` state, after checking its version."""
    if state.get("version") != STATE_VERSION:
        raise StateError(f"autoal strategy state has version {state.get('version')!r}; expected {STATE_VERSION}")
    rounds_done = state.get("rounds_done", 0)
    if isinstance(rounds_done, bool) or not isinstance(rounds_done, int) or rounds_done < 0:
        raise StateError(f"strategy state: 'rounds_done' must be an integer >= 0; got {rounds_done!r:.40}")
    return rounds_done


class Formulation(ABC):
    """One AutoAL formulation: its candidates, what it needs, a round's picks and its state."""

    name: ClassVar[str]
    candidates: list[PoolStrategy]
    needs: frozenset[str]
    #: rounds queried so far (saved with the state)
    rounds_done: int = 0

    @property
    def names(self) -> list[str]:
        """The candidates' names, in order."""
        return [c.name for c in self.candidates]

    @abstractmethod
    def query(self, ctx: QueryContext) -> np.ndarray:
        """The round's picks: ``ctx.n`` distinct indices of ``ctx.unlabeled``."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """What resume needs (tensors and plain containers)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
