"""The deep-AL baselines of the paper's comparison (DESIGN.md §4, Fig. 2), one module per method:
BADGE, Coreset, LPL (learning loss), VAAL, ENSvarR, DDU and ALBL. Importing this package
registers them (``badge``, ``coreset``, ``lpl``, ``vaal``, ``ens_var_r``, ``ddu``, ``albl``)."""
from autoal.strategies.baselines import albl, badge, coreset, ddu, ens_var_r, lpl, vaal  # noqa: F401

__all__ = ["albl", "badge", "coreset", "ddu", "ens_var_r", "lpl", "vaal"]
