"""The query-strategy contract.

A strategy receives a :class:`QueryContext` (the round's shared cache of the unlabeled pool, the
labeled and unlabeled indices, the query size, a seeded RNG, and — for strategies that declare
they need them — the task model, the data set and a cache of the labeled set) and returns the
dataset indices to label next.

One contract: ``query(ctx) -> indices``. Most strategies only score samples: subclass
:class:`ScoreStrategy` and implement ``compute_score(cache) -> (N,) tensor`` (higher = query
first). Strategies that pick a set from the caches (k-means, Coreset, BADGE, TypiClust) subclass
:class:`PoolStrategy` and implement ``select_positions(cache, n, rng, labeled)``. Strategies that
train models of their own implement ``query`` and say what they need in ``needs``.

``needs`` declares what a strategy uses beyond the pool's probabilities, so that the loop
computes it once and only when needed:

- ``embeddings``, ``mc``: parts of the shared pool cache;
- ``labeled_cache``: the same cache over the labeled set;
- ``model``, ``dataset``: the trained task model and the data (for gradient embeddings, extra
  models, re-training). The context also carries the run's ``learner``
  (:class:`autoal.learner.Learner`, see :class:`TaskLearner`): ``new_model(seed)``,
  ``train(model, indices, seed)``, ``score(model, indices, seed)`` and the task recipe
  ``train_cfg``, so that a strategy's own models are built and trained as the task model is;
- ``stages``: the task model's intermediate feature maps (``Backbone.stages``; a user's module
  names them, :class:`autoal.models.ModuleAdapter`);
- ``images``: the samples must be images (N, C, H, W) (a convolutional model of the strategy's
  own: VAAL); refused on feature data (:attr:`autoal.data.ALDataset.kind`).

A strategy whose query takes long says how far it is through ``ctx.progress(stage, done, total,
**info)`` (:class:`autoal.progress.Reporter`): ``done`` of ``total`` units of ``stage`` are
finished, counting up (0 may open a stage before its first unit; a lower ``done`` starts it
over); ``info`` adds a few numbers (losses). Stages are named ``<strategy>/<what>``
(``vaal/train``, ``ens_var_r/members``, ...). It is a no-op unless the run shows progress; the
loop draws it as a bar on a terminal, and in a log writes at most a line a minute for a stage
that runs that long (:mod:`autoal.progress`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import numpy as np
import torch

from autoal.api_marker import developer_api, public_api
from autoal.cache import PoolCache
from autoal.errors import StateError
from autoal.progress import NULL_REPORTER, as_reporter
from autoal.selection import mask_from_positions, top_n

NEEDS = frozenset({"probs", "embeddings", "mc", "labeled_cache", "model", "dataset", "images"})


class TaskLearner(Protocol):
    """What a strategy may ask of the task model's owner (:class:`autoal.learner.Learner`)."""

    train_cfg: Any

    def new_model(self, seed: int) -> torch.nn.Module: ...

    def train(self, model: torch.nn.Module, indices: np.ndarray, seed: int, progress: Any = None) -> list[float]: ...

    def score(self, model: torch.nn.Module, indices: np.ndarray, seed: int) -> PoolCache: ...


@public_api
@dataclass
class QueryContext:
    """Everything a strategy may use in one round. ``cache.indices == unlabeled``."""

    cache: PoolCache
    unlabeled: np.ndarray
    labeled: np.ndarray
    n: int
    rng: np.random.Generator
    round: int = 0
    seed: int = 0
    labeled_cache: PoolCache | None = None
    model: torch.nn.Module | None = None
    dataset: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: the run's learner: None where a strategy is used on a cache alone (strategies that train
    #: models of their own then say so through ``needs``)
    learner: TaskLearner | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    #: ``progress(stage, done, total, **info)`` (see the module docstring); True/False are
    #: accepted (a bar on stderr as :mod:`autoal.progress` decides / nothing)
    progress: Any = NULL_REPORTER

    def __post_init__(self) -> None:
        self.progress = as_reporter(self.progress)

    def log(self, key: str, value: float) -> None:
        """Record a per-round scalar (logged to MLflow with step = round)."""
        self.metrics[key] = float(value)


@developer_api
@dataclass(frozen=True)
class RayResources:
    """The Ray resources one run of a strategy needs beyond its own trial (DESIGN.md §5), as the
    strategy declares them (:meth:`Strategy.ray_resources`); a sweep reserves them for each
    trial (:func:`autoal.platform.sweep.plan_resources`).

    - ``task_bundles``: Ray tasks or actors the run starts as children of its trial, one
      bundle of the trial's placement group each (tasks that share a bundle run one after
      another). A bundle maps ``CPU``/``GPU`` to an amount; ``GPU`` is used only where the
      trial has a GPU, and ``GPU: None`` takes half of what the trial has (the trial keeps the
      rest). A bundle with nothing left takes one CPU.
    - ``train_workers``: Ray Train workers the run starts; they reserve a placement group of
      their own, outside the trial's (Train V2), one CPU each, and one GPU each where the trial
      has a GPU.
    """

    task_bundles: tuple[Mapping[str, float | None], ...] = ()
    train_workers: int = 0


