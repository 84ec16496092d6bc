"""A plain `pip install` works: the wheel built from the repository holds the package with its
config groups and the `autoal` console script (no top-level `pipelines`), and, installed in a
fresh virtual environment (no editable install, no repository on the path, an empty working
folder), `autoal run dataset=digits al.rounds=1` runs.

The fresh environment installs the wheel alone (`--no-deps --no-index`: CI has no route to the
wheels of torch or Ray); its dependencies come from the test's own environment through a `.pth`
line that appends that environment's site-packages to `sys.path` (after the fresh one's, and
without processing its `.pth` files, so the editable install there is not seen)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _source_copy(dest: Path) -> Path:
    """The repository's tracked files (a clean checkout: no build/ or egg-info left by others)."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    if files.returncode != 0:
        pytest.skip("not a git checkout: cannot tell tracked files from build output")
    for rel in filter(None, files.stdout.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _source_copy(tmp / "src")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-q", "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("autoal-*.whl")
    return whl


def test_wheel_holds_the_package_its_config_and_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"autoal"}, tops  # no top-level `pipelines`
    for part in ("conf/config.yaml", "conf/sweep.yaml", "conf/query.yaml", "conf/strategy/autoal.yaml",
                 "conf/dataset/digits.yaml", "conf/sweep/smoke.yaml", "cli/__init__.py", "cli/run.py"):
        assert f"autoal/{part}" in names, part
    assert "autoal = autoal.cli:main" in entry_points


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_autoal_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    fresh_site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "zz_autoal_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stdout[-2000:] + inst.stderr[-3000:]

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTOAL_CONF_DIR", "VIRTUAL_ENV")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=work, env=env)

    where = run(str(py), "-c", "import importlib.util, autoal, autoal.paths; print(autoal.__file__); "
                               "print(autoal.paths.conf_dir()); print(importlib.util.find_spec('pipelines'))")
    assert where.returncode == 0, where.stderr[-3000:]
    file, conf, pipelines = where.stdout.split()
    assert Path(file).is_relative_to(fresh_site), file  # the installed wheel, not the repository
    assert Path(conf) == fresh_site / "autoal" / "conf" and pipelines == "None"

    autoal = str(venv / "bin" / "autoal")
    helped = run(autoal, "run", "--help")
    assert helped.returncode == 0 and "least_confidence" in helped.stdout, helped.stderr[-2000:]
    out = run(autoal, "run", "dataset=digits", "al.rounds=1", timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "AUBC" in out.stdout and "digits · margin · seed 0" in out.stdout, out.stdout
    assert len(list((work / "runs").glob("digits-margin-seed0-*/config.yaml"))) == 1
    bad = run(autoal, "run", "al.rounds=-1")
    assert bad.returncode == 2 and "al.rounds" in bad.stderr and "Traceback" not in bad.stderr
