"""The layer order of ``autoal/`` written down in docs/DESIGN.md §6: no module imports from a
higher layer (at module level or inside a function), and the only import circles are a
registry's with the modules that register in it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "autoal"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """autoal modules imported anywhere in ``path`` (``from a.b import c`` counts a.b and,
    when it is a module, a.b.c)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n in MODULES)
    return found


GRAPH = {m: _imports(p) - {m} for m, p in MODULES.items()}


def _design_layers() -> dict[str, int]:
    """Top-level unit (``autoal.x``) -> layer, read from the table in DESIGN.md §6."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    section = text[text.index("**Layers of `autoal/`**") :]
    layers: dict[str, int] = {}
    for line in section.splitlines():
        m = re.match(r"\| (\d+) \| (.+?) \|", line)
        if m:
            for name in re.findall(r"`([a-z_]+)`", m.group(2)):
                layers["autoal" if name == "autoal" else f"autoal.{name}"] = int(m.group(1))
    return layers


LAYERS = _design_layers()


def _unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_module_has_a_layer_in_the_design():
    assert len(LAYERS) >= 20
    missing = sorted({_unit(m) for m in MODULES} - set(LAYERS))
    assert not missing, f"add these to the layer table of docs/DESIGN.md §6: {missing}"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    upward = [
        f"{m} (layer {LAYERS[_unit(m)]}) imports {t} (layer {LAYERS[_unit(t)]})"
        for m, targets in GRAPH.items()
        for t in sorted(targets)
        if LAYERS[_unit(t)] > LAYERS[_unit(m)]
    ]
    assert not upward, "\n".join(upward)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_import_circles_only_around_a_registry():
    for circle in _strongly_connected(GRAPH):
        package = {_unit(m) for m in circle}
        assert len(package) == 1 and any(m.endswith(".registry") for m in circle), (
            f"import circle outside a registry: {' -> '.join(circle)}"
        )


def test_the_checks_see_an_upward_import_and_a_circle():
    """The graph really contains the imports the checks rely on (a test that cannot fail is none)."""
    assert "autoal.executors.ray_scoring" in GRAPH["autoal.learner"]  # a lazy import inside a function
    assert LAYERS["autoal.loop"] > LAYERS["autoal.executors"] > LAYERS["autoal.search"]
    fake = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert _strongly_connected(fake) == [["a", "b"]]


def _imports(path: Path) -> list[list[str]]:
    """The module names of each import statement of the file at ``path`` (nested ones included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append([node.module])
        elif isinstance(node, ast.Import):
            found.append([a.name for a in node.names])
    return found


def test_mlflow_is_imported_by_tracking_alone():
    """DESIGN.md §5: every MLflow call goes through the autoal.tracking package (serialized SQLite
    writes, one place to change when MLflow's API does)."""
    importers = []
    for name, path in MODULES.items():
        for mods in _imports(path):
            if any(m == "mlflow" or m.startswith("mlflow.") for m in mods):
                importers.append(name)
    assert importers and {_unit(m) for m in importers} == {"autoal.tracking"}, sorted(set(importers))


def test_hydra_is_imported_by_the_cli_alone():
    """The library knows nothing of Hydra or the command line: hydra and omegaconf are imported
    only under autoal.cli (DESIGN.md §6), and nothing below layer 10 imports autoal.cli."""
    importers = set()
    for name, path in MODULES.items():
        for mods in _imports(path):
            if any(m.split(".")[0] in ("hydra", "omegaconf") for m in mods):
                importers.add(_unit(name))
    assert importers == {"autoal.cli"}, sorted(importers)
    assert LAYERS["autoal.cli"] > max(v for k, v in LAYERS.items() if k not in ("autoal.cli", "autoal.__main__"))


def test_ray_is_imported_by_the_executors_and_the_platform_alone():
    """DESIGN.md §5: every Ray path runs under autoal.executors (a round's work off the loop's
    process: scoring actors, ENSvarR's member tasks, the Ray Train search) or autoal.platform
    (sweeps, the cluster); a strategy declares its Ray resources and calls an executor."""
    importers = set()
    for name, path in MODULES.items():
        for mods in _imports(path):
            if any(m == "ray" or m.startswith("ray.") for m in mods):
                importers.add(name)
    units = {".".join(m.split(".")[:2]) for m in importers}
    assert units == {"autoal.executors", "autoal.platform"}, sorted(importers)
    assert {"autoal.executors.ray_ensemble", "autoal.executors.ray_scoring"} <= importers
