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
   trial's resources (a sweep config's ``resources_per_trial`` or a given dict) fit some node type.

:func:`check_cluster` raises one :class:`~autoal.errors.ConfigError` listing every problem;
:func:`cluster_problems` returns them as a list. ``autoal cluster-check`` is the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from autoal.errors import ConfigError
from autoal.paths import conf_dir, user_path
from autoal.platform.sweep import SweepSpec, plan_resources, train_workers

REQUIRED_ENV = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")
_PIP_INSTALL = re.compile(r"\b(?:uv\s+)?pip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b")
_MLFLOW_SERVER = re.compile(r"\bmlflow\s+server\b")
_SEGMENT_SPLIT = re.compile(r"&&|\|\||;|\||\n")
_PACKAGES = ("autoal",)  # the repository's top-level package
# What a node needs of the repository: what `pip install -e` reads (pyproject.toml, its readme, the
# package, whose conf/ the config groups are); `ray submit` copies the entry script itself.
REPO_PARTS = ("pyproject.toml", "README.md", "autoal")


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
        types = ", ".join(f"{name} {_fmt_resources(res)}" for name, res in self.node_types.items()) or "auto-detected"
        text = (
            f"{self.path}: OK (provider {self.provider}; head {self.head_node_type or 'local'}; "
            f"node types: {types}; repo mounted at {self.repo_mount})"
        )
        if self.trial_resources is not None:
            text += (
                f"; a trial's resources {_fmt_bundles(self.trial_resources)} fit: "
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
    ``trial_resources``: see :func:`normalize_resources`; None skips the fit check."""
    problems = schema_problems(config)
    problems += _lint(config, Path(base_dir), trial_resources)
    return problems


def _lint(config: Mapping[str, Any], base_dir: Path, trial_resources: Any) -> list[str]:
    problems: list[str] = []
    provider = config["provider"].get("type") if isinstance(config.get("provider"), Mapping) else None
    local = provider == "local"
    node_types = config.get("available_node_types") or {}
    if not isinstance(node_types, Mapping):
        node_types = {}
    head_type = config.get("head_node_type")

    # -- node types
    if local:
        for key in ("available_node_types", "head_node_type"):
            if key in config:
                problems.append(f"{key}: the local provider defines its own node type; remove {key}")
    elif not node_types:
        problems.append(
            "available_node_types: missing; declare a head node type and a worker type "
            '(e.g. a GPU type with resources {"CPU": 4, "GPU": 1})'
        )
    elif not head_type:
        problems.append(f"head_node_type: missing; expected one of the node types: {', '.join(node_types)}")
    elif head_type not in node_types:
        problems.append(
            f"head_node_type: {head_type!r} is not a node type in available_node_types "
            f"(declared: {', '.join(node_types)})"
        )

    if config.get("idle_timeout_minutes") is None:
        problems.append(
            "idle_timeout_minutes: not set; idle GPU workers would run (and bill) until the "
            "default timeout; set it explicitly"
        )

    # -- repository mount
    mount = _repo_mount(config, base_dir, problems)
    repo_remote = mount.remote if mount is not None else None
    if mount is not None and mount.whole and not _excludes_venv(config):
        problems.append(
            "rsync_filter/rsync_exclude: the repository mount would upload .venv and other build "
            "outputs to every node; add `rsync_filter: [.gitignore]` or exclude .venv"
        )

    # -- commands per role
    head_cmds = _head_commands(config, node_types, head_type)
    worker_roles = _worker_commands(config, node_types, head_type, local)

    remote_for_install = repo_remote or "~/autoal-src"
    if not _installs(head_cmds, remote_for_install):
        problems.append(
            f"setup: no setup command installs the mounted repository on the head node "
            f"(expected e.g. `pip install -e {remote_for_install}` in setup_commands)"
        )
    for role, cmds in worker_roles.items():
        if not _installs(cmds, remote_for_install):
            problems.append(
                f"setup: worker node type {role!r} never installs the mounted repository "
                f"(expected e.g. `pip install -e {remote_for_install}` in setup_commands)"
            )

    for var in REQUIRED_ENV:
        if not _sets_env(head_cmds, var):
            problems.append(
                f"env: {var} is not set on the head node; export it in setup_commands "
                f"(e.g. append `export {var}=...` to ~/.bashrc)"
            )
        for role, cmds in worker_roles.items():
            if not _sets_env(cmds, var):
                problems.append(f"env: {var} is not set on worker node type {role!r}; export it in setup_commands")

    # -- MLflow server on the head
    head_only = _list(config.get("head_setup_commands")) + _list(config.get("head_start_ray_commands"))
    server_cmds = [c for c in head_only if _MLFLOW_SERVER.search(c)]
    if not server_cmds:
        problems.append(
            "mlflow: no `mlflow server` is started on the head node (head_start_ray_commands); "
            "trials on a cluster log to one server, the single writer of the tracking database"
        )
    else:
        cmd = server_cmds[0][_MLFLOW_SERVER.search(server_cmds[0]).end() :]  # its arguments
        if not re.search(r"--backend-store-uri\b", cmd):
            problems.append(
                "mlflow: the head's `mlflow server` has no --backend-store-uri (e.g. sqlite:///$HOME/mlflow/mlflow.db)"
            )
        host = re.search(r"(?:^|\s)(?:--host|-h)[=\s]+(\S+)", cmd)
        if worker_roles and (host is None or host.group(1).strip("'\"") in ("127.0.0.1", "localhost")):
            problems.append(
                "mlflow: the head's `mlflow server` listens on loopback only; trials on worker "
                "nodes cannot reach it (add --host 0.0.0.0)"
            )

    # -- a trial's resources fit a node type
    if trial_resources is not None:
        problems += _fit_problems(config, trial_resources)
    return problems


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _head_commands(config: Mapping[str, Any], node_types: Mapping[str, Any], head_type: Any) -> list[str]:
    head_spec = node_types.get(head_type, {}) if isinstance(head_type, str) else {}
    init = head_spec.get("initialization_commands", config.get("initialization_commands"))
    return (
        _list(init)
        + _list(config.get("setup_commands"))
        + _list(config.get("head_setup_commands"))
        + _list(config.get("head_start_ray_commands"))
    )


def _worker_commands(
    config: Mapping[str, Any], node_types: Mapping[str, Any], head_type: Any, local: bool
) -> dict[str, list[str]]:
    """Commands each worker role runs (Ray: a node type's own lists replace the global ones)."""
    roles: dict[str, list[str]] = {}
    if local:
        if (config.get("provider") or {}).get("worker_ips"):
            roles["local worker"] = (
                _list(config.get("initialization_commands"))
                + _list(config.get("setup_commands"))
                + _list(config.get("worker_setup_commands"))
                + _list(config.get("worker_start_ray_commands"))
            )
        return roles
    for name, spec in node_types.items():
        if name == head_type or not isinstance(spec, dict):
            continue
        if spec.get("max_workers", 1) == 0:
            continue
        init = spec.get("initialization_commands", config.get("initialization_commands"))
        setup = spec.get("worker_setup_commands", config.get("worker_setup_commands"))
        roles[name] = (
            _list(init)
            + _list(config.get("setup_commands"))
            + _list(setup)
            + _list(config.get("worker_start_ray_commands"))
        )
    return roles


def _is_repo(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    if not (
        pyproject.is_file()
        and (path / "autoal" / "__init__.py").is_file()
        and (path / "autoal" / "conf" / "config.yaml").is_file()
    ):
        return False
    return re.search(r'(?m)^name\s*=\s*"autoal"', pyproject.read_text()) is not None


def _repo_root_of(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if _is_repo(candidate):
            return candidate
    return None


@dataclass
class _RepoMount:
    remote: str  # where the repository root lands on the nodes, e.g. ~/autoal-src
    whole: bool  # the whole folder is mounted (not only its parts)
    parts: set[str]  # top-level entries of the repository that are mounted


def _repo_mount(config: Mapping[str, Any], base_dir: Path, problems: list[str]) -> _RepoMount | None:
    """Where the repository is mounted on the nodes: either the whole folder, or its parts
    (``~/autoal-src/autoal: ./autoal``, ...) under one remote root. None (and a problem) when it
    is not, or when parts that ``pip install -e`` and ``conf_dir()`` need are missing."""
    mounts = config.get("file_mounts") or {}
    if not isinstance(mounts, Mapping):
        mounts = {}
    found: dict[str, _RepoMount] = {}
    for remote, local in mounts.items():
        src = user_path(str(local))
        if not src.is_absolute():
            src = base_dir / src
        if not src.exists():
            problems.append(
                f"file_mounts: {remote}: local path {local} does not exist "
                f"(relative paths are resolved against {base_dir})"
            )
            continue
        src = src.resolve()
        root = _repo_root_of(src if src.is_dir() else src.parent)
        if root is None:
            continue
        rel = src.relative_to(root).as_posix()
        target = _norm_path(str(remote))
        if rel == ".":
            entry = found.setdefault(target, _RepoMount(target, True, set()))
            entry.whole = True
            entry.parts |= set(REPO_PARTS)
        elif "/" not in rel and target.endswith("/" + rel):
            root_remote = target[: -len(rel) - 1]
            found.setdefault(root_remote, _RepoMount(root_remote, False, set())).parts.add(rel)
    if not found:
        problems.append(
            "file_mounts: the autoal repository is not mounted; `ray submit` copies only the script, "
            "so the package (with its conf/) must reach every node (add e.g. `~/autoal-src: .`)"
        )
        return None
    mount = max(found.values(), key=lambda m: len(m.parts))
    missing = [p for p in REPO_PARTS if p not in mount.parts]
    if missing:
        problems.append(
            f"file_mounts: the repository mounted at {mount.remote} lacks {', '.join(missing)}; "
            f"`pip install -e {mount.remote}` needs {', '.join(REPO_PARTS)} "
            f"(mount e.g. `{mount.remote}/{missing[0]}: ./{missing[0]}`)"
        )
    parent, _, name = mount.remote.rpartition("/")
    in_home = parent in ("~", "/root") or re.fullmatch(r"/home/[^/]+", parent) is not None
    if in_home and name in _PACKAGES:
        problems.append(
            f"file_mounts: {mount.remote}: the repository sits in the home folder under the package's "
            f"name; `ray submit` runs the script from the home folder, where `import {name}` "
            f"would find the repository root as an empty namespace package instead of the "
            f"installed package; mount it at e.g. ~/autoal-src"
        )
    return mount


def _excludes_venv(config: Mapping[str, Any]) -> bool:
    filters = _list(config.get("rsync_filter"))
    excludes = _list(config.get("rsync_exclude"))
    return ".gitignore" in filters or any(".venv" in x for x in excludes)


def _norm_path(token: str) -> str:
    token = token.strip("'\"")
    for prefix in ("--editable=", "-e"):
        if token.startswith(prefix) and len(token) > len(prefix):
            token = token[len(prefix) :]
    token = re.sub(r"\[[^\]]*\]$", "", token)  # extras: ~/autoal-src[dev]
    token = re.sub(r"^(\$HOME|\$\{HOME\})(?=/|$)", "~", token)
    return token.rstrip("/") or "/"


def _installs(cmds: list[str], remote: str) -> bool:
    """Some command pip-installs the repository mounted at ``remote`` (editable or not)."""
    target = _norm_path(remote)
    for cmd in cmds:
        for segment in _SEGMENT_SPLIT.split(cmd):
            if not _PIP_INSTALL.search(segment):
                continue
            try:
                tokens = shlex.split(segment, posix=True)
            except ValueError:
                tokens = segment.split()
            if any(_norm_path(t) == target for t in tokens):
                return True
    return False


def _sets_env(cmds: list[str], var: str) -> bool:
    return any(re.search(rf"\b{re.escape(var)}=", c) for c in cmds)


# ---------------------------------------------------------------------------------- resources fit


def normalize_resources(resources: Any) -> tuple[list[dict[str, float]], str]:
    """A trial's resources as placement-group bundles and a strategy.

    Accepts ``{"CPU": 2, "GPU": 1}`` (also lower-case ``cpu``/``gpu``; one bundle, which must fit
    one node), a list of bundles, or ``{"bundles": [...], "strategy": "PACK"}`` (Tune's
    PlacementGroupFactory; with PACK/SPREAD every bundle must fit some node, with STRICT_PACK
    all of them together)."""
    strategy = "STRICT_PACK"
    if isinstance(resources, Mapping) and "bundles" in resources:
        strategy = str(resources.get("strategy") or "PACK").upper()
        resources = resources["bundles"]
    elif not isinstance(resources, Mapping):
        strategy = "PACK"
    bundles = [resources] if isinstance(resources, Mapping) else list(resources or [])
    out = []
    for bundle in bundles:
        if not isinstance(bundle, Mapping):
            raise ConfigError(f"trial resources: expected a mapping like {{'CPU': 2, 'GPU': 1}}, got {bundle!r}")
        norm: dict[str, float] = {}
        for key, value in bundle.items():
            name = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}.get(str(key).lower(), str(key))
            if isinstance(value, bool):
                raise ConfigError(f"trial resources: {key}: expected a number, got {value!r}")
            try:
                amount = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"trial resources: {key}: expected a number, got {value!r}") from None
            if amount < 0:
                raise ConfigError(f"trial resources: {key}: must be >= 0, got {value!r}")
            if amount > 0:
                norm[name] = norm.get(name, 0.0) + amount
        out.append(norm)
    if not out:
        raise ConfigError("trial resources: no bundles given")
    return out, strategy


def _total(bundles: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _start_flag_resources(cmds: list[str]) -> dict[str, float] | None:
    """Resources declared on a ``ray start`` line (``--num-cpus``, ``--num-gpus``, ``--resources``)."""
    for cmd in cmds:
        if not re.search(r"\bray\s+start\b", cmd):
            continue
        res: dict[str, float] = {}
        for flag, name in (("--num-cpus", "CPU"), ("--num-gpus", "GPU")):
            m = re.search(rf"{flag}[=\s]+(\d+(?:\.\d+)?)", cmd)
            if m:
                res[name] = float(m.group(1))
        m = re.search(r"--resources[=\s]+'([^']*)'", cmd)
        if m:
            try:
                res.update({k: float(v) for k, v in json.loads(m.group(1)).items()})
            except (ValueError, AttributeError):
                pass
        return res or None
    return None


def _node_resources(config: Mapping[str, Any]) -> dict[str, dict[str, float] | None]:
    """Declared resources per node type; None where Ray detects them when the node starts."""
    provider = config.get("provider") if isinstance(config.get("provider"), Mapping) else {}
    if provider.get("type") == "local":
        out: dict[str, dict[str, float] | None] = {
            "head": _start_flag_resources(_list(config.get("head_start_ray_commands")))
        }
        if provider.get("worker_ips"):
            out["local worker"] = _start_flag_resources(_list(config.get("worker_start_ray_commands")))
        return out
    node_types = config.get("available_node_types") or {}
    out = {}
    for name, spec in node_types.items() if isinstance(node_types, Mapping) else []:
        res = spec.get("resources") if isinstance(spec, Mapping) else None
        out[name] = (
            {k: float(v) for k, v in res.items() if isinstance(v, (int, float))}
            if isinstance(res, Mapping) and res
            else None
        )
    return out


def cluster_capacity(config: Mapping[str, Any]) -> dict[str, float]:
    """Declared resources of the whole cluster at full scale (head + every worker type at its
    ``max_workers``), as a sweep sees them in ``ray.cluster_resources()``."""
    node_types = config.get("available_node_types") or {}
    head_type = config.get("head_node_type")
    total: dict[str, float] = {}
    for name, res in _node_resources(config).items():
        if not res:
            continue
        spec = node_types.get(name, {}) if isinstance(node_types, Mapping) else {}
        count = 1 if name in (head_type, "head") else int(spec.get("max_workers", config.get("max_workers", 1)) or 0)
        for k, v in res.items():
            total[k] = total.get(k, 0.0) + v * count
    return total


def _fits(bundle: Mapping[str, float], node: Mapping[str, float]) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in bundle.items())


def fitting_node_types(config: Mapping[str, Any], trial_resources: Any) -> list[str]:
    """The node types that can host the trial itself (its first bundle; with STRICT_PACK, all)."""
    bundles, strategy = normalize_resources(trial_resources)
    need = _total(bundles) if strategy == "STRICT_PACK" else bundles[0]
    return [name for name, res in _node_resources(config).items() if res is not None and _fits(need, res)]


def _fit_problems(config: Mapping[str, Any], trial_resources: Any) -> list[str]:
    try:
        bundles, strategy = normalize_resources(trial_resources)
    except ConfigError as e:
        return [str(e)]
    nodes = _node_resources(config)
    declared = {n: r for n, r in nodes.items() if r is not None}
    local = (
        (config.get("provider") or {}).get("type") == "local" if isinstance(config.get("provider"), Mapping) else False
    )
    if not declared:
        if local:
            return []  # a local head's resources are detected when Ray starts
        return [
            f"resources: no node type declares its resources, so a trial's {_fmt_bundles(bundles)} cannot be "
            f'checked; set `resources` on each node type (e.g. {{"CPU": 4, "GPU": 1}})'
        ]
    if len(declared) < len(nodes):
        return []  # the trial might fit a type whose resources Ray detects at start
    where = "; ".join(f"{n}: {_fmt_resources(r)}" for n, r in declared.items())
    needs = [_total(bundles)] if strategy == "STRICT_PACK" else bundles
    problems = []
    for need in needs:
        if not any(_fits(need, r) for r in declared.values()):
            what = "a trial needs" if len(needs) == 1 else f"a trial's bundle ({strategy} placement group) needs"
            problems.append(
                f"resources: {what} {_fmt_resources(need)} on one node, which fits no node type ({where}); "
                f"lower the sweep's resources_per_trial or add a larger node type"
            )
    capacity = cluster_capacity(config)
    total = _total(bundles)
    if not problems and not local and not _fits(total, capacity):
        problems.append(
            f"resources: a trial needs {_fmt_resources(total)} in all, more than the whole cluster has at "
            f"full scale ({_fmt_resources(capacity)}); raise the worker types' max_workers or lower the "
            f"trial's resources"
        )
    return problems


def _fmt_resources(res: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in res.items()) + "}"


def _fmt_bundles(bundles: list[dict[str, float]]) -> str:
    return " + ".join(_fmt_resources(b) for b in bundles) if len(bundles) != 1 else _fmt_resources(bundles[0])


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
        node_types={n: r for n, r in _node_resources(config).items() if r is not None},
        repo_mount=getattr(_repo_mount(config, base, scratch), "remote", None),
        trial_resources=normalize_resources(trial_resources)[0] if trial_resources is not None else None,
        fitting_node_types=fitting_node_types(config, trial_resources) if trial_resources is not None else [],
    )
