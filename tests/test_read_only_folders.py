"""Folders that cannot be written (issue 16): a read-only working directory — a real one, a
read-only bind mount in a private mount namespace, which refuses writes even to root (CI runs
as root, so permission bits alone would prove nothing) — makes every command exit 2 with one
line naming the config key, before any work; nothing is written. Plus the side-effect-free
check itself (:func:`autoal.writable.check_writable_folder`) on a file in the way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autoal.errors import ConfigError
from autoal.writable import check_writable_folder, nearest_existing


def _can_mount_read_only() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "d=$(mktemp -d) && mount --bind $d $d && mount -o remount,bind,ro $d && "
            "! touch $d/x 2>/dev/null; r=$?; umount $d; rmdir $d; exit $r",
        ],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount_read_only(), reason="needs root and mount namespaces (unshare -m) for a real read-only folder"
)


def autoal_in_read_only(folder: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m autoal <args>`` with ``folder`` mounted read-only and as the working directory."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "AUTOAL_PROGRESS": "0"}
    env.pop("RAY_ADDRESS", None)
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && cd "$0" && exec "$@"'
    return subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(folder),
            sys.executable,
            "-m",
            "autoal",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@needs_mount
@pytest.mark.parametrize(
    "args, key",
    [
        (["run", "dataset=digits", "tracking=none", "al.rounds=1"], "runtime.output_dir"),
        (["run", "--check", "dataset=digits", "tracking=none"], "runtime.output_dir"),
        (["run", "dataset=digits", "al.rounds=1", "runtime.output_dir={writable}"], "tracking.uri"),
        (["sweep", "tracking=none"], "sweep.storage_path"),
        (["sweep", "tracking=none", "sweep.storage_path={writable}/ray"], "runtime.output_dir"),
        (["report", "tracking.uri=sqlite:///{writable}/m.db"], "tracking.uri"),
    ],
    ids=["run", "run-check", "run-sqlite-store", "sweep", "sweep-run-folders", "report-no-store"],
)
def test_a_read_only_working_directory_is_one_line_naming_the_key(tmp_path, args, key):
    ro = tmp_path / "read-only"
    ro.mkdir()
    (ro / "data.txt").write_text("a user's file\n")
    writable = tmp_path / "writable"
    writable.mkdir()
    args = [a.replace("{writable}", str(writable)) for a in args]
    before_ro, before_w = _files(ro), _files(writable)
    proc = autoal_in_read_only(ro, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], proc.stderr
    if key != "tracking.uri" or args[0] != "report":
        assert "read-only file system" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert _files(ro) == before_ro and _files(writable) == before_w  # nothing written, not even the writable folder


@needs_mount
def test_a_read_only_working_directory_runs_when_the_outputs_go_elsewhere(tmp_path):
    """The remedy the message names works: the same command with runtime.output_dir elsewhere
    runs to the end in the read-only folder."""
    ro = tmp_path / "read-only"
    ro.mkdir()
    out = tmp_path / "runs"
    proc = autoal_in_read_only(
        ro, "run", "dataset=digits", "tracking=none", "al.rounds=1", "train.epochs=2", f"runtime.output_dir={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "AUBC" in proc.stdout and list(out.glob("*/state.json"))
    assert _files(ro) == []


def test_the_check_writes_nothing_and_names_a_file_in_the_way(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"^runtime.output_dir: .*/runs/sub cannot be created: .*/runs is a file"):
        check_writable_folder(blocker / "sub", "runtime.output_dir")
    deep = tmp_path / "a" / "b" / "c"
    assert check_writable_folder(deep, "runtime.output_dir") == deep.resolve()
    assert nearest_existing(deep) == tmp_path and not (tmp_path / "a").exists()  # asked, not created
