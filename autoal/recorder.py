"""A run's record (DESIGN.md §5): the one place that builds a run's tracker (:func:`tracker_for`:
the loop's, a sweep trial's, a labeling project's) and keeps the tracking run in step with the
run's saved state (:class:`RunRecorder`: reopened by the saved id, every round the state holds
and the store lacks logged once, also after a crash between the two writes); an AL run's tags,
params, data sets, figures and model (:class:`LoopRecorder`). MLflow itself stays behind
:mod:`autoal.tracking`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from autoal.config import RunConfig
from autoal.data import ALDataset
from autoal.plots import class_histogram, image_grid, learning_curve
from autoal.run_folder import RunFolder
from autoal.state import STATE_FILE, RunState, atomic_write_json
from autoal.tracking import (
    MLflowTracker,
    NullTracker,
    SerializedTracker,
    Tracker,
    call_serialized,
    config_params,
    git_sha,
    sqlite_lock_path,
)
from autoal.version import __version__


def tracker_for(
    cfg: RunConfig,
    *,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    artifact_location: str | None = None,
    serialized: bool = False,
) -> Tracker:
    """The tracker of one run: a :class:`NullTracker` when ``tracking.enabled`` is off, else an
    MLflow run in ``tracking.experiment`` of ``tracking.uri`` named ``run_name`` (default
    ``tracking.run_name``, else ``<dataset>-<strategy>-seed<seed>``), tagged ``tags`` (default
    ``tracking.tags``), nested under ``parent_run_id``. ``serialized``: every call under the
    store's lock (:class:`SerializedTracker`: the concurrent trials of a sweep)."""
    tr = cfg.tracking
    if not tr.enabled:
        return NullTracker()
    name = run_name or tr.run_name or f"{cfg.dataset.name}-{cfg.strategy.name}-seed{cfg.al.seed}"

    def build() -> MLflowTracker:
        return MLflowTracker(
            tr.uri,
            tr.experiment,
            run_name=name,
            tags=tr.tags if tags is None else tags,
            parent_run_id=parent_run_id,
            artifact_location=artifact_location,
        )

    if not serialized:
        return build()
    lock = sqlite_lock_path(tr.uri)
    return SerializedTracker(call_serialized(lock, build), lock)


class RunRecorder:
    """A tracking run kept in step with a saved state that lists one record per completed round
    (:func:`~autoal.state.round_log_problem`): :meth:`open` reopens the run by the saved id (a new
    run when the store lost it), :meth:`log_rounds` logs the rounds from the saved
    ``logged_rounds`` on, each round's metrics at most once (``step_key``: the metric whose steps
    say which rounds the store holds)."""

    def __init__(self, tracker: Tracker, step_key: str) -> None:
        self.tracker = tracker
        self.step_key = step_key
        #: the rounds whose metrics the tracking run holds: read from the store once per opening
        #: (only this process writes the run: the folder's lock), then kept up to date here
        self._logged: set[int] | None = None

    def open(self, run_id: str | None, identity: dict[str, str] | None = None) -> str | None:
        """Start or reopen the tracking run (``identity``: tags that find a run whose id was never
        saved); return its id."""
        self._logged = None
        return self.tracker.start(run_id, identity=identity)

    def log_round(
        self, step: int, metrics: dict[str, float], artifacts: Iterable[tuple[Path, str | None]] = ()
    ) -> None:
        """Round ``step``'s metrics, unless the store holds them already, and its artifacts."""
        if self._logged is None:
            self._logged = set(self.tracker.logged_steps(self.step_key))
        if step not in self._logged:
            self.tracker.log_metrics(metrics, step=step)
            self._logged.add(step)
        for path, folder in artifacts:
            self.tracker.log_artifact(path, folder)

    def log_rounds(
        self,
        records: list[dict[str, Any]],
        logged_rounds: int,
        metrics_of: Callable[[dict[str, Any]], dict[str, float]],
        artifacts_of: Callable[[dict[str, Any]], list[tuple[Path, str | None]]] | None = None,
        saved: Callable[[int], None] | None = None,
    ) -> int:
        """Log ``records[logged_rounds:]``; after each, ``saved(rounds logged)`` (to write it into
        the state); return the new count of logged rounds."""
        for rec in records[logged_rounds:]:
            r = rec["round"]
            self.log_round(r, metrics_of(rec), artifacts_of(rec) if artifacts_of else ())
            logged_rounds = r + 1
            if saved is not None:
                saved(logged_rounds)
        return logged_rounds


