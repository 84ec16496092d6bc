"""Experiment tracking. :class:`MLflowTracker` writes one MLflow run per AL run (nested under a
sweep's parent run when given); :class:`NullTracker` writes nothing; :class:`SerializedTracker`
and :func:`call_serialized` let the concurrent trials of a sweep share one SQLite store; a sweep's
parent run (:func:`start_parent_run`, :func:`end_parent_run`) and reports' reads
(:func:`mlflow_client`) go through here too. This is the only module that imports MLflow, and only
when it is used, so the core runs where MLflow is not installed."""
from __future__ import annotations

import json

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from autoal.errors import ConfigError, TrackingError
from autoal.extras import require
from autoal.writable import check_writable_folder, space_for

#: how to run without MLflow, named by the error for a tracked run where MLflow is not installed
TRACKING_OFF = "turn tracking off (autoal run tracking=none; in the library tracking.enabled=false, the default)"


class Tracker(Protocol):
    run_id: str | None

    def start(self, run_id: str | None = None, identity: dict[str, str] | None = None) -> str | None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def logged_steps(self, key: str) -> set[int]: ...
    def log_dataset(self, name: str, digest: str, context: str, source: dict[str, str]) -> None: ...
    def log_model(self, model: Any, registered_name: str | None = None, input_example: Any = None) -> str | None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    run_id: str | None = None

    def start(self, run_id=None, identity=None):
        return None

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_artifact(self, path, artifact_path=None):
        pass

    def set_tags(self, tags):
        pass

    def logged_steps(self, key):
        return set()

    def log_dataset(self, name, digest, context, source):
        pass

    def log_model(self, model, registered_name=None, input_example=None):
        return None

    def end(self, status="FINISHED"):
        pass


