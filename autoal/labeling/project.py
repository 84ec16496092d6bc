"""A labeling project folder and its commands (export, import, status, discard): see
:mod:`autoal.labeling`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from autoal.api_marker import public_api
from autoal.config import RunConfig
from autoal.containment import check_tree, inside
from autoal.errors import DataError, LabelFileError, StateError, TrackingError
from autoal.labeling.config import STATE_NAME, ExportResult, ImportResult, LabelingConfig
from autoal.labeling.export import (
    batch_thumbnails,
    choose_batch,
    existing_pending,
    pending_record,
    restore_strategy,
    unlabeled_pool,
)
from autoal.labeling.files import IMAGE_LINK_FIX, batch_csv
from autoal.labeling.label_import import add_labels, validate_labels
from autoal.labeling.pool import new_state, pool_dataset, rescan
from autoal.labeling.state import round_metrics, state_problem
from autoal.learner import Learner
from autoal.paths import user_path
from autoal.recorder import RunRecorder, tracker_for
from autoal.state import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    checkpoint_path,
    lock_folder,
    prune_checkpoints,
)
from autoal.strategies import build_strategy
from autoal.tracking import artifacts_beside_store, check_tracking_uri, config_params

#: what to do when a path of a labeling project leads outside it (autoal.containment)
PROJECT_FIX = (
    "replace the link with a real folder or file (a project received from someone else: restore it from a "
    "backup, or from the MLflow run's labels.json artifact)"
)
#: what to do about a pool entry of labels.json that leads outside the images folder
POOL_FIX = (
    f"{IMAGE_LINK_FIX}; an entry edited by hand (or in a received project): restore labels.json from a backup "
    "or from the MLflow run's labels.json artifact (sample ids are positions in the pool: never delete an "
    "entry)"
)


@public_api
class LabelingProject:
    """A labeling project folder (see :mod:`autoal.labeling`). ``cfg`` is the run config whose
    model, train, al (``query_size``, ``seed``, ``mc_samples``), strategy, scoring, runtime and
    tracking sections apply; ``al.initial_size`` and ``al.rounds`` are not used."""

    def __init__(self, cfg: RunConfig, lcfg: LabelingConfig) -> None:
        cfg.validate()
        lcfg.validate()
        build_strategy(cfg.strategy.name, **cfg.strategy.params)  # a bad name or parameter: refused before any command
        self.cfg = cfg
        self.lcfg = lcfg
        self.dir = user_path(lcfg.project).resolve()
        self.state_file = self.dir / STATE_NAME

    def batch_csv(self, round_: int) -> Path:
        """The CSV of round ``round_``'s batch: always ``<project>/batches/round_NNN.csv`` (the path
        stored in labels.json is informational; a copied or edited state cannot send a write
        elsewhere)."""
        return self._in_project("batches", f"round_{int(round_):03d}.csv")

    def _in_project(self, *parts: str) -> Path:
        """``<project>/<parts>``, checked to lie inside the project folder once links are followed
        (:func:`~autoal.containment.inside`); one that leads outside is a StateError."""
        path = self.dir.joinpath(*parts)
        inside(self.dir, path, what="project path", fix=PROJECT_FIX)
        return path

    def _check_pool(self, st: dict[str, Any]) -> None:
        """Every pool entry of ``st`` names a file inside its images folder once links and ``..``
        are resolved (images are read, listed in the batch CSV and drawn as thumbnails from
        there): a StateError naming the first that does not, before anything is written."""
        root = Path(st["images"])
        for f in st["pool"]:
            inside(root, f, what=f"{self.state_file}: the pool entry {f!r},", fix=POOL_FIX)

    def _check_images_root(self, st: dict[str, Any]) -> None:
        """The images folder stored at creation (absolute) still exists: else a DataError naming
        the project file and the stored path (a project moved with its images, a mount that
        changed), before anything is written."""
        root = Path(st["images"])
        if not root.is_absolute() or not root.is_dir():
            raise DataError(
                f"{self.state_file}: the project's images folder {st['images']} "
                f"{'is not an absolute path' if not root.is_absolute() else 'does not exist'} (moved, "
                "renamed or not mounted?); put the images back at that path (a symbolic link to their "
                "new place will do); nothing was changed"
            )

    # -- state ------------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any] | None:
        inside(self.dir, self.state_file, what="labeling state", fix=PROJECT_FIX)
        if not self.state_file.exists():
            return None
        import json

        try:
            st = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            raise StateError(
                f"{self.state_file}: labeling state is unreadable ({e}); restore it from a backup or "
                "from the MLflow run's labels.json artifact"
            ) from e
        problem = state_problem(st, self.dir)
        if problem:
            raise StateError(f"{self.state_file}: labeling state is inconsistent: {problem}")
        return st

    def _commit(self, st: dict[str, Any]) -> None:
        problem = state_problem(st, self.dir)
        if problem:  # never write a state that load_state would refuse
            raise StateError(f"{self.state_file}: refusing to write an inconsistent state: {problem}")
        inside(self.dir, self.state_file, what="labeling state", fix=PROJECT_FIX)
        atomic_write_json(self.state_file, st)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One command at a time per project (an advisory lock, released when the process dies),
        the first export included: the folder is created first, so that two concurrent first
        exports cannot both write a batch (the second is refused)."""
        created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = lock_folder(self.dir)
        except BaseException:
            if created:
                _remove_if_empty(self.dir)
            raise
        try:
            # a link in the project that leads outside it (checkpoints/ -> elsewhere): refused before
            # any file is read, written or deleted (autoal.containment)
            check_tree(self.dir, what="project entry", fix=PROJECT_FIX)
            yield
        except BaseException:
            if created:  # a refused first export leaves no empty project behind
                _remove_if_empty(self.dir)
            raise
        finally:
            if fd is not None:
                os.close(fd)

    def status(self) -> dict[str, Any]:
        st = self.load_state()
        if st is None:
            raise StateError(f"{self.dir}: no labeling project here yet ({STATE_NAME} missing); run export first")
        counts = {c: 0 for c in st["classes"]}
        for e in st["labeled"]:
            counts[e["label"]] += 1
        return {
            "project": str(self.dir),
            "images": st["images"],
            "classes": st["classes"],
            "pool": len(st["pool"]),
            "labeled": len(st["labeled"]),
            "per_class": counts,
            "next_round": st["next_round"],
            "pending": None
            if st["pending"] is None
            else {
                "round": st["pending"]["round"],
                "csv": str(self.batch_csv(st["pending"]["round"])),
                "size": len(st["pending"]["sample_ids"]),
            },
        }

    # -- export -----------------------------------------------------------------------------
    def export_batch(self) -> ExportResult:
        """Train on L, score U, write the next batch to label (see the module docstring)."""
        cfg = self.cfg
        strategy = build_strategy(cfg.strategy.name, **cfg.strategy.params)  # a bad name fails before any work
        if cfg.tracking.enabled:
            check_tracking_uri(cfg.tracking.uri)
        with self._lock():
            st = self._state_to_export()
            if st["pending"] is not None:
                # the CSV path is derived, never the stored one: batch files stay in the project
                return existing_pending(st, self.batch_csv(st["pending"]["round"]))
            return self._export_round(strategy, st)

    def _state_to_export(self) -> dict[str, Any]:
        """The state to export from: a new project's, the stored one when a batch waits for
        labels, else the stored one with the images added since (:mod:`autoal.labeling.pool`)."""
        st = self.load_state()
        if st is None:
            return new_state(self.lcfg, self.dir)
        self._check_images_root(st)
        self._check_pool(st)
        return st if st["pending"] is not None else rescan(st, self.dir, self.state_file)

    def _export_round(self, strategy: Any, st: dict[str, Any]) -> ExportResult:
        """Choose the next round's batch (:mod:`autoal.labeling.export`) and write it: strategy
        state and CSV first, labels.json last (the commit point), then the MLflow record."""
        cfg = self.cfg
        r = int(st["next_round"])
        labeled, unlabeled = unlabeled_pool(st, int(cfg.al.query_size))
        ds = pool_dataset(st, self.lcfg)
        learner = Learner.from_config(cfg, ds)
        learner.check_needs(strategy)
        restore_strategy(strategy, checkpoint_path(self.dir, "strategy", r, fix=PROJECT_FIX))
        batch = choose_batch(cfg, strategy, learner, st["classes"], labeled, unlabeled, r)
        rel = [st["pool"][i] for i in batch.ids]  # the CSV's file_path: relative to the images folder
        csv_path = self.batch_csv(r)
        pending = pending_record(r, csv_path, batch, strategy.name)
        sd = strategy.state_dict()
        if sd:
            atomic_torch_save(checkpoint_path(self.dir, "strategy", r + 1, fix=PROJECT_FIX), sd)
        atomic_write_bytes(csv_path, batch_csv(batch.ids, rel, batch.scores))
        thumbs = batch_thumbnails(
            self._in_project("batches", csv_path.with_suffix(".png").name), ds, batch.ids, pending["predicted"], r
        )
        st["pending"] = pending
        self._commit(st)
        prune_checkpoints(self.dir, {r, r + 1}, fix=PROJECT_FIX)
        err = self._sync_tracking(st)
        return ExportResult(
            round=r,
            csv=csv_path,
            sample_ids=batch.ids,
            files=[str(Path(st["images"]) / f) for f in rel],
            scores=[float(s) for s in batch.scores],
            tracking_error=err,
            thumbnails=thumbs,
        )

    def discard_pending(self) -> int | None:
        """Drop the batch waiting for labels (its CSV stays); return its round, or None. A folder
        without a project is a StateError (nothing is created)."""
        if not self.state_file.exists():
            raise StateError(f"{self.dir}: no labeling project here yet ({STATE_NAME} missing); run export first")
        with self._lock():
            st = self.load_state()
            if st is None or st["pending"] is None:
                return None
            r = st["pending"]["round"]
            st["pending"] = None
            self._commit(st)
            return r

    # -- import -----------------------------------------------------------------------------
    def import_batch(self, csv_file: str | Path, allow_partial: bool | None = None) -> ImportResult:
        """Validate a filled-in CSV against the waiting batch and add its labels to L
        (:mod:`autoal.labeling.label_import`)."""
        allow_partial = self.lcfg.allow_partial if allow_partial is None else allow_partial
        csv_path = user_path(csv_file).resolve()
        if not csv_path.is_file():
            raise LabelFileError(f"{csv_path}: label file not found")
        if self.cfg.tracking.enabled:
            check_tracking_uri(self.cfg.tracking.uri)
        with self._lock():
            st = self.load_state()
            if st is None:
                raise LabelFileError(
                    f"{csv_path}: project {self.dir} has no labeling state ({STATE_NAME}); export a batch first"
                )
            self._check_images_root(st)
            pending = st["pending"]
            if pending is None:
                raise LabelFileError(
                    f"{csv_path}: project {self.dir} has no exported batch waiting for labels "
                    f"(next round {st['next_round']}); export a batch first"
                )
            raw = csv_path.read_bytes()
            rows = validate_labels(csv_path, raw, st, allow_partial)
            r = int(pending["round"])
            added, agreement = add_labels(st, rows, csv_path)
            atomic_write_bytes(self._in_project("batches", f"round_{r:03d}.imported.csv"), raw)
            self._commit(st)
            err = self._sync_tracking(st)
            return ImportResult(
                round=r,
                added=len(added),
                returned_to_pool=len(pending["sample_ids"]) - len(added),
                labeled_total=len(st["labeled"]),
                agreement=agreement,
                tracking_error=err,
            )

    # -- MLflow ---------------------------------------------------------------------------------
    def _sync_tracking(self, st: dict[str, Any]) -> str | None:
        """Log every round the state holds and the store lacks (:class:`~autoal.recorder.RunRecorder`,
        as the loop's rounds); return an error text or None."""
        cfg = self.cfg
        if not cfg.tracking.enabled:
            return None
        try:
            # a new experiment keeps its artifacts beside the store, not in this command's working folder
            recorder = RunRecorder(
                tracker_for(cfg, run_name=self.dir.name, artifact_location=artifacts_beside_store(cfg.tracking.uri)),
                "labeled",
            )
            run_id = recorder.open(st.get("tracking_run_id"))
            if run_id != st.get("tracking_run_id"):
                st["tracking_run_id"], st["logged_rounds"] = run_id, 0
                self._commit(st)
                self._describe_run(recorder.tracker, st)
            before = st.get("logged_rounds", 0)
            st["logged_rounds"] = recorder.log_rounds(st["rounds"], before, lambda rec: round_metrics(st, rec))
            if st["logged_rounds"] != before:
                self._commit(st)
                recorder.tracker.log_artifact(self.state_file)
            return None
        except Exception as e:  # noqa: BLE001 - the labels are saved; tracking is retried
            if isinstance(e, TrackingError):
                return f"{e}; the labels are saved, the next command retries the logging"
            return f"MLflow logging failed ({type(e).__name__}: {e}); the labels are saved, the next command retries"

    def _describe_run(self, tracker: Any, st: dict[str, Any]) -> None:
        """A new tracking run's tags and params: the project, its images, the config and classes."""
        cfg = self.cfg
        tracker.set_tags(
            {
                "labeling.project": str(self.dir),
                "labeling.images": st["images"],
                "strategy": cfg.strategy.name,
                "mode": "human-labeling",
            }
        )
        params = config_params({k: v for k, v in cfg.to_dict().items() if k not in ("dataset", "runtime")})
        params.update({f"labeling.{k}": v for k, v in vars(self.lcfg).items()})
        params["labeling.classes"] = ",".join(st["classes"])
        tracker.log_params(params)


# -- helpers ------------------------------------------------------------------------------------


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if nothing but lock files are in it (a first command that failed)."""
    try:
        if all(p.name.startswith(".") for p in folder.iterdir()):
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()
    except OSError:
        pass
