"""`python pipelines/ablation.py ARGS` = `autoal ablation ARGS` (autoal/cli/ablation.py), kept for source checkouts
and for `ray submit cluster.yaml pipelines/ablation.py -- ARGS`, which copies this one file to the head node
(where autoal is installed). `autoal ablation --help` lists the options."""

import sys

from autoal.cli import main

if __name__ == "__main__":
    main(["ablation", *sys.argv[1:]])
