"""AutoAL's differentiable query-strategy search (Wang, Zhan & Huang, ICML 2025).

- :mod:`autoal.search.losses`: the math (GMM threshold, aggregated score, soft selection,
  budget regularizer) as pure functions;
- :mod:`autoal.search.nets`: SearchNet, FitNet (the loss prediction module is
  :mod:`autoal.lpm`, shared with the LPL baseline);
- :mod:`autoal.search.search`: one search cycle and the selection scores, as functions of
  (nets, optimizers, data tensors, config, device).

The strategy that uses them in the AL loop is :class:`autoal.strategies.autoal_search.AutoAL`.
"""
from autoal.search.losses import aggregated_score, budget_regularizer, gmm_threshold, soft_selection
from autoal.search.nets import SearchNet, build_fitnet, build_searchnet
from autoal.search.search import (SearchBatch, SearchConfig, SearchNets, SearchOptimizers, make_optimizers,
                                  search_cycle, selection_scores)

__all__ = ["aggregated_score", "budget_regularizer", "gmm_threshold", "soft_selection", "SearchNet", "build_fitnet", "build_searchnet", "SearchBatch", "SearchConfig",
           "SearchNets", "SearchOptimizers", "make_optimizers", "search_cycle", "selection_scores"]
