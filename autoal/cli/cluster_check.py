"""Check a Ray cluster file before `ray up`: Ray's own schema, then what autoal needs on a cluster.

    autoal cluster-check                              # ./cluster.yaml (else the repo's)
    autoal cluster-check cluster.yaml --sweep lam     # + a trial of conf/sweep/lam.yaml fits
    autoal cluster-check cluster.yaml --sweep default scoring=ray   # with config overrides
    autoal cluster-check my-cluster.yaml --resources CPU=4,GPU=1

A trial's resources: --resources, else the sweep's placement group as autoal sweep plans it
(--sweep NAME composes conf/sweep.yaml with sweep=NAME and any key=value overrides: the trial, its
Ray scorer actors and Ray Train workers; --sweep PATH.yaml reads its resources_per_trial). Prints
one OK line, or every problem and exits 2. No cloud calls are made."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoal.errors import ConfigError
from autoal.cli.common import main_guard


def _parse_resources(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--resources: expected NAME=AMOUNT items like CPU=4,GPU=1; got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--resources: {key.strip()}: expected a number, got {value!r}") from None
    return out


def _default_cluster_file() -> Path:
    here = Path("cluster.yaml")
    if here.exists():
        return here
    from autoal.paths import packaged_conf_dir

    return packaged_conf_dir().parents[1] / "cluster.yaml"  # a source checkout's cluster.yaml


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as a ConfigError (one line, exit 2, like every command)."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (autoal cluster-check --help lists the options)")


def main(argv: list[str]) -> int:
    from autoal.platform.cluster import check_cluster

    parser = _Parser(prog="autoal cluster-check", description=__doc__.splitlines()[0])
    parser.add_argument(
        "args",
        nargs="*",
        metavar="CLUSTER_YAML | key=value",
        help="the cluster file (default: ./cluster.yaml, else the repo's) and sweep config overrides",
    )
    parser.add_argument("--sweep", help="sweep whose trials must fit: a name under conf/sweep/ or a YAML path")
    parser.add_argument("--resources", help="a trial's resources, e.g. CPU=4,GPU=1 (instead of --sweep)")
    parser.add_argument(
        "--base-dir",
        type=Path,
        help="folder that relative file_mounts sources are resolved against (default: the file's folder)",
    )
    args = parser.parse_intermixed_args(argv)
    files = [a for a in args.args if "=" not in a]
    overrides = [a for a in args.args if "=" in a]
    if len(files) > 1:
        raise ConfigError(f"expected one cluster file, got {', '.join(files)}")
    if overrides and (args.sweep is None or Path(args.sweep).suffix):
        raise ConfigError(f"config overrides ({' '.join(overrides)}) need --sweep NAME")
    path = Path(files[0]) if files else _default_cluster_file()
    resources = _parse_resources(args.resources) if args.resources else None
    sweep = args.sweep
    if resources is None and sweep is not None and not Path(sweep).suffix:
        from autoal.cli.common import compose

        sweep = compose([f"sweep={sweep}", *overrides], "sweep")
    summary = check_cluster(path, trial_resources=resources, sweep=sweep, base_dir=args.base_dir)
    print(summary.describe())
    return 0


if __name__ == "__main__":
    main_guard(main)
