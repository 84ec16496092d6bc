"""Every command autoal prints for the user to copy runs as printed (issue 23): paths with spaces
(and characters Hydra's override grammar reserves) are quoted. The labeling import line printed
by an export in folders with spaces is run through the shell as printed; the ``mlflow ui`` line
is split as the shell would and names the whole store; the sweep's resume line gives back the
same arguments."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autoal.cli.common import compose, mlflow_ui_command, override_word
from autoal.cli.sweep import _resume_command

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "labeling"))  # the labeling tests' helpers
from labeling_images import BATCH, SEED_PER_CLASS, fill, make_images, read_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _line_after(text: str, marker: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if marker in line:
            rest = line.split(marker, 1)[1].strip()
            return rest or lines[i + 1].strip()
    raise AssertionError(f"{marker!r} not in:\n{text}")


def _shell_env(tmp_path: Path) -> dict[str, str]:
    """``autoal`` on PATH as this checkout (a shim), as an installed console script would be."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "autoal"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m autoal "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    env.pop("AUTOAL_CONF_DIR", None)
    return env


def test_labeling_import_and_mlflow_ui_lines_run_as_printed_with_spaces(tmp_path, capsys):
    from autoal.cli.query import main

    images, project = tmp_path / "my photos", tmp_path / "label work" / "photos al"
    store = tmp_path / "my store" / "mlflow.db"
    store.parent.mkdir()
    truth = make_images(images)
    assert (
        main(
            [
                "export",
                f"labeling.images={images}",
                f"labeling.project={project}",
                "labeling.image_size=8",
                f"al.query_size={BATCH}",
                "al.mc_samples=3",
                "train.epochs=2",
                "train.batch_size=16",
                "runtime.quiet=true",
                "runtime.num_threads=2",
                f"tracking.uri=sqlite:///{store}",
                "tracking.experiment=labeling",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out

    # the MLflow UI line: the shell's words name the whole store
    ui = shlex.split(_line_after(out, "MLflow UI:"))
    assert ui == ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{store}"], ui
    assert store.is_file()

    # the person fills in the batch CSV in place, then runs the printed import line
    line = _line_after(out, "then run:")
    words = shlex.split(line)
    assert words[:3] == ["autoal", "query", "import"] and words[-2:] == [
        "--csv",
        str(project / "batches" / "round_001.csv"),
    ], words
    csv_path = Path(words[-1])
    fill(read_batch(csv_path), images, truth, csv_path)
    p = subprocess.run(
        line, shell=True, cwd=tmp_path, env=_shell_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, (line, p.stderr[-3000:])
    st = json.loads((project / "labels.json").read_text())
    assert st["next_round"] == 2 and len(st["labeled"]) == 3 * SEED_PER_CLASS + BATCH

    # the "next:" line names the same project (as Hydra reads it)
    nxt = shlex.split(_line_after(p.stdout, "next:"))
    assert nxt[:3] == ["autoal", "query", "export"]
    assert compose(nxt[3:] + [f"labeling.images={images}"], config_name="query")["labeling"]["project"] == str(project)


@pytest.mark.parametrize(
    "name",
    [
        "a b",
        "a,b",
        "it's",
        "x (1)",
        "k=v",
        "[draft]",
        'say "hi"',
        "ü ñ",
        "back\\",
        "q\\'x",
        "$HOME",
        "123",
        "plain-dir_1.2",
    ],
)
def test_a_project_override_reads_back_through_the_shell_and_hydra(tmp_path, name):
    project = str(tmp_path / name)
    word = override_word("labeling.project", project)
    arg = subprocess.run(["sh", "-c", f"printf %s {word}"], capture_output=True, text=True, check=True).stdout
    assert compose([arg, f"labeling.images={tmp_path}"], config_name="query")["labeling"]["project"] == project


def test_the_resume_line_gives_back_the_same_arguments(tmp_path):
    argv = [
        "sweep=lam",
        f"runtime.output_dir={tmp_path / 'my runs'}",
        "al.rounds=3",
        f"tracking.uri=sqlite:///{tmp_path / 'my store' / 'mlflow.db'}",
        "tracking.experiment='a b'",
        "sweep.resume=true",
    ]
    line = _resume_command("autoal sweep", argv, "lam-20260101-000000-ab12")
    words = shlex.split(line)
    assert words[:2] == ["autoal", "sweep"]
    assert words[2:] == [*argv[:-1], "sweep.resume=lam-20260101-000000-ab12"]
    # as the sweep composes it: the same config as the original arguments with the new resume
    assert compose(words[2:], "sweep") == compose([*argv[:-1], "sweep.resume=lam-20260101-000000-ab12"], "sweep")


def test_the_mlflow_ui_line_quotes_any_store_path():
    for path in ("/data/my runs/mlflow.db", "/data/it's/mlflow.db", "/data/$x;true &/mlflow.db"):
        uri = f"sqlite:///{path}"
        assert shlex.split(mlflow_ui_command(uri)) == ["mlflow", "ui", "--backend-store-uri", uri]
        echoed = subprocess.run(
            ["sh", "-c", f"printf '%s\\n' {mlflow_ui_command(uri)}"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert echoed == ["mlflow", "ui", "--backend-store-uri", uri]  # as the shell passes it
    assert mlflow_ui_command("http://127.0.0.1:5000") == "open http://127.0.0.1:5000 in a browser"
