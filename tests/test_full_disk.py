"""A full disk (issue 23, item 4): a run folder, a labeling project, a report and the SQLite store
on a small tmpfs that has no room left. Each command prints one line naming the key and the file
and "no space left", exits 2, and leaves what it had saved readable (the next run resumes)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoal.cli.common import main_guard
from autoal.state import RunState

sys.path.insert(0, str(Path(__file__).resolve().parent))

TINY = [
    "dataset=digits",
    "al.rounds=1",
    "al.initial_size=20",
    "al.query_size=10",
    "train.epochs=1",
    "al.mc_samples=2",
    "runtime.quiet=true",
    "runtime.num_threads=1",
]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at ``tmp_path/disk`` (root may mount one; skipped where mounting is refused)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A file that takes all but about ``leave`` bytes of ``disk``."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with open(filler, "ab") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def command(module: str, argv: list[str], capsys) -> tuple[int, str]:
    import importlib

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main_guard(importlib.import_module(f"autoal.cli.{module}").main, argv)
    return info.value.code, capsys.readouterr().err


def assert_one_line(err: str, *names: str) -> None:
    assert err.startswith("error: NoSpaceError: ") and err.count("\n") == 1, err
    assert "no space left" in err, err
    for n in names:
        assert n in err, (n, err)


def test_run_folder_on_a_full_disk_is_one_line_and_the_state_stays_valid(small_disk, capsys):
    out = small_disk / "runs"
    filler = fill(small_disk, 50_000)  # room for state.json and the round files, not the model
    code, err = command("run", [*TINY, "tracking=none", f"runtime.output_dir={out}"], capsys)
    assert code == 2
    assert_one_line(err, "runtime.output_dir", str(out))
    run_dir = next(out.iterdir())
    if (run_dir / "state.json").exists():  # what was saved is whole: the same command resumes from it
        assert RunState.load(run_dir) is not None
    assert not [p for p in run_dir.rglob("*.tmp")], "a temporary file was left behind"
    filler.unlink()
    code, err = command("run", [*TINY, "tracking=none", f"runtime.output_dir={out}"], capsys)
    assert code == 0, err
    assert RunState.load(run_dir).finished


def test_a_new_sqlite_store_on_a_full_disk_is_one_line(small_disk, tmp_path, capsys):
    db = small_disk / "mlflow.db"
    fill(small_disk, 20_000)
    code, err = command(
        "run", [*TINY, f"tracking.uri=sqlite:///{db}", f"runtime.output_dir={tmp_path / 'runs'}"], capsys
    )
    assert code == 2
    assert_one_line(err, "tracking.uri", str(db), "database or disk is full")


def test_a_sqlite_store_that_fills_during_a_run_is_one_line(small_disk, tmp_path, capsys):
    db = small_disk / "mlflow.db"
    args = [
        *TINY,
        f"tracking.uri=sqlite:///{db}",
        f"runtime.output_dir={tmp_path / 'runs'}",
        "tracking.log_model=false",
    ]
    code, err = command("run", args, capsys)
    assert code == 0, err
    fill(small_disk, 8_000)
    code, err = command("run", [*args, "al.seed=1"], capsys)
    assert code == 2
    assert_one_line(err, "tracking.uri", str(db))


def test_a_labeling_project_on_a_full_disk_is_one_line(small_disk, tmp_path, capsys):
    from labeling_images import make_images

    images = tmp_path / "images"
    make_images(images)
    project = small_disk / "project"
    fill(small_disk, 12_000)
    code, err = command(
        "query",
        [
            "export",
            f"labeling.project={project}",
            f"labeling.images={images}",
            "tracking.enabled=false",
            "al.query_size=4",
            "al.mc_samples=2",
            "train.epochs=1",
            "labeling.image_size=8",
        ],
        capsys,
    )
    assert code == 2
    assert_one_line(err, "labeling.project", str(project))
    state = project / "labels.json"
    if state.exists():
        json.loads(state.read_text())  # whole, or not there


def test_a_report_on_a_full_disk_is_one_line(small_disk, capsys):
    runs_file = Path(__file__).resolve().parents[1] / "bench" / "reference" / "quality_runs_2026-11-30.jsonl"
    out = small_disk / "report"
    fill(small_disk, 4_000)
    code, err = command("report", [f"report.out_dir={out}", f"report.runs_files=[{runs_file}]"], capsys)
    assert code == 2
    assert_one_line(err, "report.out_dir", str(out))


@pytest.mark.parametrize(
    "number, words",
    [(errno.EDQUOT, "quota"), (errno.EFBIG, "size limit"), (errno.ENOSPC, "no space left on the device")],
)
def test_main_guard_names_every_kind_of_full(tmp_path, capsys, number, words):
    """An OSError of a full quota or a too-large file, raised where no autoal code names it."""
    target = tmp_path / "big.bin"

    def write(argv):
        raise OSError(number, os.strerror(number), str(target))

    code, err = command_fn(write, capsys)
    assert code == 2
    assert err.count("\n") == 1 and str(target) in err and words in err and errno.errorcode[number] in err, err


def command_fn(fn, capsys) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main_guard(fn, [])
    return info.value.code, capsys.readouterr().err
