"""autoal's lint of a Ray cluster launcher file: what ``ray submit cluster.yaml pipelines/sweep.py``
needs to work (DESIGN.md §5), beyond Ray's schema.

The head node type exists, the repository is in ``file_mounts``, the setup commands install that
mounted copy on the head and on every worker type, ``RAY_AUTH_MODE`` and
``RAY_USAGE_STATS_ENABLED`` are set, an ``mlflow server`` reachable from the workers is started on
the head, ``idle_timeout_minutes`` is set, and a trial's resources fit some node type
(:mod:`autoal.platform.cluster_fit`). :func:`lint_problems` returns every problem, one line each.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from autoal.paths import user_path
from autoal.platform.cluster_fit import as_list, fit_problems

REQUIRED_ENV = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")
_PIP_INSTALL = re.compile(r"\b(?:uv\s+)?pip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b")
_MLFLOW_SERVER = re.compile(r"\bmlflow\s+server\b")
_SEGMENT_SPLIT = re.compile(r"&&|\|\||;|\||\n")
_PACKAGES = ("autoal",)  # the repository's top-level package
# What a node needs of the repository: what `pip install -e` reads (pyproject.toml, its readme, the
# package, whose conf/ the config groups are); `ray submit` copies the entry script itself.
REPO_PARTS = ("pyproject.toml", "README.md", "autoal")


def lint_problems(config: Mapping[str, Any], base_dir: Path, trial_resources: Any) -> list[str]:
    """Every autoal lint problem of a cluster config, in a fixed order (node types, idle timeout,
    repository mount, installs, environment, MLflow server, a trial's fit)."""
    problems: list[str] = []
    provider = config["provider"].get("type") if isinstance(config.get("provider"), Mapping) else None
    local = provider == "local"
    node_types = config.get("available_node_types") or {}
    if not isinstance(node_types, Mapping):
        node_types = {}
    head_type = config.get("head_node_type")

    problems += _node_type_problems(config, local, node_types, head_type)
    if config.get("idle_timeout_minutes") is None:
        problems.append(
            "idle_timeout_minutes: not set; idle GPU workers would run (and bill) until the "
            "default timeout; set it explicitly"
        )

    # -- repository mount
    mount = repo_mount(config, base_dir, problems)
    repo_remote = mount.remote if mount is not None else None
    if mount is not None and mount.whole and not _excludes_venv(config):
        problems.append(
            "rsync_filter/rsync_exclude: the repository mount would upload .venv and other build "
            "outputs to every node; add `rsync_filter: [.gitignore]` or exclude .venv"
        )

    # -- commands per role
    head_cmds = _head_commands(config, node_types, head_type)
    worker_roles = _worker_commands(config, node_types, head_type, local)
    problems += _install_problems(head_cmds, worker_roles, repo_remote or "~/autoal-src")
    problems += _env_problems(head_cmds, worker_roles)
    problems += _mlflow_problems(config, worker_roles)

    # -- a trial's resources fit a node type
    if trial_resources is not None:
        problems += fit_problems(config, trial_resources)
    return problems


def _node_type_problems(
    config: Mapping[str, Any], local: bool, node_types: Mapping[str, Any], head_type: Any
) -> list[str]:
    """The head node type is declared among the node types (the local provider declares none)."""
    problems: list[str] = []
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
    return problems


def _install_problems(head_cmds: list[str], worker_roles: dict[str, list[str]], remote: str) -> list[str]:
    """The head and every worker role pip-install the repository mounted at ``remote``."""
    problems: list[str] = []
    if not _installs(head_cmds, remote):
        problems.append(
            f"setup: no setup command installs the mounted repository on the head node "
            f"(expected e.g. `pip install -e {remote}` in setup_commands)"
        )
    for role, cmds in worker_roles.items():
        if not _installs(cmds, remote):
            problems.append(
                f"setup: worker node type {role!r} never installs the mounted repository "
                f"(expected e.g. `pip install -e {remote}` in setup_commands)"
            )
    return problems


def _env_problems(head_cmds: list[str], worker_roles: dict[str, list[str]]) -> list[str]:
    """Every node role sets each of :data:`REQUIRED_ENV`."""
    problems: list[str] = []
    for var in REQUIRED_ENV:
        if not _sets_env(head_cmds, var):
            problems.append(
                f"env: {var} is not set on the head node; export it in setup_commands "
                f"(e.g. append `export {var}=...` to ~/.bashrc)"
            )
        for role, cmds in worker_roles.items():
            if not _sets_env(cmds, var):
                problems.append(f"env: {var} is not set on worker node type {role!r}; export it in setup_commands")
    return problems


def _mlflow_problems(config: Mapping[str, Any], worker_roles: dict[str, list[str]]) -> list[str]:
    """The head starts an ``mlflow server`` with a backend store, reachable from worker nodes."""
    problems: list[str] = []
    head_only = as_list(config.get("head_setup_commands")) + as_list(config.get("head_start_ray_commands"))
    server_cmds = [c for c in head_only if _MLFLOW_SERVER.search(c)]
    if not server_cmds:
        problems.append(
            "mlflow: no `mlflow server` is started on the head node (head_start_ray_commands); "
            "trials on a cluster log to one server, the single writer of the tracking database"
        )
        return problems
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
    return problems


def _head_commands(config: Mapping[str, Any], node_types: Mapping[str, Any], head_type: Any) -> list[str]:
    head_spec = node_types.get(head_type, {}) if isinstance(head_type, str) else {}
    init = head_spec.get("initialization_commands", config.get("initialization_commands"))
    return (
        as_list(init)
        + as_list(config.get("setup_commands"))
        + as_list(config.get("head_setup_commands"))
        + as_list(config.get("head_start_ray_commands"))
    )


def _worker_commands(
    config: Mapping[str, Any], node_types: Mapping[str, Any], head_type: Any, local: bool
) -> dict[str, list[str]]:
    """Commands each worker role runs (Ray: a node type's own lists replace the global ones)."""
    roles: dict[str, list[str]] = {}
    if local:
        if (config.get("provider") or {}).get("worker_ips"):
            roles["local worker"] = (
                as_list(config.get("initialization_commands"))
                + as_list(config.get("setup_commands"))
                + as_list(config.get("worker_setup_commands"))
                + as_list(config.get("worker_start_ray_commands"))
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
            as_list(init)
            + as_list(config.get("setup_commands"))
            + as_list(setup)
            + as_list(config.get("worker_start_ray_commands"))
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
class RepoMount:
    """Where the repository lands on the nodes (:func:`repo_mount`)."""

    remote: str  # where the repository root lands on the nodes, e.g. ~/autoal-src
    whole: bool  # the whole folder is mounted (not only its parts)
    parts: set[str]  # top-level entries of the repository that are mounted


def repo_mount(config: Mapping[str, Any], base_dir: Path, problems: list[str]) -> RepoMount | None:
    """Where the repository is mounted on the nodes: either the whole folder, or its parts
    (``~/autoal-src/autoal: ./autoal``, ...) under one remote root. None (and a problem) when it
    is not, or when parts that ``pip install -e`` and ``conf_dir()`` need are missing."""
    mounts = config.get("file_mounts") or {}
    if not isinstance(mounts, Mapping):
        mounts = {}
    found: dict[str, RepoMount] = {}
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
            entry = found.setdefault(target, RepoMount(target, True, set()))
            entry.whole = True
            entry.parts |= set(REPO_PARTS)
        elif "/" not in rel and target.endswith("/" + rel):
            root_remote = target[: -len(rel) - 1]
            found.setdefault(root_remote, RepoMount(root_remote, False, set())).parts.add(rel)
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
    filters = as_list(config.get("rsync_filter"))
    excludes = as_list(config.get("rsync_exclude"))
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
