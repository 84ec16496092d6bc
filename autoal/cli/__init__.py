"""The ``autoal`` command: ``autoal run|sweep|ablation|report|query|cluster-check [args]``.

One module per command (``autoal/cli/<command>.py``, each with ``main(argv) -> exit code`` and
its usage in the docstring), sharing the Hydra glue of :mod:`autoal.cli.common`. This package is
the top layer: the library never imports it. ``pipelines/*.py`` in a source checkout are thin
shims over these commands (``ray submit cluster.yaml pipelines/sweep.py`` copies one file)."""

from __future__ import annotations

import importlib
import sys

#: command -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("autoal.cli.run", "one active-learning experiment (-m: every combination as a sweep)"),
    "sweep": ("autoal.cli.sweep", "a sweep on Ray Tune: one trial per arm and seed, tracked in MLflow"),
    "ablation": ("autoal.cli.ablation", "named arms (config deltas) with paired seeds, e.g. ablation=fig3"),
    "report": ("autoal.cli.report", "tables and figures of a sweep, read back from MLflow"),
    "query": ("autoal.cli.query", "labeling by a person: export a batch, import the filled-in CSV"),
    "cluster-check": ("autoal.cli.cluster_check", "check a Ray cluster file before `ray up`"),
}

#: command -> the packages of autoal's extras it imports (autoal.extras names the extra of each)
NEEDS: dict[str, tuple[str, ...]] = {
    "run": ("hydra",),
    "sweep": ("ray", "mlflow", "hydra"),
    "ablation": ("ray", "mlflow", "hydra"),
    "report": ("mlflow", "hydra"),
    "query": ("hydra",),
    "cluster-check": ("ray",),
}


def usage() -> str:
    from autoal.version import __version__

    width = max(map(len, COMMANDS))
    lines = [
        f"autoal {__version__}: automated active learning (AutoAL, ICML 2025) on Ray with MLflow",
        "",
        "usage: autoal COMMAND [--help] [key=value ...]",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        "autoal COMMAND --help lists a command's options and config groups;",
        "autoal --version prints the version.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The console script: dispatch ``argv[0]`` to its command module (exit code 2 and one line
    for an unknown command, or for one whose extra is not installed: ``autoal sweep`` needs
    ``autoal[ray]``)."""
    from autoal.cli.common import main_guard

    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    if args[0] in ("-V", "--version"):
        from autoal.version import __version__

        print(f"autoal {__version__}")
        sys.exit(0)
    if args[0] not in COMMANDS:
        print(
            f"error: ConfigError: command: expected one of {', '.join(COMMANDS)}; got {args[0]!r} "
            "(autoal --help lists them)",
            file=sys.stderr,
        )
        sys.exit(2)
    from autoal.errors import MissingExtraError
    from autoal.extras import require

    try:
        require(f"autoal {args[0]}", *NEEDS[args[0]])
    except MissingExtraError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[args[0]][0])
    main_guard(module.main, args[1:])
