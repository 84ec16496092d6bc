"""The public-API marker (issue 25): what users may import is marked ``@public_api`` in the code,
what extensions use ``@developer_api`` (:mod:`autoal.api_marker`); every name the package root
exports is public, every public object is on an API page of the docs, and the pages say so."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autoal.api_marker import DEVELOPER, LEVELS, PUBLIC, api_level, developer_api, public_api

ROOT = Path(__file__).resolve().parent.parent


def _resolve(dotted: str):
    """The object at ``dotted`` (a module, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def _marked_in_source() -> dict[str, str]:
    """``module.name`` -> level for every top-level class or function of autoal marked in its
    source (read from the decorators, as the docs site reads them)."""
    found = {}
    for path in (ROOT / "autoal").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Name) and deco.id in ("public_api", "developer_api"):
                        found[f"{module}.{node.name}"] = deco.id.removesuffix("_api")
    return found


def test_a_mark_is_an_attribute_of_the_object_itself():
    def f():
        return 1

    class Base:
        pass

    assert public_api(f) is f and api_level(f) == PUBLIC and f() == 1
    assert developer_api(Base) is Base and api_level(Base) == DEVELOPER

    class Child(Base):
        pass

    assert api_level(Child) is None  # a subclass is not marked by its base
    with pytest.raises(TypeError, match="marks a class or a function"):
        public_api(3)


def test_every_name_the_package_root_exports_is_public():
    import autoal

    for name in autoal.__all__:
        obj = getattr(autoal, name)
        if name == "__version__":
            assert isinstance(obj, str)  # a constant: a string cannot carry a mark
            continue
        assert api_level(obj) == PUBLIC, name


@pytest.mark.parametrize(
    "dotted",
    [
        "autoal.run",
        "autoal.query",
        "autoal.strategies.Strategy",
        "autoal.strategies.PoolStrategy",
        "autoal.strategies.ScoreStrategy",
        "autoal.strategies.QueryContext",
        "autoal.strategies.register_strategy",
        "autoal.strategies.build_strategy",
        "autoal.strategies.strategy_names",
        "autoal.models.ModuleAdapter",
        "autoal.models.register_model",
        "autoal.data.ALDataset",
        "autoal.data.DataSpec",
        "autoal.data.load_dataset",
        "autoal.data.register_dataset",
        "autoal.data.dataset_names",
        "autoal.data.files.dataset_from_arrays",
        "autoal.loop.RunResult",
        "autoal.config.RunConfig",
        "autoal.labeling.project.LabelingProject",
        "autoal.platform.sweep.driver.run_sweep",
    ],
)
def test_what_users_import_is_public(dotted):
    assert api_level(_resolve(dotted)) == PUBLIC


def test_what_extensions_use_is_developer_api():
    for dotted in ("autoal.registry.Registry", "autoal.models.Backbone", "autoal.strategies.base.RayResources"):
        assert api_level(_resolve(dotted)) == DEVELOPER, dotted
    assert api_level(_resolve("autoal.strategies.baselines.ens_var_r.EnsembleVarRatio")) is None  # internal


def test_every_public_object_is_on_an_api_page():
    """The marks the source carries are the marks at run time, and every public object is
    documented on a page under docs/api (a ``:::`` directive, through any re-export)."""
    marked = _marked_in_source()
    assert len([m for m, level in marked.items() if level == PUBLIC]) >= 17
    for dotted, level in marked.items():
        assert api_level(_resolve(dotted)) == level, dotted
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        for dotted in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M):
            documented.add(id(_resolve(dotted)))
    missing = sorted(d for d, level in marked.items() if level == PUBLIC and id(_resolve(d)) not in documented)
    assert not missing, f"public but on no page under docs/api: {missing}"


def test_the_docs_open_a_marked_entry_with_its_level():
    """The site's Griffe extension (scripts/docs_api_marker.py) puts the level at the top of a
    marked object's docstring, and only there."""
    griffe = pytest.importorskip("griffe")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from docs_api_marker import ApiMarker, note
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    pkg = griffe.load("autoal", search_paths=[str(ROOT)], extensions=griffe.load_extensions(ApiMarker()))
    for dotted, level in _marked_in_source().items():
        obj = pkg[dotted.removeprefix("autoal.")]
        assert obj.docstring is not None and obj.docstring.value.startswith(note(level)), dotted
    assert note(PUBLIC) != note(DEVELOPER) and set(LEVELS) == {PUBLIC, DEVELOPER}
    internal = pkg["strategies.baselines.ens_var_r.EnsembleVarRatio"].docstring.value
    assert not any(internal.startswith(note(level)) for level in LEVELS)


def test_the_marker_is_import_light():
    code = "import sys, autoal.api_marker; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT)}
    )
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
