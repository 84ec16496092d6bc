"""autoal: automated active learning (AutoAL, Wang, Zhan & Huang, ICML 2025)."""

__version__ = "0.1.0"