def data_params(dataset: ALDataset) -> dict[str, Any]:
    """The pool and test split as used (after subsampling): MLflow params ``data.*``."""
    info = dataset.info
    return {
        "data.pool_size": info["pool_size"],
        "data.test_size": info["test_size"],
        "data.imbalance_ratio_measured": round(float(info["imbalance_ratio"]), 4),
        "data.pool_class_counts": ",".join(str(c) for c in info["pool_class_counts"]),
    }


def _round_metrics(record: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "round"}


class LoopRecorder(RunRecorder):
    """An AL run's record (:class:`~autoal.loop.ActiveLearningLoop`): tags, params and data sets
    at the start; each round's metrics and picks; at the end the AUBC, the figures and
    ``labeled.json`` written into the run folder and logged with the state and config, and the
    final model."""

    def __init__(self, tracker: Tracker, cfg: RunConfig, dataset: ALDataset, folder: RunFolder) -> None:
        super().__init__(tracker, "accuracy")
        self.cfg, self.dataset, self.folder = cfg, dataset, folder

    def start(self, state: RunState) -> None:
        """Open the run (its id saved in the state), tag it, log its params and data sets, and
        log the rounds the state holds but the store may have missed (a resumed run)."""
        cfg, ds, run_dir = self.cfg, self.dataset, self.folder.path
        # the run folder identifies the MLflow run until its id is saved (adopted after a crash in between)
        run_id = self.open(state.tracking_run_id, identity={"autoal.run_dir": str(run_dir)})
        if run_id != state.tracking_run_id:
            state.tracking_run_id = run_id
            state.logged_rounds = 0
            state.save(run_dir)
        self.tracker.set_tags(
            {
                "dataset": cfg.dataset.name,
                "strategy": cfg.strategy.name,
                "seed": str(cfg.al.seed),
                "git_sha": git_sha(),
                "autoal_version": __version__,
                "run_dir": str(run_dir),
                "threads": str(torch.get_num_threads()),
                # a trial's priority (Ray starts workers at nice 15 unless told otherwise)
                "process_niceness": str(os.nice(0)) if hasattr(os, "nice") else "",
                **({"setting": cfg.setting.name} if cfg.setting.name else {}),
                "long_tailed": str(float(cfg.dataset.imbalance_ratio) > 1).lower(),
                # MLflow caps tag values at 5000 characters
                "dataset_source": (ds.source or "not recorded by the loader")[:5000],
            }
        )
        self.tracker.log_params({**config_params(cfg.to_dict()), **data_params(ds)})
        warned = ds.info.get("class_warnings") or []
        if warned:  # test classes the pool lacks, or pool classes the test split lacks (autoal.data.checks)
            self.tracker.set_tags({"data_warnings": " | ".join(warned)[:5000]})
        ident = ds.identity()
        source = {
            "loader": cfg.dataset.name,
            "source": (ds.source or "")[:1000],
            "labels_sha256": ident["labels_sha256"],
        }
        for context, shape, digest in (
            ("training", ident["train_shape"], ident["train_sha256"]),
            ("evaluation", ident["test_shape"], ident["test_sha256"]),
        ):
            self.tracker.log_dataset(
                f"{ds.name}-{'pool' if context == 'training' else 'test'}",
                ds.fingerprint(),
                context,
                {**source, "shape": "x".join(map(str, shape)), "images_sha256": digest},
            )
        self.rounds(state)

    def rounds(self, state: RunState) -> None:
        """Log the completed rounds of ``state`` that it does not count as logged (metrics and the
        round's picks file), saving the count after each."""

        def saved(n: int) -> None:
            state.logged_rounds = n
            state.save(self.folder.path)

        def picks(rec: dict[str, Any]) -> list[tuple[Path, str | None]]:
            path = self.folder.file("rounds", f"round_{rec['round']:03d}.json")
            return [(path, "rounds")] if path.exists() else []

        self.log_rounds(state.history, state.logged_rounds, _round_metrics, picks, saved)

    def failed(self) -> None:
        self.tracker.end("FAILED")

    def finish(self, result: Any) -> None:
        """The end of a run (``result``: its :class:`~autoal.loop.RunResult`, whose ``figures``
        are filled in): the AUBC, the figures and ``labeled.json`` in the run folder, logged with
        the state and the config, the final model (``tracking.log_model``); the run ended."""
        cfg, ds, folder = self.cfg, self.dataset, self.folder
        labels, accs = result.curve
        last = len(result.history) - 1
        if last not in self.tracker.logged_steps("aubc"):  # a rerun of a finished run logs nothing twice
            self.tracker.log_metrics({"aubc": result.aubc, "final_accuracy": result.final_accuracy}, step=last)
        title = f"{cfg.dataset.name} · {cfg.strategy.name} · seed {cfg.al.seed}"
        result.figures["learning_curve"] = learning_curve(
            folder.file("learning_curve.png"), {cfg.strategy.name: (labels, accs, None)}, title=title
        )
        classes = ds.y_train.numpy()[result.labeled]
        counts = [
            np.bincount(classes[result.labeled_round <= r], minlength=ds.num_classes).tolist()
            for r in range(len(result.history))
        ]
        labeled_file = folder.file("labeled.json")
        atomic_write_json(
            labeled_file,
            {
                "labeled": result.labeled.tolist(),
                "labeled_round": result.labeled_round.tolist(),
                "labels": classes.tolist(),
                "classes": list(ds.classes),
                "class_counts_per_round": counts,
            },
        )
        result.figures["class_histogram"] = class_histogram(
            folder.file("class_histogram.png"), counts, ds.classes, title=f"labeled set · {title}"
        )
        if ds.kind == "images":  # features have no picture to show
            result.figures["picks"] = picks_figure(folder.file("picks.png"), ds, result, title=title)
        for p in (*result.figures.values(), labeled_file, folder.file(STATE_FILE), folder.file("config.yaml")):
            self.tracker.log_artifact(p)
        if cfg.tracking.log_model and result.model is not None:
            example = ds.eval_transform(ds.x_test[:2]).numpy()
            self.tracker.log_model(result.model, registered_name=cfg.tracking.register_model, input_example=example)
        self.tracker.end("FINISHED")


def picks_figure(path: Path, dataset: ALDataset, result: Any, per_round: int = 16, title: str = "") -> Path:
    """Thumbnails of each round's picks (round 0: the initial set), up to ``per_round`` a round,
    each row labeled with the round and the picks' classes (:meth:`ALDataset.display_images`;
    image data only: a ValueError for features). ``result``: a run's
    :class:`~autoal.loop.RunResult` (its ``labeled`` and ``labeled_round``)."""
    if dataset.kind != "images":
        raise ValueError(f"picks_figure: the data set {dataset.name!r} holds {dataset.kind}, not images")
    rows = []
    y = dataset.y_train.numpy()
    for r in range(int(result.labeled_round.max()) + 1 if len(result.labeled_round) else 0):
        idx = result.labeled[result.labeled_round == r][:per_round]
        if len(idx) == 0:
            continue
        label = f"round {r}" if r else "initial"
        rows.append(
            (f"{label}\n{' '.join(dataset.classes[int(c)][:3] for c in y[idx][:8])}", dataset.display_images(idx))
        )
    return image_grid(path, rows, per_row=per_round, title=f"picks · {title}")
