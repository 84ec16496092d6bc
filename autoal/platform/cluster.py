"""Check a Ray cluster launcher file (``cluster.yaml``) before ``ray up`` spends cloud time on it.

Two layers, every problem collected before anything is raised:

1. **Schema**: the file is validated against the ``ray-schema.json`` shipped inside the installed
   ``ray`` package (the same schema ``ray up`` uses), so a misspelt field or a fractional resource
   count is caught locally.
2. **autoal lint**: what ``ray submit cluster.yaml pipelines/sweep.py -- ...`` needs to work
   (DESIGN.md §5): the head node type exists, the repository is in ``file_mounts`` (the submit
   copies only the script; the package (with its ``conf/``) must already be on every node), the setup
   commands install that mounted copy (``pip install -e ~/autoal-src``) on the head and on every worker
   type, ``RAY_AUTH_MODE`` and ``RAY_USAGE_STATS_ENABLED`` are set, an ``mlflow server`` is started
   on the head (the one writer of the tracking database), ``idle_timeout_minutes`` is set, and a
   trial's resources (a sweep config's ``resources_per_trial`` or a given dict) fit some node type
   (:mod:`autoal.platform.cluster_lint`, with the fit in :mod:`autoal.platform.cluster_fit`).

:func:`check_cluster` raises one :class:`~autoal.errors.ConfigError` listing every problem;
:func:`cluster_problems` returns them as a list. ``autoal cluster-check`` is the CLI.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from autoal.errors import ConfigError
from autoal.paths import conf_dir
from autoal.platform.cluster_fit import (
    cluster_capacity,
    fitting_node_types,
    fmt_bundles,
    fmt_resources,
    node_resources,
    normalize_resources,
)
from autoal.platform.cluster_lint import REPO_PARTS, REQUIRED_ENV, lint_problems, repo_mount
from autoal.platform.sweep import SweepSpec, plan_resources, train_workers

__all__ = [
    "REPO_PARTS",
    "REQUIRED_ENV",
    "ClusterSummary",
    "check_cluster",
    "cluster_capacity",
    "cluster_problems",
    "fitting_node_types",
    "load_cluster_file",
    "normalize_resources",
    "ray_schema_path",
    "schema_problems",
    "sweep_trial_resources",
]


@dataclass
class ClusterSummary:
    """What :func:`check_cluster` found in a valid file, for the CLI's one-line report."""

    path: Path
    provider: str
    head_node_type: str | None
    node_types: dict[str, dict[str, float]] = field(default_factory=dict)
    repo_mount: str | None = None
    trial_resources: list[dict[str, float]] | None = None
    fitting_node_types: list[str] = field(default_factory=list)

    def describe(self) -> str:
        types = ", ".join(f"{name} {fmt_resources(res)}" for name, res in self.node_types.items()) or "auto-detected"
        text = (
            f"{self.path}: OK (provider {self.provider}; head {self.head_node_type or 'local'}; "
            f"node types: {types}; repo mounted at {self.repo_mount})"
        )
        if self.trial_resources is not None:
            text += (
                f"; a trial's resources {fmt_bundles(self.trial_resources)} fit: "
                f"{', '.join(self.fitting_node_types) or 'the node (detected when Ray starts)'}"
            )
        return text


# ---------------------------------------------------------------------------------------- loading


def ray_schema_path() -> Path:
    """``ray/autoscaler/ray-schema.json`` of the installed ray, found without importing ray."""
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("cannot validate a cluster file: the `ray` package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "autoscaler" / "ray-schema.json"
    if not path.exists():
        raise ConfigError(f"cannot validate a cluster file: {path} is missing from the installed ray")
    return path


def load_cluster_file(path: str | Path) -> dict[str, Any]:
    """The cluster file as a dict; a missing file or bad YAML is a ConfigError naming the file."""
    from autoal.platform.yaml_file import read_yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: cluster file not found")
    config = read_yaml(path, "cluster file")
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path}: expected a mapping of cluster settings at the top level, got {type(config).__name__}"
        )
    return config


def schema_problems(config: Mapping[str, Any]) -> list[str]:
    """Violations of Ray's cluster schema, one line each, with the path of the offending field."""
    import jsonschema

    schema = json.loads(ray_schema_path().read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"schema: {where}: {error.message}")
    return problems


# ------------------------------------------------------------------------------------------- lint


