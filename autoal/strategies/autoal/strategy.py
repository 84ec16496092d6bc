"""AutoAL as a query strategy (DESIGN.md §3): one class that holds a formulation
(:class:`~autoal.strategies.autoal.formulation.Formulation`) and hands it the round.

- ``strategy=autoal``: :class:`AutoAL`, ``strategy.params.formulation`` picks
  ``lookahead`` (autoal's own, the default; :mod:`autoal.strategies.autoal.lookahead`) or
  ``paper`` (the paper's bi-level search; :mod:`autoal.strategies.autoal.paper`; the config
  option ``strategy=autoal_paper`` selects it);
- ``strategy=autoal_credit``: :class:`AutoALCredit`, the label-credited formulation
  (:mod:`autoal.strategies.autoal.credit`).

Every keyword is a ``strategy.params`` key, declared with its default and range in
:mod:`autoal.strategies.autoal.params`. The candidates are registered pool strategies, by name
(``candidates``; ``coverage`` and ``uncertainty`` for the credited one): a user's strategy too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from autoal.strategies.autoal.credit import CreditFormulation
from autoal.strategies.autoal.formulation import Formulation, saved_rounds
from autoal.strategies.autoal.lookahead import LookaheadFormulation
from autoal.strategies.autoal.paper import PaperFormulation
from autoal.strategies.autoal.params import AUTOAL_KEYS, RENAMED, AutoALParams, CreditParams
from autoal.strategies.base import QueryContext, RayResources, Strategy
from autoal.strategies.registry import register_strategy

#: formulation name -> its class (built from the strategy's params)
FORMULATIONS: dict[str, type[Formulation]] = {
    f.name: f for f in (LookaheadFormulation, PaperFormulation, CreditFormulation)
}


@register_strategy("autoal")
class AutoAL(Strategy):
    """Automated active learning: a formulation mixes candidate strategies each round
    (module docstring). ``formulation``: lookahead (default) | paper; ``candidates``: registered
    pool strategy names (default the paper's seven, in its order); ``pool_size``: keep the first
    ``pool_size`` of them (Fig. 4). The other keys belong to one formulation each
    (:class:`~autoal.strategies.autoal.params.LookaheadParams`,
    :class:`~autoal.strategies.autoal.params.PaperParams`), e.g. ``search_executor``: local |
    ray_train, where the paper formulation's search runs (:mod:`autoal.executors.ray_train_search`)."""

    #: the flat ``strategy.params`` keys with their defaults (the registry lists and checks them)
    params_type: Any = AUTOAL_KEYS
    #: old key -> new key, refused with a message naming the new key
    renamed_params = RENAMED

    def __init__(self, **params: Any) -> None:
        self.params = self._parse(params)  # every error names strategy.params.<key>
        self.formulation: Formulation = FORMULATIONS[self.params.formulation](self.params)
        self.needs = self.formulation.needs

    @staticmethod
    def _parse(params: dict[str, Any]) -> Any:
        return AutoALParams.from_params(params)

    @classmethod
    def ray_resources(cls, params: Mapping[str, Any]) -> RayResources:
        """Ray Train workers when the paper formulation's search runs on Ray Train
        (``search_executor: ray_train``): ``num_workers`` of them; else none."""
        if params.get("search_executor") != "ray_train":
            return RayResources()
        return RayResources(train_workers=int(params.get("num_workers") or AUTOAL_KEYS.num_workers))

    @property
    def candidate_names(self) -> list[str]:
        return self.formulation.names

    def query(self, ctx: QueryContext) -> np.ndarray:
        return self.formulation.query(ctx)

    def state_dict(self) -> dict[str, Any]:
        return self.formulation.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state; one of the other formulation (the config changed) starts fresh."""
        if not state:
            return
        self.formulation.rounds_done = saved_rounds(state)
        if state.get("formulation", "paper") != self.formulation.name:
            return
        self.formulation.load_state_dict(state)


@register_strategy("autoal_credit")
class AutoALCredit(AutoAL):
    """AutoAL credited by the labels that arrive (:mod:`autoal.strategies.autoal.credit`;
    DESIGN.md §3.10): its keys are :class:`~autoal.strategies.autoal.params.CreditParams`."""

    params_type = CreditParams
    renamed_params: dict[str, str] = {}

    @staticmethod
    def _parse(params: dict[str, Any]) -> Any:
        return CreditParams.from_params(params)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.formulation.load_state_dict(state)
