"""A plain `pip install` works: the wheel built from the repository holds the package with its
config groups and the `autoal` console script (no top-level `pipelines`), and, installed in a
fresh virtual environment (no editable install, no repository on the path, an empty working
folder), `autoal run dataset=digits al.rounds=1` runs. Installed without extras (the core:
`pip install autoal`), the README's library examples run, `autoal --help`/`--version` answer,
and none of Ray, MLflow, Hydra, pandas, pyarrow, torchvision is there to be imported.

The fresh environment installs the wheel alone (`--no-deps --no-index`: CI has no route to the
wheels of torch or Ray); its dependencies come from the test's own environment through a `.pth`
line (appended to `sys.path` after the fresh one's site-packages, without processing that
folder's `.pth` files, so the editable install there is not seen): the whole site-packages for
the full install; for the core, a folder of symbolic links to the distributions that the
wheel's core requirements need (their closure, read from the installed metadata), so that pip
checks that they satisfy them and nothing else is importable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("autoal-*.whl")
    return whl


def test_wheel_holds_the_package_its_config_and_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"autoal"}, tops  # no top-level `pipelines`
    for part in (
        "conf/config.yaml",
        "conf/sweep.yaml",
        "conf/query.yaml",
        "conf/strategy/autoal.yaml",
        "conf/dataset/digits.yaml",
        "conf/sweep/smoke.yaml",
        "cli/__init__.py",
        "cli/run.py",
    ):
        assert f"autoal/{part}" in names, part
    assert "autoal = autoal.cli:main" in entry_points


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_autoal_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    fresh_site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (fresh_site / "zz_autoal_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stdout[-2000:] + inst.stderr[-3000:]

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTOAL_CONF_DIR", "VIRTUAL_ENV")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=work, env=env)

    where = run(
        str(py),
        "-c",
        "import importlib.util, autoal, autoal.paths; print(autoal.__file__); "
        "print(autoal.paths.conf_dir()); print(importlib.util.find_spec('pipelines'))",
    )
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


# ---------------------------------------------------------------------------------------------
# The core: the wheel without extras
# ---------------------------------------------------------------------------------------------
#: the packages of the extras ([ray], [mlflow], [cli], [data]): none is importable in the core
EXTRA_PACKAGES = (
    "ray",
    "mlflow",
    "hydra",
    "omegaconf",
    "pandas",
    "pyarrow",
    "torchvision",
    "medmnist",
    "zarr",
    "yaml",
    "sqlalchemy",
    "alembic",
)


def core_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist lines that hold without an extra (what `pip install autoal` installs)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    reqs = [
        Requirement(line.split(":", 1)[1].strip()) for line in meta.splitlines() if line.startswith("Requires-Dist:")
    ]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def closure(reqs: list[Requirement]) -> dict[str, Distribution]:
    """The installed distributions that ``reqs`` need, with their own requirements (and those
    of the extras a requirement names), by canonical name; a missing one fails the test."""
    found: dict[str, Distribution] = {}
    todo = list(reqs)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in found:
            continue
        try:
            found[name] = dist = distribution(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{req} is a core requirement (or one of its own) but is not installed here")
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return found


def link_distributions(dists: dict[str, Distribution], dest: Path) -> Path:
    """A folder of symbolic links to the top-level entries (packages, modules, .dist-info) of
    ``dists``, for a `.pth` line: it shows those distributions and nothing else."""
    dest.mkdir()
    for dist in dists.values():
        site = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            if not top.endswith(".pth") and not (dest / top).exists() and (site / top).exists():
                (dest / top).symlink_to(site / top)
    return dest


def readme_library_examples() -> list[str]:
    """The first two ```python blocks of the README's "## As a library" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## As a library") :]
    section = section[: section.index("\n## ", 3)]
    return re.findall(r"```python\n(.*?)```", section, re.S)[:2]


@pytest.mark.slow
def test_wheel_without_extras_is_the_library_and_names_the_extra_a_command_needs(wheel, tmp_path):
    core = closure(core_requirements(wheel))
    assert {"torch", "numpy", "scikit-learn", "scipy", "matplotlib", "tqdm"} <= set(core), sorted(core)
    heavy = {"ray", "mlflow", "hydra-core", "omegaconf", "pandas", "pyarrow", "torchvision", "medmnist"} & set(core)
    assert not heavy, f"the core requirements pull in {sorted(heavy)}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    fresh_site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (fresh_site / "zz_autoal_core_deps.pth").write_text(f"{link_distributions(core, tmp_path / 'core-site')}\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    inst = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300
    )
    assert inst.returncode == 0, inst.stdout[-2000:] + inst.stderr[-3000:]
    # pip's own check: every requirement of autoal (the core) and of what it needs is installed
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTOAL_CONF_DIR", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", MPLCONFIGDIR=str(tmp_path / "mpl"))

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=work, env=env)

    probe = run(
        str(py),
        "-c",
        "import importlib.util, sys, autoal; print(autoal.__file__); print(sorted(m for m in "
        "sys.argv[1:] if importlib.util.find_spec(m)))",
        *EXTRA_PACKAGES,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    file, importable = probe.stdout.splitlines()
    assert Path(file).is_relative_to(fresh_site), file
    assert importable == "[]", f"packages of the extras importable in the core: {importable}"
    for blocked in ("ray", "mlflow", "hydra"):
        failed = run(str(py), "-c", f"import {blocked}")
        assert failed.returncode == 1 and "ModuleNotFoundError" in failed.stderr, (blocked, failed.stderr[-500:])

    autoal = str(venv / "bin" / "autoal")
    for cmd in ([autoal, "--version"], [str(py), "-m", "autoal", "--version"]):
        out = run(*cmd)
        assert out.returncode == 0 and re.fullmatch(r"autoal \d+\.\d+\.\d+\S*\n", out.stdout), (
            cmd,
            out.stdout,
            out.stderr[-2000:],
        )
    helped = run(autoal, "--help")
    assert helped.returncode == 0 and "sweep" in helped.stdout, helped.stderr[-2000:]
    for argv, line in (
        (["sweep"], "error: autoal sweep needs Ray, MLflow and Hydra: pip install 'autoal[ray,mlflow,cli]'"),
        (["run", "al.rounds=1"], "error: autoal run needs Hydra: pip install 'autoal[cli]'"),
        (["report"], "error: autoal report needs MLflow and Hydra: pip install 'autoal[mlflow,cli]'"),
    ):
        out = run(autoal, *argv)
        assert out.returncode == 2 and out.stderr == line + "\n", (argv, out.stderr[-2000:])

    first, own_model = readme_library_examples()
    out = run(str(py), "-c", first, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"AUBC 0\.\d+, final accuracy 0\.\d+", out.stdout), out.stdout
    assert re.search(r"label next: \[\s*\d+(\s+\d+){4}\s*\]", out.stdout), out.stdout
    out = run(str(py), "-c", own_model, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"AUBC 0\.\d+, final accuracy 0\.\d+", out.stdout), out.stdout
    assert len(list((work / "runs").glob("arrays-*-seed0-*/state.json"))) == 2
