"""The documentation site (issue 24): ``mkdocs build --strict`` (a warning — a broken link or
cross-reference, an API object a ``:::`` directive cannot find, a page missing from the nav — is
an error) and every tutorial's Python blocks, run in order in a fresh process in an empty folder,
offline, as a reader would paste them."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
#: a ```python fence at the start of a line, up to the closing fence (blocks marked ```bash or
#: ```text are shown, never run)
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
#: per page; a page takes 20-30 s of CPU, but several times that on a shared, loaded machine
PAGE_TIMEOUT_S = 300


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order."""
    return PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if IN_CI:
            pytest.fail(f"{module} is not installed (the dev extra installs it)")
        pytest.skip(f"{module} is not installed: pip install -e '.[dev]'")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOAL_", "MLFLOW_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        AUTOAL_PROGRESS="off",
        HOME=str(tmp_path / "home"),
        MPLBACKEND="Agg",
        NO_PROXY="*",
        HTTP_PROXY="http://offline.invalid:9",
        HTTPS_PROXY="http://offline.invalid:9",
    )
    return env


def test_site_builds_without_warnings(tmp_path):
    _need("mkdocs")
    _need("mkdocstrings_handlers.python")
    out = tmp_path / "site"
    p = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    # the API reference is generated from the docstrings, cross-references resolved
    library = (out / "api" / "library" / "index.html").read_text()
    assert 'id="autoal.api.run"' in library and "Positions (rows of" in library
    assert 'href="../models/#autoal.models.ModuleAdapter"' in library  # a Sphinx role, now a link
    assert (
        library.count("Public API: users may import it") == 3
    )  # autoal.run, autoal.query, RunResult (autoal.api_marker)
    for page in TUTORIALS:
        assert (out / "tutorials" / page.stem / "index.html").is_file(), f"{page.name} is not on the site"


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [p for v in node.values() for p in _nav_pages(v)]
    return [p for v in node for p in _nav_pages(v)]


def test_every_tutorial_is_in_the_nav():
    import yaml

    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert sorted(p for p in nav if p.startswith("tutorials/")) == [f"tutorials/{p.name}" for p in TUTORIALS]
    assert {"own_images", "own_model", "labeling", "cluster_sweep"} <= {p.stem for p in TUTORIALS}
    assert all((ROOT / "docs" / p).is_file() for p in nav)


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(page, tmp_path):
    blocks = python_blocks(page)
    assert blocks, f"{page.name} has no ```python block to run"
    script = tmp_path / f"{page.stem}.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "home").mkdir()
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            [sys.executable, str(script)],
            cwd=work,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{page.name}: its Python blocks ran longer than {PAGE_TIMEOUT_S} s\n{e.stdout}\n{e.stderr}")
    print(f"{page.name}: {time.monotonic() - t0:.1f} s")
    assert p.returncode == 0, f"{page.name}: its Python blocks failed\n{p.stdout[-4000:]}\n{p.stderr[-6000:]}"
