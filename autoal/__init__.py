"""autoal: automated active learning (AutoAL, Wang, Zhan & Huang, ICML 2025).

    import autoal
    result = autoal.run((x_train, y_train, x_test, y_test), strategy="margin", rounds=10)
    picks = autoal.query(probs, n=10, strategy="margin")

See :mod:`autoal.api`; the modules below are the library's layers (docs/DESIGN.md §6)."""
from autoal.api import query, run
from autoal.version import __version__

__all__ = ["__version__", "query", "run"]
