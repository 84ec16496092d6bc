"""`python pipelines/cluster_check.py ARGS` = `autoal cluster-check ARGS` (autoal/cli/cluster_check.py), kept for source checkouts
and for `ray submit cluster.yaml pipelines/cluster_check.py -- ARGS`, which copies this one file to the head node
(where autoal is installed). `autoal cluster-check --help` lists the options."""

import sys

from autoal.cli import main

if __name__ == "__main__":
    main(["cluster-check", *sys.argv[1:]])
