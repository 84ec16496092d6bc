"""The tracking store: the checks that refuse an unusable one before any work
(:func:`check_tracking_uri`), the experiment a run writes into (:func:`ensure_experiment`), the
store's paths, and read access (:func:`mlflow_client`)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from autoal.errors import ConfigError, TrackingError
from autoal.extras import require
from autoal.tracking.serialized import call_serialized, sqlite_lock_path
from autoal.tracking.sqlite_store import _half_store_message, one_line_error, prepare_sqlite_store, sqlite_store_state
from autoal.writable import check_writable_folder, space_for
from autoal.paths import user_path


def check_tracking_uri(uri: str, timeout: float = 5.0, reading: bool = False) -> None:
    """Fail fast, before any work, when the store cannot be used: a SQLite file whose folder
    cannot be created, a SQLite file that is damaged or not an MLflow store (read-only: nothing
    is created or changed, see :func:`sqlite_store_state`), a half-created store that holds runs
    (one without runs is repaired when it is first written; ``reading``: refused too), a
    ``file:`` store without MLFLOW_ALLOW_FILE_STORE, an HTTP server that does not answer."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if path.is_dir():  # else MLflow retries for minutes before it says "unable to open database file"
            raise TrackingError(
                f"tracking.uri: the SQLite store {path} is a folder; expected a file such as "
                f"sqlite:///{path / 'mlflow.db'}"
            )
        try:  # nothing is created here: ensure_experiment makes the folder when the store is first used
            check_writable_folder(
                path.parent if str(path.parent) else ".", "tracking.uri", example="sqlite:////tmp/autoal/mlflow.db"
            )
        except ConfigError as e:
            raise TrackingError(f"{e} (the folder of the SQLite store {path})") from None
        state = sqlite_store_state(user_path(path))  # read-only: a damaged store is named, not touched
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
            raise TrackingError(
                f"tracking.uri: the MLflow server at {uri} does not answer ({e}); start it with "
                f"`mlflow server --host 127.0.0.1 --port 5000` or set tracking.uri to a sqlite:/// path"
            ) from e
        return
    if uri.startswith("file:") or "://" not in uri:
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
            raise TrackingError(
                f"tracking.uri: {uri!r} is a file store, which MLflow 3 refuses unless "
                "MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///mlflow.db instead"
            )
        return
    raise TrackingError(
        f"tracking.uri: unsupported scheme in {uri!r}; expected sqlite:///PATH, http(s)://HOST:PORT or file:PATH"
    )


def ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    """Create (once, in the driver) the store's tables and the experiment; return its id.
    ``artifact_location``: where a new experiment keeps its artifacts (default MLflow's, which
    is ``./mlruns`` of the working folder that creates it); an existing experiment keeps its own."""
    check_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        try:
            user_path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"tracking.uri: cannot create the folder of the SQLite store {uri}: {e}") from e
    # under the store's lock: two processes creating a fresh SQLite store (its tables, the
    # experiment) at the same moment would race
    with space_for(store_path(uri), "tracking.uri", store=True):
        return call_serialized(sqlite_lock_path(uri), lambda: _ensure_experiment(uri, name, artifact_location))


def store_path(uri: str) -> str:
    """The file of a SQLite store (``sqlite:///PATH``), else the URI itself: what a message names."""
    return str(user_path(uri[len("sqlite:///") :])) if uri.startswith("sqlite:///") else uri


def _ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    if uri.startswith("sqlite:///"):
        prepare_sqlite_store(user_path(uri[len("sqlite:///") :]))
    return _get_or_create_experiment(uri, name, artifact_location)


def artifacts_beside_store(uri: str) -> str | None:
    """``<folder of the SQLite store>/mlruns`` for ``sqlite:///PATH`` (absolute), else None: an
    artifact location that does not depend on the working folder."""
    if not uri.startswith("sqlite:///"):
        return None
    return str(user_path(uri[len("sqlite:///") :]).resolve().parent / "mlruns")


def _get_or_create_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"tracking.experiment: the MLflow experiment {name!r} at {uri} was deleted; restore "
                f"it (mlflow experiments restore --experiment-id {exp.experiment_id}) or choose "
                "another tracking.experiment"
            )
        return (
            exp.experiment_id
            if exp is not None
            else client.create_experiment(name, artifact_location=artifact_location)
        )
    except TrackingError:
        raise
    except Exception as e:  # mlflow raises many types for an unusable store
        if isinstance(e, mlflow.exceptions.MlflowException) and e.error_code == "RESOURCE_ALREADY_EXISTS":
            return client.get_experiment_by_name(name).experiment_id
        if "already exists" in str(e) and uri.startswith("sqlite:///"):  # MLflow re-ran its migrations
            raise TrackingError(
                f"tracking.uri: the SQLite store {uri[len('sqlite:///') :]} is half-created (MLflow "
                f"found some of its tables already there: {one_line_error(e)}); move it away to "
                "start a new store"
            ) from None
        raise TrackingError(f"tracking.uri: cannot use the MLflow store {uri}: {e}") from e


def absolute_tracking_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` → ``sqlite:////abs/cwd/mlflow.db``: trials run in their own
    working folders (and on other nodes), so relative store paths must be fixed in the driver."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(user_path(uri[len("sqlite:///") :]).resolve())
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return "file:" + str(user_path(uri[len("file:") :]).resolve())
    return uri


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
