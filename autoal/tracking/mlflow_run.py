"""One tracking run: :class:`MLflowTracker` writes one MLflow run (nested under a sweep's
parent run when given); :class:`NullTracker` writes nothing; :class:`Tracker` is what both offer."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from autoal.extras import require
from autoal.tracking.store import ensure_experiment, quiet_artifact_progress, store_path
from autoal.writable import space_for

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


def _named_full_store(method: Callable[..., Any]) -> Callable[..., Any]:
    """A method of :class:`MLflowTracker` whose store (or artifact folder) runs out of space
    raises one :class:`~autoal.errors.NoSpaceError` naming ``tracking.uri`` and the file."""

    @functools.wraps(method)
    def wrapped(self: "MLflowTracker", *args: Any, **kwargs: Any) -> Any:
        with space_for(store_path(self.uri), "tracking.uri", store=True):
            return method(self, *args, **kwargs)

    return wrapped


class MLflowTracker:
    """One MLflow run, addressed by id through the client API (no global active-run state, so
    that many trackers can live in one process)."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        artifact_location: str | None = None,
    ) -> None:
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
                found = self.client.search_runs(
                    [self.experiment_id],
                    f"{query} and attributes.status = 'RUNNING'",
                    max_results=1,
                    order_by=["attributes.start_time DESC"],
                )
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
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    @_named_full_store
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i : i + 500])

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
            self.client.log_batch(self.run_id, tags=items[i : i + 100])

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
            if (
                d.dataset.name == name
                and d.dataset.digest == digest
                and any(t.key == "mlflow.data.context" and t.value == context for t in d.tags)
            ):
                return
        entity = MetaDataset(
            source=CodeDatasetSource({k: str(v) for k, v in source.items()}), name=name, digest=digest
        )._to_mlflow_entity()
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
                    model,
                    name="model",
                    serialization_format=fmt,
                    registered_model_name=registered_name,
                    input_example=input_example,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"]
                    + (["autoal"] if fmt == "pickle" else []),
                )
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
            found = self.client.search_logged_models(
                experiment_ids=[self.experiment_id], max_results=100, filter_string=f"source_run_id = '{self.run_id}'"
            )
        except Exception:  # noqa: BLE001 - a server without logged models: nothing to clean up
            return []
        pending = [m.model_id for m in found if m.status == LoggedModelStatus.PENDING]
        for model_id in pending:
            self.client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
            self.client.set_logged_model_tags(
                model_id, {"autoal.failed": "left PENDING by a killed process; the resumed run logged the model again"}
            )
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
