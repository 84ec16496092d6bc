"""Thin entry scripts (run, sweep, ablation, report, query) and the Hydra glue they share."""
