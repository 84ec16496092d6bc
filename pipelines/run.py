"""`python pipelines/run.py ARGS` = `autoal run ARGS` (autoal/cli/run.py), kept for source checkouts
and for `ray submit cluster.yaml pipelines/run.py -- ARGS`, which copies this one file to the head node
(where autoal is installed). `autoal run --help` lists the options."""

import sys

from autoal.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
