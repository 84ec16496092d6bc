"""`python pipelines/report.py ARGS` = `autoal report ARGS` (autoal/cli/report.py), kept for source checkouts
and for `ray submit cluster.yaml pipelines/report.py -- ARGS`, which copies this one file to the head node
(where autoal is installed). `autoal report --help` lists the options."""

import sys

from autoal.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