@public_api
class Strategy(ABC):
    """The query-strategy contract: ``query(ctx)`` returns the dataset indices of the ``ctx.n``
    samples to label next (distinct, all from U). Subclasses set ``name`` and ``needs``.
    Strategies that choose from the round's caches alone subclass :class:`PoolStrategy`; those
    that train models of their own (LPL, VAAL, ENSvarR, ALBL, AutoAL) implement ``query`` and
    declare what they use in ``needs``."""

    name: str = "strategy"
    needs: frozenset[str] = frozenset({"probs"})

    @abstractmethod
    def query(self, ctx: QueryContext) -> np.ndarray:
        """Dataset indices of the ``ctx.n`` samples to label next (distinct, all from U)."""

    @classmethod
    def ray_resources(cls, params: Mapping[str, Any]) -> RayResources:
        """The Ray resources one run of this strategy needs beyond its own trial, for its
        ``strategy.params`` ``params`` (every key, defaults filled in). Default: none — the
        strategy runs in its trial's process. A strategy that starts Ray tasks, actors or Train
        workers overrides this, so that a sweep reserves them; undeclared, they may wait
        forever for resources the trials hold."""
        return RayResources()

    # Strategies with learned state (AutoAL, LPL, VAAL, ALBL) override these for resume.
    def state_dict(self) -> dict[str, Any]:
        """What resume needs: tensors and plain containers only (dicts, lists, tuples, strings,
        numbers, booleans, None), because checkpoints are read with ``weights_only=True``
        (:mod:`autoal.checkpoint_io`; NumPy values are stored as Python scalars and tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def saved_mapping(state: dict[str, Any], key: str, optional: bool = True) -> dict[str, Any] | None:
    """``state[key]``, a nested state dict a strategy keeps from its checkpoint to apply later
    (when its networks are built): a mapping, or None where ``optional``. Anything else is a
    StateError now, at load, not a failure in the middle of a round."""
    value = state.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise StateError(f"strategy state: {key!r} must be a mapping; got {type(value).__name__}")
    return value


def restore(target: Any, saved: dict[str, Any], what: str) -> None:
    """``target.load_state_dict(saved)`` (a module or an optimizer) with a saved state that does
    not fit (shapes, keys) as a StateError naming ``what``."""
    try:
        target.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise StateError(
            f"the saved {what} does not fit ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "move the run folder away to start the run afresh"
        ) from None


@public_api
class PoolStrategy(Strategy):
    """A strategy that is a function of the round's caches: the pool's (``cache``) and, for those
    that need it, the labeled set's (``labeled``). These can be AutoAL's candidates and ALBL's
    arms: :meth:`indicator` and :meth:`rank_score` are defined from :meth:`select_positions`."""

    @abstractmethod
    def select_positions(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> np.ndarray:
        """Row positions in ``cache`` of the ``n`` samples to query."""

    def query(self, ctx: QueryContext) -> np.ndarray:
        pos = self.select_positions(ctx.cache, ctx.n, ctx.rng, ctx.labeled_cache)
        return ctx.unlabeled[np.asarray(pos, dtype=np.int64)]

    def indicator(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> torch.Tensor:
        """S_k: 1 on the strategy's ``n`` picks inside ``cache``, 0 elsewhere (DESIGN.md §2)."""
        return mask_from_positions(self.select_positions(cache, n, rng, labeled), len(cache), device=cache.probs.device)

    def rank_score(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> torch.Tensor:
        """A score in [0, 1] by rank (1 = queried first). Default: the indicator."""
        return self.indicator(cache, n, rng, labeled)


@public_api
class ScoreStrategy(PoolStrategy):
    """A strategy defined by a per-sample score (higher = query first)."""

    @abstractmethod
    def compute_score(self, cache: PoolCache) -> torch.Tensor:
        """(N,) scores, a pure function of the cache."""

    def select_positions(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> np.ndarray:
        return top_n(self.compute_score(cache), n, rng)

    def rank_score(
        self, cache: PoolCache, n: int, rng: np.random.Generator, labeled: PoolCache | None = None
    ) -> torch.Tensor:
        s = self.compute_score(cache)
        m = s.shape[0]
        pos = top_n(s, m, rng)  # full seeded ranking
        r = torch.empty(m, device=s.device)
        r[torch.as_tensor(pos, device=s.device)] = (
            torch.linspace(1.0, 0.0, m, device=s.device) if m > 1 else torch.ones(1, device=s.device)
        )
        return r
