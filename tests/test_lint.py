"""ruff's lint rules of pyproject.toml ([tool.ruff.lint]: syntax errors, pyflakes, bugbear) and its
layout (``ruff format``, [tool.ruff.format]) hold over the whole repository (the package, the tests,
the benchmarks, the scripts)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return [str(exe)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed (pip install -e '.[dev]' installs it)")


def test_the_repository_passes_ruff():
    out = subprocess.run(
        [*_ruff(), "check", "--no-cache", "autoal", "tests", "bench", "pipelines", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert "All checks passed" in out.stdout


def test_the_repository_is_formatted_by_ruff():
    out = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", "autoal", "tests", "bench", "pipelines", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, (
        "run `ruff format autoal tests bench pipelines scripts`:\n" + (out.stdout + out.stderr)[-4000:]
    )
