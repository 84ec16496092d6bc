"""Query strategies: the contract, the registry and the candidates of AutoAL's pool."""

from autoal.strategies.base import PoolStrategy, QueryContext, ScoreStrategy, Strategy
from autoal.strategies.registry import build_strategy, register_strategy, strategy_names

__all__ = [
    "PoolStrategy",
    "QueryContext",
    "ScoreStrategy",
    "Strategy",
    "build_strategy",
    "register_strategy",
    "strategy_names",
]
