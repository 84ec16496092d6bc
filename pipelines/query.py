"""`python pipelines/query.py ARGS` = `autoal query ARGS` (autoal/cli/query.py), kept for source checkouts
and for `ray submit cluster.yaml pipelines/query.py -- ARGS`, which copies this one file to the head node
(where autoal is installed). `autoal query --help` lists the options."""

import sys

from autoal.cli import main

if __name__ == "__main__":
    main(["query", *sys.argv[1:]])
