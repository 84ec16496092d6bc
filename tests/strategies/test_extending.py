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

ROOT = Path(__file__).resolve().parents[2]


def _readme_files() -> dict[str, str]:
    """path -> text of every code block in the section whose first line is ``# <path>``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Extending autoal") :]
    section = section[: section.index("\n## ", 1)]
    files = {}
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.S):
        first, _, body = block.partition("\n")
        m = re.fullmatch(r"# (autoal/[\w/]+\.(?:py|yaml))", first.strip())
        if m:
            files[m.group(1)] = body
    return files


def test_readme_shows_one_file_and_one_config_for_each_extension():
    files = _readme_files()
    assert set(files) == {
        "autoal/strategies/confidence_ratio.py",
        "autoal/conf/strategy/confidence_ratio.yaml",
        "autoal/data/blobs.py",
        "autoal/conf/dataset/blobs.yaml",
        "autoal/models/tiny_mlp.py",
        "autoal/conf/model/tiny_mlp.yaml",
    }
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
    cmd = [
        sys.executable,
        str(repo / "pipelines" / "run.py"),
        "dataset=blobs",
        "model=tiny_mlp",
        "strategy=confidence_ratio",
        "al.rounds=2",
        "al.initial_size=20",
        "al.query_size=10",
        "train.epochs=5",
        "tracking=none",
        f"runtime.output_dir={tmp_path / 'runs'}",
        "runtime.quiet=true",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "AUBC" in out.stdout
    runs = list((tmp_path / "runs").glob("blobs-confidence_ratio-seed0-*/state.json"))
    assert len(runs) == 1, list((tmp_path / "runs").glob("*"))
    # the same names are unknown to the installed package: the copy's new files did the work
    check = subprocess.run(
        [sys.executable, "-c", "from autoal.models import model_names; print(model_names())"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={k: v for k, v in env.items() if k != "PYTHONPATH"},
    )
    assert check.returncode == 0 and "'tiny_mlp'" not in check.stdout, check.stdout + check.stderr


_CANDIDATE_RUN = """
import json, sys, types

from autoal.config import RunConfig
from autoal.loop import run_experiment

user = types.ModuleType("users_strategies")  # the README's strategy, registered from a user's own module
exec(compile(sys.argv[1], "confidence_ratio.py", "exec"), user.__dict__)
out = {}
for formulation, params in (("lookahead", {"lookahead_parts": 2, "head_steps": 5}),
                            ("paper", {"warmup_epochs": 1, "search_epochs": 1, "width": 4, "gmm_samples": 200})):
    cfg = RunConfig.from_dict({
        "dataset": {"name": "digits"}, "train": {"epochs": 3}, "al": {"rounds": 2, "initial_size": 20, "query_size": 10},
        "strategy": {"name": "autoal", "params": {"formulation": formulation, "candidates": ["margin", "confidence_ratio"],
                                                  **params}},
        "tracking": {"enabled": False}, "runtime": {"output_dir": sys.argv[2] + "/" + formulation, "quiet": True}})
    r = run_experiment(cfg)
    out[formulation] = {"labeled": len(set(r.labeled.tolist())), "history": r.history}
print(json.dumps(out, default=str))
"""


@pytest.mark.slow
def test_the_readme_strategy_is_an_autoal_candidate_by_name(tmp_path):
    """Any registered strategy, a user's included, is an AutoAL candidate by its name: the README's
    ``confidence_ratio``, registered from a module outside the package, runs in both formulations
    (a fresh process, so the registration does not leak into other tests)."""
    import json

    source = _readme_files()["autoal/strategies/confidence_ratio.py"]
    out = subprocess.run(
        [sys.executable, "-c", _CANDIDATE_RUN, source, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    runs = json.loads(out.stdout.strip().splitlines()[-1])
    for formulation, key in (("lookahead", "weight/confidence_ratio"), ("paper", "w_mean/confidence_ratio")):
        run = runs[formulation]
        assert run["labeled"] == 40  # 20 initial + 2 rounds of 10, all distinct
        weights = [rec[key] for rec in run["history"] if key in rec]
        assert len(weights) == 2 and all(0.0 < float(w) < 1.0 for w in weights), (formulation, weights)
