"""The deep-AL baselines of the paper's comparison (DESIGN.md §4, Fig. 2), one module per method:
BADGE, Coreset, LPL (learning loss), VAAL, ENSvarR, DDU and ALBL; and Cluster-Margin (Citovsky et
al., NeurIPS 2021). Importing this package registers them (``badge``, ``coreset``, ``lpl``,
``vaal``, ``ens_var_r``, ``ddu``, ``albl``, ``cluster_margin``)."""

from autoal.strategies.baselines import albl, badge, cluster_margin, coreset, ddu, ens_var_r, lpl, vaal  # noqa: F401

__all__ = ["albl", "badge", "cluster_margin", "coreset", "ddu", "ens_var_r", "lpl", "vaal"]
