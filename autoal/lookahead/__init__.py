"""The math of autoal's own AutoAL formulation, the look-ahead (DESIGN.md §3.9), as pure
functions of tensors:

- :mod:`autoal.lookahead.valuation`: the look-ahead value of query strategies on the labeled set
  (simulated pools and held-out sets of V, the head refitted on A ∪ picks);
- :mod:`autoal.lookahead.mixture`: the search space (mixtures of the candidates' rank scores,
  decorrelated weights, the Hedge step, portfolio picks);
- :mod:`autoal.lookahead.gate`: the per-sample part (a small network over transferable features).

The formulation that uses them in the AL loop is
:class:`autoal.strategies.autoal.lookahead.LookaheadFormulation`.
"""