def check_tracking_uri(uri: str, timeout: float = 5.0, reading: bool = False) -> None:
    """Fail fast, before any work, when the store cannot be used: a SQLite file whose folder
    cannot be created, a SQLite file that is damaged or not an MLflow store (read-only: nothing
    is created or changed, see :func:`sqlite_store_state`), a half-created store that holds runs
    (one without runs is repaired when it is first written; ``reading``: refused too), a
    ``file:`` store without MLFLOW_ALLOW_FILE_STORE, an HTTP server that does not answer."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if path.is_dir():  # else MLflow retries for minutes before it says "unable to open database file"
            raise TrackingError(f"tracking.uri: the SQLite store {path} is a folder; expected a file such as "
                                f"sqlite:///{path / 'mlflow.db'}")
        try:  # nothing is created here: ensure_experiment makes the folder when the store is first used
            check_writable_folder(path.parent if str(path.parent) else ".", "tracking.uri",
                                  example="sqlite:////tmp/autoal/mlflow.db")
        except ConfigError as e:
            raise TrackingError(f"{e} (the folder of the SQLite store {path})") from None
        state = sqlite_store_state(path.expanduser())  # read-only: a damaged store is named, not touched
        if state.kind == "half" and (state.runs or reading):
            raise TrackingError(_half_store_message(path, state))
        return
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - user-configured tracking server
                if r.status != 200:
                    raise TrackingError(f"tracking.uri: {uri} answered {r.status} on /health; is it an MLflow server?")
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise TrackingError(f"tracking.uri: the MLflow server at {uri} does not answer ({e}); start it with "
                                f"`mlflow server --host 127.0.0.1 --port 5000` or set tracking.uri to a sqlite:/// path") from e
        return
    if uri.startswith("file:") or "://" not in uri:
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
            raise TrackingError(f"tracking.uri: {uri!r} is a file store, which MLflow 3 refuses unless "
                                "MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///mlflow.db instead")
        return
    raise TrackingError(f"tracking.uri: unsupported scheme in {uri!r}; expected sqlite:///PATH, http(s)://HOST:PORT or file:PATH")


def ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    """Create (once, in the driver) the store's tables and the experiment; return its id.
    ``artifact_location``: where a new experiment keeps its artifacts (default MLflow's, which
    is ``./mlruns`` of the working folder that creates it); an existing experiment keeps its own."""
    check_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        try:
            Path(uri[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"tracking.uri: cannot create the folder of the SQLite store {uri}: {e}") from e
    # under the store's lock: two processes creating a fresh SQLite store (its tables, the
    # experiment) at the same moment would race
    with space_for(store_path(uri), "tracking.uri", store=True):
        return call_serialized(sqlite_lock_path(uri), lambda: _ensure_experiment(uri, name, artifact_location))


def store_path(uri: str) -> str:
    """The file of a SQLite store (``sqlite:///PATH``), else the URI itself: what a message names."""
    return str(Path(uri[len("sqlite:///"):]).expanduser()) if uri.startswith("sqlite:///") else uri


def _named_full_store(method: Callable[..., Any]) -> Callable[..., Any]:
    """A method of :class:`MLflowTracker` whose store (or artifact folder) runs out of space
    raises one :class:`~autoal.errors.NoSpaceError` naming ``tracking.uri`` and the file."""
    @functools.wraps(method)
    def wrapped(self: "MLflowTracker", *args: Any, **kwargs: Any) -> Any:
        with space_for(store_path(self.uri), "tracking.uri", store=True):
            return method(self, *args, **kwargs)
    return wrapped


def _ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    if uri.startswith("sqlite:///"):
        prepare_sqlite_store(Path(uri[len("sqlite:///"):]).expanduser())
    return _get_or_create_experiment(uri, name, artifact_location)


def artifacts_beside_store(uri: str) -> str | None:
    """``<folder of the SQLite store>/mlruns`` for ``sqlite:///PATH`` (absolute), else None: an
    artifact location that does not depend on the working folder."""
    if not uri.startswith("sqlite:///"):
        return None
    return str(Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlruns")


def _get_or_create_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage == "deleted":
            raise TrackingError(f"tracking.experiment: the MLflow experiment {name!r} at {uri} was deleted; restore "
                                f"it (mlflow experiments restore --experiment-id {exp.experiment_id}) or choose "
                                "another tracking.experiment")
        return exp.experiment_id if exp is not None else client.create_experiment(name,
                                                                                   artifact_location=artifact_location)
    except TrackingError:
        raise
    except Exception as e:  # mlflow raises many types for an unusable store
        if isinstance(e, mlflow.exceptions.MlflowException) and e.error_code == "RESOURCE_ALREADY_EXISTS":
            return client.get_experiment_by_name(name).experiment_id
        if "already exists" in str(e) and uri.startswith("sqlite:///"):  # MLflow re-ran its migrations
            raise TrackingError(f"tracking.uri: the SQLite store {uri[len('sqlite:///'):]} is half-created (MLflow "
                                f"found some of its tables already there: {one_line_error(e)}); move it away to "
                                "start a new store") from None
        raise TrackingError(f"tracking.uri: cannot use the MLflow store {uri}: {e}") from e


# ---------------------------------------------------------------------------------------------
# A SQLite store: damaged, half-created, or fine; created atomically
# ---------------------------------------------------------------------------------------------
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
    damaged = f"tracking.uri: the SQLite store {path} is damaged ({{}}); it was left unchanged: restore it " \
              "from a backup, or move it away to start a new store"
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
        raise TrackingError(damaged.format(f"{size} bytes, but its header counts {pages} pages of {page} bytes: "
                                           "the file was cut short"))
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        raise TrackingError(f"tracking.uri: cannot open the SQLite store {path}: {e}") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables - {"sqlite_sequence"}:
            return StoreState("new")
        if "experiments" not in tables or "runs" not in tables:
            raise TrackingError(f"tracking.uri: {path} is a SQLite database of another program (no MLflow "
                                "tables: experiments, runs); choose another file for the store")
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        rows = con.execute("SELECT version_num FROM alembic_version").fetchall() \
            if "alembic_version" in tables else []
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
        raise TrackingError(f"tracking.uri: the SQLite store {path} was written by a newer MLflow (schema revision "
                            f"{revision}, unknown to the installed MLflow); upgrade mlflow")
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
        return (f"tracking.uri: the SQLite store {path} holds {state.runs} run(s) but its MLflow schema is incomplete "
                f"({found}; this MLflow needs {state.head}); it was left unchanged: back it up, then run `mlflow db "
                f"upgrade sqlite:///{path}`, or set tracking.uri to another file")
    return (f"tracking.uri: the SQLite store {path} is half-created ({found}; this MLflow needs {state.head}) and holds "
            "no runs: nothing to read; the next `autoal run` with this store recreates it")


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
        print(f"warning: tracking.uri: the SQLite store {path} was half-created ({found}, no runs), e.g. by a first "
              f"run that was killed; recreated it, the old file is kept as {backup}", file=sys.stderr, flush=True)
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
        if database and Path(database).expanduser().resolve() == path.resolve():
            engine.dispose()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    strike_store("replaced")


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class MLflowTracker:
    """One MLflow run, addressed by id through the client API (no global active-run state, so
    that many trackers can live in one process)."""

    def __init__(self, uri: str, experiment: str, run_name: str | None = None,
                 tags: dict[str, str] | None = None, parent_run_id: str | None = None,
                 artifact_location: str | None = None) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None
        require(f"tracking in MLflow (tracking.uri={uri})", "mlflow", alternative=TRACKING_OFF)
        from mlflow.tracking import MlflowClient

        quiet_artifact_progress()
        self.experiment_id = ensure_experiment(uri, experiment, artifact_location)
        self.client = MlflowClient(tracking_uri=uri)

    @_named_full_store
    def start(self, run_id: str | None = None, identity: dict[str, str] | None = None) -> str:
        """Reopen run ``run_id``, else adopt the RUNNING run whose tags hold ``identity`` (a
        process killed between creating the run and saving its id left it behind: resuming must
        not leave an orphan beside a second run), else create a run tagged with ``identity``."""
        if run_id is None and identity:
            query = " and ".join(f"tags.`{k}` = '{str(v).replace(chr(39), '')}'" for k, v in identity.items())
            try:
                found = self.client.search_runs([self.experiment_id], f"{query} and attributes.status = 'RUNNING'",
                                                max_results=1, order_by=["attributes.start_time DESC"])
            except Exception:  # noqa: BLE001 - a filter the store cannot run: create a new run as before
                found = []
            if found:
                run_id = found[0].info.run_id
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
                self.run_id = run.info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                return self.run_id
            except Exception:
                pass  # the store was reset: start a new run
        tags = {**self.tags, **(identity or {})}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        return self.run_id

    @_named_full_store
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    @_named_full_store
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    @_named_full_store
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    @_named_full_store
    def set_tags(self, tags: dict[str, str]) -> None:
        """All ``tags`` in one batch (a store transaction each: one ``set_tag`` per tag cost a
        SQLite commit each)."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, tags=items[i:i + 100])

    def logged_steps(self, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    @_named_full_store
    def log_dataset(self, name: str, digest: str, context: str, source: dict[str, str]) -> None:
        """The data set as an MLflow dataset input (``mlflow.data``: name, digest, source; the
        run page's "Datasets" column), once per (name, digest, context)."""
        from mlflow.data.code_dataset_source import CodeDatasetSource
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        for d in self.client.get_run(self.run_id).inputs.dataset_inputs:
            if d.dataset.name == name and d.dataset.digest == digest and \
                    any(t.key == "mlflow.data.context" and t.value == context for t in d.tags):
                return
        entity = MetaDataset(source=CodeDatasetSource({k: str(v) for k, v in source.items()}), name=name,
                             digest=digest)._to_mlflow_entity()
        self.client.log_inputs(self.run_id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])])

    @_named_full_store
    def log_model(self, model: Any, registered_name: str | None = None, input_example: Any = None) -> str | None:
        """``model`` as an MLflow PyTorch model under the run (``runs:/<run id>/model``),
        registered as ``registered_name`` when given; returns the model URI. Skipped when the run
        already has its model.

        Saved as a ``torch.export`` program (MLflow's ``pt2`` format: a graph and weights, no
        pickle; loads without autoal, the batch dimension dynamic, dropout off). A model that
        ``torch.export`` cannot trace (data-dependent control flow) is pickled whole instead, and
        the run's tag ``autoal.model_format`` says which. Trusted stores only for a pickled model:
        ``mlflow.pytorch.load_model`` unpickles it with full pickle, so a model from a store (or
        a copied ``mlartifacts``/``mlruns`` folder) runs whatever its pickle names. autoal itself
        never loads it; weights from elsewhere are safe to use through ``<run folder>/final_model.pt``,
        a state dict that ``torch.load(..., weights_only=True)`` reads into ``Learner.new_model``."""
        import mlflow
        import torch

        from autoal.faults import kill_now, store_fault

        if self.client.get_run(self.run_id).data.tags.get("autoal.model_uri"):
            return self.client.get_run(self.run_id).data.tags["autoal.model_uri"]
        self.fail_pending_models()
        fmt = "pt2" if input_example is not None and _exportable(model, input_example) else "pickle"
        if store_fault() == "model":  # the logged model exists (PENDING) when MLflow first calls the model
            model.register_forward_pre_hook(kill_now)
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.uri)
        try:
            with mlflow.start_run(run_id=self.run_id):
                info = mlflow.pytorch.log_model(
                    model, name="model", serialization_format=fmt, registered_model_name=registered_name,
                    input_example=input_example,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"] + (["autoal"] if fmt == "pickle" else []))
        finally:
            mlflow.set_tracking_uri(previous)
        self.client.set_tag(self.run_id, "autoal.model_format", fmt)
        self.client.set_tag(self.run_id, "autoal.model_uri", info.model_uri)
        return info.model_uri

    def fail_pending_models(self) -> list[str]:
        """Mark FAILED the logged models of this run that a killed process left PENDING (MLflow
        creates the model's record first, writes its files, then marks it READY); returns their
        ids. Their records stay, so nothing a person may look for disappears."""
        from mlflow.entities import LoggedModelStatus

        try:
            found = self.client.search_logged_models(experiment_ids=[self.experiment_id], max_results=100,
                                                     filter_string=f"source_run_id = '{self.run_id}'")
        except Exception:  # noqa: BLE001 - a server without logged models: nothing to clean up
            return []
        pending = [m.model_id for m in found if m.status == LoggedModelStatus.PENDING]
        for model_id in pending:
            self.client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
            self.client.set_logged_model_tags(model_id, {"autoal.failed": "left PENDING by a killed process; "
                                                                          "the resumed run logged the model again"})
        return pending

    @_named_full_store
    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _exportable(model: Any, example: Any) -> bool:
    """Whether ``torch.export`` traces ``model`` on ``example`` (a batch as a NumPy array)."""
    import torch

    try:
        torch.export.export(model, (torch.as_tensor(example),))
        return True
    except Exception:  # noqa: BLE001 - any tracing failure means: pickle it instead
        return False


def config_params(d: dict[str, Any]) -> dict[str, str]:
    """A nested config as MLflow params: flat ``a.b.c`` keys, values in JSON syntax (``0.001``,
    ``true``, ``[0, 1]``; strings as they are), and no param for a null or an empty mapping (MLflow
    params are strings; this keeps "None" and "{}" out of the UI and makes the values parseable)."""
    out = {}
    for k, v in flatten(d).items():
        if v is None or v == {} or v == []:
            continue
        out[k] = v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config → flat ``a.b.c`` params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ---------------------------------------------------------------------------------------------
# One writer at a time: concurrent trials on one SQLite store
# ---------------------------------------------------------------------------------------------

#: per thread: the lock files this thread holds (``SerializedTracker._locked`` is re-entrant)
_HELD = threading.local()


class SerializedTracker:
    """Wraps a tracker so that every call holds an exclusive ``fcntl`` lock on ``lock_path``
    (one writer per SQLite file across the trials of a machine) and is retried, with backoff,
    when the store still answers "database is locked"."""

    RETRIES = 8

    def __init__(self, tracker: Any, lock_path: str | Path | None) -> None:
        self._t = tracker
        self._lock_path = Path(lock_path) if lock_path else None

    @property
    def run_id(self):
        return self._t.run_id

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's lock; re-entrant within a thread (a call made while this thread holds the
        lock, e.g. creating the experiment inside a locked tracker construction, runs as is)."""
        if self._lock_path is None:
            yield
            return
        held = _HELD.__dict__.setdefault("paths", {})
        key = str(self._lock_path)
        if held.get(key):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            held[key] = 1
            try:
                yield
            finally:
                held[key] = 0
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return call_serialized(self._lock_path, lambda: getattr(self._t, name)(*args, **kwargs), self._locked)

    def start(self, run_id=None, identity=None):
        return self._call("start", run_id, identity)

    def log_params(self, params):
        return self._call("log_params", params)

    def log_metrics(self, metrics, step=None):
        return self._call("log_metrics", metrics, step=step)

    def log_artifact(self, path, artifact_path=None):
        return self._call("log_artifact", path, artifact_path)

    def set_tags(self, tags):
        return self._call("set_tags", tags)

    def logged_steps(self, key):
        return self._call("logged_steps", key)

    def log_dataset(self, name, digest, context, source):
        return self._call("log_dataset", name, digest, context, source)

    def log_model(self, model, registered_name=None, input_example=None):
        return self._call("log_model", model, registered_name, input_example)

    def end(self, status="FINISHED"):
        return self._call("end", status)


def _is_locked_error(e: BaseException) -> bool:
    text = f"{type(e).__name__}: {e}".lower()
    return "database is locked" in text or "database table is locked" in text


def call_serialized(lock_path: Path | None, fn: Callable[[], Any], locked=None, retries: int = 8) -> Any:
    """``fn()`` under the store's lock, retried with backoff on "database is locked"."""
    if locked is None:
        locked = SerializedTracker(None, lock_path)._locked
    delay = 0.2
    for attempt in range(retries):
        try:
            with locked():
                return fn()
        except Exception as e:  # noqa: BLE001 - MLflow wraps SQLite errors in several types
            if not _is_locked_error(e) or attempt == retries - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def sqlite_lock_path(uri: str) -> Path | None:
    """The lock file that serializes the writers of a SQLite store on this machine (in the
    temp folder, named after the database's absolute path); None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    db = str(Path(uri[len("sqlite:///"):]).expanduser().resolve())
    return Path(tempfile.gettempdir()) / "autoal-locks" / f"mlflow-{hashlib.sha1(db.encode()).hexdigest()[:16]}.lock"


def absolute_tracking_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` → ``sqlite:////abs/cwd/mlflow.db``: trials run in their own
    working folders (and on other nodes), so relative store paths must be fixed in the driver."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return "file:" + str(Path(uri[len("file:"):]).expanduser().resolve())
    return uri


# ---------------------------------------------------------------------------------------------
# A sweep's parent run and read access for reports
# ---------------------------------------------------------------------------------------------
def mlflow_client(uri: str) -> Any:
    """An ``MlflowClient`` on the store ``uri`` (for reading runs: reports)."""
    require("reading runs from MLflow", "mlflow")
    from mlflow.tracking import MlflowClient

    quiet_artifact_progress()
    return MlflowClient(tracking_uri=uri)


def quiet_artifact_progress() -> None:
    """MLflow's own artifact up/download bars follow autoal's rule (:mod:`autoal.progress`): none
    when the output is not a terminal (a log would fill with carriage returns). An explicit
    ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` wins."""
    from autoal.progress import progress_mode

    if progress_mode(True) != "bar":
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def start_parent_run(uri: str, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, Any],
                     reopen: str | None = None, json_artifacts: dict[str, Any] | None = None) -> str:
    """Create a sweep's parent run (or reopen the run ``reopen`` when the store still has it),
    with ``tags``, ``params`` (values cut to MLflow's 6,000 characters) and ``json_artifacts``
    (file name -> JSON-able object); return its id."""
    from mlflow.entities import Param

    def go() -> str:
        exp_id = ensure_experiment(uri, experiment)
        client = mlflow_client(uri)
        if reopen:
            try:
                client.update_run(reopen, status="RUNNING")
                return reopen
            except Exception:  # noqa: BLE001 - the store was reset: start a new parent run
                pass
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(run.info.run_id, params=items[i:i + 100])
        for name, obj in (json_artifacts or {}).items():
            client.log_dict(run.info.run_id, obj, name)
        return run.info.run_id

    return call_serialized(sqlite_lock_path(uri), go)


def end_parent_run(uri: str, run_id: str, status: str, *, metrics: dict[str, float] | None = None,
                   tags: dict[str, str] | None = None, json_artifacts: dict[str, Any] | None = None) -> None:
    """Log the sweep's final ``metrics`` (step 0), ``tags`` and JSON artifacts (file name ->
    content) on its parent run, then end it with ``status``."""
    import json

    from mlflow.entities import Metric

    def go() -> None:
        client = mlflow_client(uri)
        ts = int(time.time() * 1000)
        if metrics:
            client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()])
        for k, v in (tags or {}).items():
            client.set_tag(run_id, k, v)
        if json_artifacts:
            with tempfile.TemporaryDirectory() as d:
                for name, content in json_artifacts.items():
                    path = Path(d) / name
                    path.write_text(json.dumps(content, indent=1, default=str))
                    client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, status=status)

    call_serialized(sqlite_lock_path(uri), go)


def stop_runs(uri: str, experiment: str, sweep_id: str, trial_ids: list[str], reason: str) -> int:
    """End the child runs of ``sweep_id`` whose trial was stopped early (``trial_ids``) as
    KILLED, tagged ``autoal.stopped`` = ``reason`` (a stopped trial's process never ends its
    run); returns how many runs were ended."""
    wanted = {str(t) for t in trial_ids if t}

    def go() -> int:
        client = mlflow_client(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None or not wanted:
            return 0
        n = 0
        for run in client.search_runs([exp.experiment_id], f"tags.sweep_id = '{sweep_id}'", max_results=10000):
            if run.data.tags.get("trial_id") in wanted:
                client.set_tag(run.info.run_id, "autoal.stopped", reason)
                # still RUNNING, or FAILED by the loop when Tune ended the trial: stopped, not failed
                client.set_terminated(run.info.run_id, status="KILLED")
                n += 1
        return n

    return call_serialized(sqlite_lock_path(uri), go)
