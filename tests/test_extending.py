"""README "Extending autoal": the strategy, data set and backbone shown there, each one file plus
one config file, run as written in a scratch copy of the repository."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_files() -> dict[str, str]:
    """path -> text of every code block in the section whose first line is ``# <path>``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Extending autoal"):]
    section = section[:section.index("\n## ", 1)]
    files = {}
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.S):
        first, _, body = block.partition("\n")
        m = re.fullmatch(r"# (autoal/[\w/]+\.(?:py|yaml))", first.strip())
        if m:
            files[m.group(1)] = body
    return files


def test_readme_shows_one_file_and_one_config_for_each_extension():
    files = _readme_files()
    assert set(files) == {"autoal/strategies/confidence_ratio.py", "autoal/conf/strategy/confidence_ratio.yaml",
                          "autoal/data/blobs.py", "autoal/conf/dataset/blobs.yaml",
                          "autoal/models/tiny_mlp.py", "autoal/conf/model/tiny_mlp.yaml"}
    for path in files:  # new files, not edits of existing ones
        assert not (ROOT / path).exists(), path


@pytest.mark.slow
def test_readme_extensions_run_end_to_end_from_a_copy(tmp_path):
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("autoal", "pipelines"):
        shutil.copytree(ROOT / part, repo / part, ignore=ignore)
    for path, body in _readme_files().items():
        (repo / path).write_text(body)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("AUTOAL_CONF_DIR", None)  # the copy's package carries its conf/
    cmd = [sys.executable, str(repo / "pipelines" / "run.py"), "dataset=blobs", "model=tiny_mlp",
           "strategy=confidence_ratio", "al.rounds=2", "al.initial_size=20", "al.query_size=10", "train.epochs=5",
           "tracking=none", f"runtime.output_dir={tmp_path / 'runs'}", "runtime.quiet=true"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "AUBC" in out.stdout
    runs = list((tmp_path / "runs").glob("blobs-confidence_ratio-seed0-*/state.json"))
    assert len(runs) == 1, list((tmp_path / "runs").glob("*"))
    # the same names are unknown to the installed package: the copy's new files did the work
    check = subprocess.run([sys.executable, "-c", "from autoal.models import model_names; print(model_names())"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert check.returncode == 0 and "'tiny_mlp'" not in check.stdout, check.stdout + check.stderr