def cluster_problems(
    config: Mapping[str, Any], *, base_dir: str | Path = ".", trial_resources: Any = None
) -> list[str]:
    """Every schema violation and autoal lint problem of a cluster config (empty when it is fine).

    ``base_dir`` resolves relative ``file_mounts`` sources (``ray up`` resolves them against its
    working directory; the README runs it from the repository root, where ``cluster.yaml`` lives).
    ``trial_resources``: see :func:`~autoal.platform.cluster_fit.normalize_resources`; None skips
    the fit check. The lint itself is :mod:`autoal.platform.cluster_lint`."""
    problems = schema_problems(config)
    problems += lint_problems(config, Path(base_dir), trial_resources)
    return problems


# ------------------------------------------------------------------------------ sweep resources


def sweep_trial_resources(sweep: Mapping[str, Any] | str | Path, cluster: Mapping[str, Any] | None = None) -> Any:
    """A sweep's trial resources, for the fit check.

    - A composed sweep config (a dict with a ``sweep`` section, as ``autoal sweep`` builds
      it): the trial's placement group exactly as the sweep plans it
      (:func:`autoal.platform.sweep.plan_resources`: the trial, its Ray scorer actors, and its Ray
      Train workers as bundles of their own), against ``cluster``'s capacity (GPUs there make the
      default trial take one).
    - A sweep file (a name under ``conf/sweep/`` or a path): its raw ``resources_per_trial``.
    Returns None when the sweep file does not declare resources."""
    if isinstance(sweep, Mapping):
        cfg = {k: v for k, v in sweep.items() if k != "sweep"}
        spec = SweepSpec.from_dict(sweep.get("sweep"))
        capacity = cluster_capacity(cluster) if cluster is not None else {"CPU": 1.0}
        plan = plan_resources(cfg, spec.resources_per_trial, capacity, spec.max_concurrent)
        bundles = [dict(b) for b in plan.bundles]
        workers = train_workers(cfg)
        if workers and plan.outside:
            bundles += [{k: v / workers for k, v in plan.outside.items()} for _ in range(workers)]
        return {"bundles": bundles, "strategy": "PACK"}

    from autoal.platform.yaml_file import read_yaml

    path = Path(sweep)
    if not path.suffix:
        path = conf_dir() / "sweep" / f"{sweep}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (conf_dir() / "sweep").glob("*.yaml"))
        raise ConfigError(
            f"sweep {sweep!r}: no such sweep config ({path}); available: {', '.join(available) or 'none'}"
        )
    data = read_yaml(path, "sweep file") or {}
    for node in (data, data.get("sweep") if isinstance(data, dict) else None):
        if isinstance(node, dict) and node.get("resources_per_trial") is not None:
            return node["resources_per_trial"]
    return None


# ------------------------------------------------------------------------------------ entry point


def check_cluster(
    path: str | Path,
    *,
    trial_resources: Any = None,
    sweep: Mapping[str, Any] | str | Path | None = None,
    base_dir: str | Path | None = None,
) -> ClusterSummary:
    """Validate and lint the cluster file at ``path``; raise one ConfigError listing every problem.

    A trial's resources: ``trial_resources`` if given, else the sweep's
    (:func:`sweep_trial_resources`: a composed sweep config or a sweep file), else unchecked.
    ``base_dir`` (default: the file's folder) resolves relative ``file_mounts`` sources."""
    path = Path(path)
    config = load_cluster_file(path)
    if trial_resources is None and sweep is not None:
        trial_resources = sweep_trial_resources(sweep, config)
    base = Path(base_dir) if base_dir is not None else path.resolve().parent
    problems = cluster_problems(config, base_dir=base, trial_resources=trial_resources)
    if problems:
        raise ConfigError(
            f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n  - " + "\n  - ".join(problems)
        )
    scratch: list[str] = []
    return ClusterSummary(
        path=path,
        provider=str(config["provider"]["type"]),
        head_node_type=config.get("head_node_type"),
        node_types={n: r for n, r in node_resources(config).items() if r is not None},
        repo_mount=getattr(repo_mount(config, base, scratch), "remote", None),
        trial_resources=normalize_resources(trial_resources)[0] if trial_resources is not None else None,
        fitting_node_types=fitting_node_types(config, trial_resources) if trial_resources is not None else [],
    )
