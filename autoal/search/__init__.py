"""AutoAL's differentiable query-strategy search, the paper formulation (Wang, Zhan & Huang,
ICML 2025; DESIGN.md §3.2-3.8).

- :mod:`autoal.search.losses`: the math (GMM threshold, aggregated score, soft selection,
  budget regularizer) as pure functions;
- :mod:`autoal.search.nets`: SearchNet, FitNet (the loss prediction module is
  :mod:`autoal.lpm`, shared with the LPL baseline);
- :mod:`autoal.search.cycle`: one search cycle and the selection scores, as functions of
  (nets, optimizers, data tensors, config, device);
- :mod:`autoal.search.round`: a round as planned cycles, and the in-process executor.

The formulation that uses them in the AL loop is
:class:`autoal.strategies.autoal.paper.PaperFormulation`; autoal's own look-ahead formulation
has its math in :mod:`autoal.lookahead`.
"""

from autoal.search.cycle import (
    SearchBatch,
    SearchConfig,
    SearchNets,
    SearchOptimizers,
    SearchSettings,
    make_optimizers,
    search_cycle,
    selection_scores,
)
from autoal.search.losses import aggregated_score, budget_regularizer, gmm_threshold, soft_selection
from autoal.search.nets import SearchNet, build_fitnet, build_searchnet

__all__ = [
    "aggregated_score",
    "budget_regularizer",
    "gmm_threshold",
    "soft_selection",
    "SearchNet",
    "build_fitnet",
    "build_searchnet",
    "SearchBatch",
    "SearchConfig",
    "SearchSettings",
    "SearchNets",
    "SearchOptimizers",
    "make_optimizers",
    "search_cycle",
    "selection_scores",
]
