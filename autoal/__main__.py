"""``python -m autoal COMMAND ...``: the same as the ``autoal`` console script."""

from autoal.cli import main

main()
