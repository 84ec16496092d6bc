"""The MLflow SQLite store under kills and damage (issue 23): a first run killed at any instant of
the store's creation leaves no half-created store (the next run works in the same folder); a
half-created store left by older versions is repaired when it holds no runs and refused when it
holds runs; a model logged by a killed process is not left PENDING; a damaged store file makes
every command that uses it exit 2 with one line naming the file, the file unchanged."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autoal.errors import TrackingError

RUN = [
    "dataset=digits",
    "al.rounds=1",
    "al.initial_size=20",
    "al.query_size=10",
    "train.epochs=1",
    "al.mc_samples=2",
    "runtime.output_dir=runs",
]


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "AUTOAL_PROGRESS": "0",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
        ),
        **extra,
    }
    for key in ("RAY_ADDRESS", "AUTOAL_FAULT", "AUTOAL_FAULT_ONCE", "AUTOAL_FAULT_STORE"):
        if key not in extra:
            env.pop(key, None)
    return env


def autoal(folder: Path, *args: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m autoal <args>`` in ``folder``."""
    return subprocess.run(
        [sys.executable, "-m", "autoal", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
    )


def run_args(db: Path, *extra: str) -> list[str]:
    """A small run on ``db``; without its model unless ``extra`` asks (logging it takes seconds)."""
    return ["run", *RUN, f"tracking.uri=sqlite:///{db}", "tracking.log_model=false", *extra]


def listed_runs(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("autoal")
    return client.search_runs([exp.experiment_id]) if exp else []


def assert_runs_in_a_fresh_store(folder: Path, db: Path, first: subprocess.CompletedProcess) -> None:
    """The run after the killed one succeeds in the same folder, and its run is listed."""
    proc = autoal(folder, *run_args(db))
    assert proc.returncode == 0, (first.stderr[-1500:], proc.stderr[-3000:])
    runs = listed_runs(db)
    assert [r.info.status for r in runs if r.info.status == "FINISHED"] == ["FINISHED"], runs
    assert not list(folder.glob(".mlflow.db.creating-*"))


# ------------------------------------------------------------------ a kill during the store's creation


@pytest.mark.slow
@pytest.mark.parametrize("point", ["sql:1", "sql:700", "sql:1650", "created", "replaced"])
def test_a_first_run_killed_at_a_point_of_the_store_creation_leaves_a_store_the_next_run_uses(tmp_path, point):
    """AUTOAL_FAULT_STORE kills the first run inside MLflow's table creation and migrations
    (after the N-th SQL statement), with the store built but not renamed, and renamed but
    without the experiment; the same command then runs to the end."""
    db = tmp_path / "mlflow.db"
    first = autoal(tmp_path, *run_args(db), AUTOAL_FAULT_STORE=point)
    assert first.returncode == -signal.SIGKILL, (first.returncode, first.stderr[-2000:])
    assert db.exists() == (point == "replaced")  # before the rename there is no store at all
    assert_runs_in_a_fresh_store(tmp_path, db, first)


@pytest.mark.slow
def test_a_first_run_killed_at_many_instants_of_the_store_creation_leaves_a_store_the_next_run_uses(tmp_path):
    """SIGKILL from outside at instants spread over the creation window (timed from the moment
    the store's temporary file appears; the commands silence MLflow's own "Creating initial
    MLflow database tables" line); each time, the next run in the same folder works and lists its
    run. (The old code left a half-migrated mlflow.db: every later run failed with "table ...
    already exists".)"""
    delays = [0.0, 0.1, 0.3, 0.6, 1.0, 1.5, 2.2, 3.0]
    killed_with_a_store = 0
    for i, delay in enumerate(delays):
        folder = tmp_path / f"k{i}"
        folder.mkdir()
        db = folder / "mlflow.db"
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoal", *run_args(db)],
            cwd=folder,
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        lines: list[str] = []

        def read(p=proc, lines=lines) -> None:
            for line in p.stderr:
                lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.time() + 240
        while not (list(folder.glob(".mlflow.db.creating-*")) or db.exists()) and proc.poll() is None:
            assert time.time() < deadline, "".join(lines)[-2000:]
            time.sleep(0.01)
        time.sleep(delay)
        proc.kill()
        proc.wait(60)
        reader.join(10)
        killed_with_a_store += db.exists()
        assert_runs_in_a_fresh_store(folder, db, subprocess.CompletedProcess([], proc.returncode, "", "".join(lines)))
    assert killed_with_a_store < len(delays)  # some kills did fall inside the creation


# ------------------------------------------------------------------ half-created stores of older versions


def _half_created(tmp_path: Path, with_run: bool) -> Path:
    """A store as a killed old-style creation leaves it: MLflow's tables, no schema revision,
    a migration's table missing (MLflow re-runs its migrations on it and fails)."""
    from mlflow.tracking import MlflowClient

    from autoal.tracking import ensure_experiment

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    exp = ensure_experiment(uri, "autoal")
    if with_run:
        MlflowClient(uri).create_run(exp)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE alembic_version")
    con.execute("DROP TABLE logged_models")
    con.commit()
    con.close()
    return db


def test_a_half_created_store_without_runs_is_recreated_and_kept_as_a_backup(tmp_path, capsys):
    from autoal.tracking import ensure_experiment, sqlite_store_state

    db = _half_created(tmp_path, with_run=False)
    old = db.read_bytes()
    assert sqlite_store_state(db).kind == "half"
    exp = ensure_experiment(f"sqlite:///{db}", "autoal")
    assert sqlite_store_state(db).kind == "ok" and exp
    backups = list(tmp_path.glob("mlflow.db.half-created-*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == old
    err = capsys.readouterr().err
    assert f"{db} was half-created" in err and str(backups[0]) in err


def test_a_half_created_store_with_runs_is_refused_in_one_line_and_left_unchanged(tmp_path):
    from autoal.tracking import check_tracking_uri, ensure_experiment

    db = _half_created(tmp_path, with_run=True)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    for call in (lambda: check_tracking_uri(f"sqlite:///{db}"), lambda: ensure_experiment(f"sqlite:///{db}", "x")):
        with pytest.raises(
            TrackingError,
            match=rf"{db} holds 1 run\(s\) but its MLflow schema is incomplete .*"
            r"mlflow db upgrade",
        ):
            call()
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert list(tmp_path.iterdir()) == [db]


def test_a_store_created_by_autoal_is_complete_and_no_temporary_file_stays(tmp_path):
    from autoal.tracking import ensure_experiment, sqlite_store_state

    (tmp_path / ".mlflow.db.creating-1").write_bytes(b"left by a killed creation")
    db = tmp_path / "mlflow.db"
    ensure_experiment(f"sqlite:///{db}", "autoal")
    state = sqlite_store_state(db)
    assert state.kind == "ok" and state.revision == state.head and state.head
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


# ------------------------------------------------------------------ a kill while the model is logged


@pytest.mark.slow
def test_a_run_killed_while_its_model_is_logged_leaves_no_pending_model_after_the_resume(tmp_path):
    from mlflow.entities import LoggedModelStatus
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    first = autoal(tmp_path, *run_args(db, "tracking.log_model=true"), AUTOAL_FAULT_STORE="model")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("autoal").experiment_id
    assert [m.status for m in client.search_logged_models([exp])] == [LoggedModelStatus.PENDING]
    second = autoal(tmp_path, *run_args(db, "tracking.log_model=true"))
    assert second.returncode == 0, second.stderr[-3000:]
    runs = client.search_runs([exp])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    models = client.search_logged_models([exp], filter_string=f"source_run_id = '{runs[0].info.run_id}'")
    statuses = sorted(m.status.to_string() if hasattr(m.status, "to_string") else str(m.status) for m in models)
    assert not [m for m in models if m.status == LoggedModelStatus.PENDING], statuses
    ready = [m for m in models if m.status == LoggedModelStatus.READY]
    assert len(ready) == 1, statuses
    assert runs[0].data.tags["autoal.model_uri"] == f"models:/{ready[0].model_id}"


# ------------------------------------------------------------------ a damaged store in every command


def _damaged(tmp_path: Path, kind: str) -> Path:
    """``head -c 5000`` of a real store, or 100,000 random bytes."""
    if kind == "random":
        db = tmp_path / "rand.db"
        db.write_bytes(os.urandom(100_000))
    else:
        from mlflow.tracking import MlflowClient

        from autoal.tracking import ensure_experiment

        good = tmp_path / "good" / "mlflow.db"
        uri = f"sqlite:///{good}"
        MlflowClient(uri).create_run(ensure_experiment(uri, "autoal"))
        db = tmp_path / "trunc.db"
        db.write_bytes(good.read_bytes()[:5000])
    old = time.time() - 3600
    os.utime(db, (old, old))
    return db


def _query_export(tmp_path: Path) -> list[str]:
    from labeling_images import make_images

    make_images(tmp_path / "images")
    return [
        "query",
        "export",
        f"labeling.images={tmp_path / 'images'}",
        f"labeling.project={tmp_path / 'project'}",
        "al.query_size=4",
        "train.epochs=1",
        "al.mc_samples=2",
    ]


def _query_import(tmp_path: Path) -> list[str]:
    (tmp_path / "labels.csv").write_text("sample_id,label\n1,red\n")
    (tmp_path / "project").mkdir()
    return ["query", "import", f"labeling.project={tmp_path / 'project'}", "--csv", str(tmp_path / "labels.csv")]


COMMANDS = {
    "run": lambda t: ["run", *RUN],
    "run-check": lambda t: ["run", "--check", *RUN],
    "report": lambda t: ["report", f"report.out_dir={t / 'report'}"],
    "sweep": lambda t: ["sweep", "sweep=smoke", f"sweep.storage_path={t / 'ray'}", f"runtime.output_dir={t / 'runs'}"],
    "ablation": lambda t: [
        "ablation",
        "ablation=fig4",
        f"sweep.storage_path={t / 'ray'}",
        f"runtime.output_dir={t / 'runs'}",
    ],
    "query-export": _query_export,
    "query-import": _query_import,
}


@pytest.mark.parametrize("kind", ["truncated", "random"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_damaged_store_is_one_line_naming_the_file_in_every_command(tmp_path, command, kind, capsys, monkeypatch):
    """Each command's main, as ``autoal <command>`` calls it: exit 2, one line ``error: ...``
    naming the file, before any work (no Ray, no training), the file unchanged."""
    import importlib

    from autoal.cli.common import main_guard

    db = _damaged(tmp_path, kind)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    argv = [*COMMANDS[command](tmp_path), f"tracking.uri=sqlite:///{db}"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    mod = importlib.import_module(f"autoal.cli.{argv[0]}")
    with pytest.raises(SystemExit) as exc:
        main_guard(mod.main, argv[1:])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2, err
    assert len(err) == 1 and err[0].startswith("error: TrackingError: ") and str(db) in err[0], err
    assert "damaged" in err[0] and "left unchanged" in err[0], err
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ray").exists() and not (tmp_path / "report").exists()
