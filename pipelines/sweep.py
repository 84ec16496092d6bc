"""`python pipelines/sweep.py ARGS` = `autoal sweep ARGS` (autoal/cli/sweep.py), kept for source checkouts
and for `ray submit cluster.yaml pipelines/sweep.py -- ARGS`, which copies this one file to the head node
(where autoal is installed). `autoal sweep --help` lists the options."""

import sys

from autoal.cli import main

if __name__ == "__main__":
    main(["sweep", *sys.argv[1:]])
