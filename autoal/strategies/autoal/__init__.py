"""AutoAL, one package (DESIGN.md §3):

- :mod:`~autoal.strategies.autoal.strategy`: the strategies ``autoal`` (:class:`AutoAL`) and
  ``autoal_credit`` (:class:`AutoALCredit`), each holding one formulation;
- :mod:`~autoal.strategies.autoal.formulation`: the interface a formulation meets, and its
  candidates, built through the strategy registry (any registered pool strategy, by name);
- one module per formulation: :mod:`~autoal.strategies.autoal.lookahead` (autoal's own, the
  default), :mod:`~autoal.strategies.autoal.paper` (the paper's bi-level search; the math in
  :mod:`autoal.search`), :mod:`~autoal.strategies.autoal.credit` (credited by the labels that
  arrive; the math in :mod:`~autoal.strategies.autoal.label_credit` and
  :mod:`~autoal.strategies.autoal.pool_embedding`);
- :mod:`~autoal.strategies.autoal.params`: every key, its default and its range, per formulation.
"""

from autoal.strategies.autoal.params import AutoALParams, CreditParams, LookaheadParams, PaperParams
from autoal.strategies.autoal.strategy import AutoAL, AutoALCredit

__all__ = ["AutoAL", "AutoALCredit", "AutoALParams", "CreditParams", "LookaheadParams", "PaperParams"]
