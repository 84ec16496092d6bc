"""A SQLite store file: damaged, half-created, or fine (inspected read-only:
:func:`sqlite_store_state`), and created atomically (:func:`prepare_sqlite_store`)."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoal.errors import TrackingError
from autoal.paths import user_path

_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class StoreState:
    """What a SQLite store file holds: ``new`` (no file, an empty file, or a database without
    tables: nothing to keep), ``ok`` (an MLflow store at this MLflow's schema), ``half`` (MLflow
    tables, but the schema revision missing or behind: a first creation that was killed, or an
    older MLflow); ``revision`` and ``head``: the schema revision found and the one this MLflow
    writes; ``runs``: how many runs it holds."""

    kind: str
    revision: str | None = None
    head: str | None = None
    runs: int = 0


def one_line_error(e: BaseException) -> str:
    """An exception as one short line (SQLAlchemy's messages carry the SQL and a link)."""
    text = str(getattr(e, "orig", None) or e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def sqlite_store_state(path: Path) -> StoreState:
    """Inspect the SQLite store ``path`` read-only (nothing is created or written); raise
    :class:`TrackingError` naming the file when it is damaged (not a SQLite file, shorter than its
    header says, unreadable), a database of another program, or written by a newer MLflow."""
    import sqlite3

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return StoreState("new")
    except OSError as e:
        raise TrackingError(f"tracking.uri: cannot read the SQLite store {path}: {e}") from None
    if size == 0:
        return StoreState("new")
    damaged = (
        f"tracking.uri: the SQLite store {path} is damaged ({{}}); it was left unchanged: restore it "
        "from a backup, or move it away to start a new store"
    )
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as e:
        raise TrackingError(f"tracking.uri: cannot read the SQLite store {path}: {e}") from None
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise TrackingError(damaged.format("not a SQLite database file"))
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(header[28:32], "big")
    if pages and header[24:28] == header[92:96] and size < page * pages:  # the header's size is valid
        raise TrackingError(
            damaged.format(f"{size} bytes, but its header counts {pages} pages of {page} bytes: the file was cut short")
        )
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        raise TrackingError(f"tracking.uri: cannot open the SQLite store {path}: {e}") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables - {"sqlite_sequence"}:
            return StoreState("new")
        if "experiments" not in tables or "runs" not in tables:
            raise TrackingError(
                f"tracking.uri: {path} is a SQLite database of another program (no MLflow "
                "tables: experiments, runs); choose another file for the store"
            )
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        rows = con.execute("SELECT version_num FROM alembic_version").fetchall() if "alembic_version" in tables else []
        revision = rows[0][0] if rows else None
    except sqlite3.DatabaseError as e:
        if getattr(e, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            raise TrackingError(damaged.format(str(e))) from None
        return StoreState("ok")  # busy, or a journal to roll back: MLflow's own connection copes
    finally:
        con.close()
    head, known = _schema_revisions()
    if revision is not None and revision == head:
        return StoreState("ok", revision, head, runs)
    if revision is not None and known is not None and revision not in known:
        raise TrackingError(
            f"tracking.uri: the SQLite store {path} was written by a newer MLflow (schema revision "
            f"{revision}, unknown to the installed MLflow); upgrade mlflow"
        )
    return StoreState("half", revision, head, runs)


@functools.lru_cache(maxsize=1)
def _schema_revisions() -> tuple[str | None, frozenset[str] | None]:
    """The schema revision this MLflow writes, and every revision it knows (None where its
    migration scripts cannot be read)."""
    try:
        from alembic.script import ScriptDirectory
        from mlflow.store.db.utils import _get_alembic_config

        script = ScriptDirectory.from_config(_get_alembic_config(""))
        return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())
    except Exception:  # noqa: BLE001 - MLflow's internals moved: compare nothing
        return None, None


def _half_store_message(path: Path, state: StoreState) -> str:
    found = f"schema revision {state.revision}" if state.revision else "no schema revision"
    if state.runs:
        return (
            f"tracking.uri: the SQLite store {path} holds {state.runs} run(s) but its MLflow schema is incomplete "
            f"({found}; this MLflow needs {state.head}); it was left unchanged: back it up, then run `mlflow db "
            f"upgrade sqlite:///{path}`, or set tracking.uri to another file"
        )
    return (
        f"tracking.uri: the SQLite store {path} is half-created ({found}; this MLflow needs {state.head}) and holds "
        "no runs: nothing to read; the next `autoal run` with this store recreates it"
    )


def prepare_sqlite_store(path: Path) -> None:
    """Make ``path`` a complete MLflow store (call under the store's lock): create a new one
    atomically (tables and migrations in a temporary file of the same folder, then renamed into
    place, so a kill at any instant leaves either no store or a complete one); recreate a
    half-created one that holds no runs, keeping the old file beside it; leave one that exists
    alone."""
    state = sqlite_store_state(path)
    if state.kind == "ok":
        return
    if state.kind == "half":
        if state.runs:
            raise TrackingError(_half_store_message(path, state))
        backup = path.with_name(f"{path.name}.half-created-{time.strftime('%Y%m%d-%H%M%S')}.bak")
        shutil.copy2(path, backup)
        _create_sqlite_store(path)
        found = f"schema revision {state.revision}" if state.revision else "no schema revision"
        print(
            f"warning: tracking.uri: the SQLite store {path} was half-created ({found}, no runs), e.g. by a first "
            f"run that was killed; recreated it, the old file is kept as {backup}",
            file=sys.stderr,
            flush=True,
        )
        return
    _create_sqlite_store(path)


def _create_sqlite_store(path: Path) -> None:
    """A new MLflow store at ``path``: built in ``.<name>.creating-<pid>-<ns>`` beside it, synced,
    renamed over ``path`` (left-overs of a killed creation are removed first)."""
    import sqlalchemy
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    from autoal.faults import kill_now, store_sql_fault, strike_store

    for old in path.parent.glob(f".{path.name}.creating-*"):
        old.unlink(missing_ok=True)
    # a new name each time: MLflow caches its store objects by URI, table creation included
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}-{time.time_ns()}")
    tmp_uri = f"sqlite:///{tmp}"
    n_fault, count = store_sql_fault(), [0]

    def count_statements(*_args: Any) -> None:
        count[0] += 1
        if count[0] == n_fault:
            kill_now()

    if n_fault is not None:
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "after_cursor_execute", count_statements)
    try:
        MlflowClient(tracking_uri=tmp_uri).search_experiments(max_results=1)  # tables, migrations, "Default"
    except Exception as e:  # noqa: BLE001 - MLflow raises many types
        tmp.unlink(missing_ok=True)
        raise TrackingError(f"tracking.uri: cannot create the MLflow store {path}: {one_line_error(e)}") from e
    finally:
        if n_fault is not None:
            sqlalchemy.event.remove(sqlalchemy.engine.Engine, "after_cursor_execute", count_statements)
        engine = SqlAlchemyStore._engine_map.pop(tmp_uri, None)
        if engine is not None:
            engine.dispose()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    strike_store("created")
    os.replace(tmp, path)
    for engine in list(SqlAlchemyStore._engine_map.values()):  # this process's connections to the old file
        database = engine.url.database
        if database and user_path(database).resolve() == path.resolve():
            engine.dispose()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    strike_store("replaced")
