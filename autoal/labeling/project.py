"""A labeling project folder and its commands (export, import, status, discard): see
:mod:`autoal.labeling`."""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from autoal.config import RunConfig
from autoal.containment import check_tree, inside
from autoal.data.base import ALDataset
from autoal.data.files import image_extensions, load_image_files
from autoal.errors import ConfigError, DataError, LabelFileError, StateError, TrackingError
from autoal.labeling.config import ExportResult, ImportResult, LabelingConfig, MAX_LISTED, STATE_NAME, STATE_VERSION
from autoal.labeling.state import round_metrics, state_problem
from autoal.labeling.files import IMAGE_LINK_FIX, Problems, Row, batch_csv, read_csv, same_file, scan_images
from autoal.learner import Learner
from autoal.progress import progress_bar
from autoal.query_step import query_step
from autoal.seeding import derive_seed
from autoal.recorder import RunRecorder, tracker_for
from autoal.state import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    checkpoint_path,
    load_checkpoint,
    lock_folder,
    prune_checkpoints,
)
from autoal.strategies import build_strategy
from autoal.strategies.base import ScoreStrategy
from autoal.tracking import artifacts_beside_store, check_tracking_uri, config_params
from autoal.plots import captioned_grid
from autoal.paths import user_path
from autoal.api_marker import public_api

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
            st = self.load_state()
            if st is not None:
                self._check_images_root(st)
                self._check_pool(st)
            if st is not None and st["pending"] is not None:
                return self._existing_pending(st)
            if st is None:
                st = self._new_state()
            else:
                st = self._rescan(st)
            images_root = Path(st["images"])
            r = int(st["next_round"])
            labeled = np.asarray([e["sample_id"] for e in st["labeled"]], dtype=np.int64)
            unlabeled = np.setdiff1d(np.arange(len(st["pool"])), labeled)
            b = int(cfg.al.query_size)
            if b > len(unlabeled):
                raise ConfigError(
                    f"al.query_size: {b} is larger than the unlabeled pool of {images_root} "
                    f"({len(unlabeled)} image(s) left to label)"
                )
            ds = self._dataset(st)
            learner = Learner.from_config(cfg, ds)
            learner.check_needs(strategy)
            strat_ckpt = checkpoint_path(self.dir, "strategy", r, fix=PROJECT_FIX)
            if strat_ckpt.exists():
                strategy.load_state_dict(
                    load_checkpoint(  # weights_only: a received project never runs code
                        strat_ckpt,
                        "cpu",
                        hint="move the file away (the next export starts the strategy's own state "
                        "afresh; the labels are kept)",
                    )
                )

            torch.set_num_threads(cfg.runtime.threads())
            seed = int(cfg.al.seed)
            train_seed = derive_seed(seed, r, "train")
            model = learner.new_model(train_seed)
            # progress as in the loop: bars on a terminal, silent in a log (autoal.progress)
            with progress_bar(
                cfg.train.epochs_for(len(labeled)), f"round {r} train", enabled=not cfg.runtime.quiet, unit="epoch"
            ) as bar:
                losses = learner.train(
                    model, labeled, train_seed, progress=lambda e, loss: bar.update(1, note=f"loss {loss:.3f}")
                )
            q = query_step(
                strategy, learner, model, labeled, unlabeled, b, seed=seed, round_=r, progress=not cfg.runtime.quiet
            )
            selected, cache = q.selected, q.cache
            scores, order = _batch_scores(strategy, cache, unlabeled, selected)
            selected, scores = selected[order], scores[order]
            pos = np.searchsorted(unlabeled, selected)
            predicted = cache.probs[torch.as_tensor(pos, device=cache.probs.device)].argmax(1).cpu().tolist()

            ids = [int(i) for i in selected]
            files = [str(images_root / st["pool"][i]) for i in ids]
            rel = [st["pool"][i] for i in ids]  # the CSV's file_path: relative to the images folder
            csv_path = self.batch_csv(r)
            pending = {
                "round": r,
                "csv": str(csv_path),
                "sample_ids": ids,
                "scores": [float(s) for s in scores],
                "predicted": [st["classes"][p] for p in predicted],
                "train_loss": float(losses[-1]) if losses else None,
                "strategy": strategy.name,
            }
            # writes: strategy state and CSV first, labels.json last (the commit point)
            sd = strategy.state_dict()
            if sd:
                atomic_torch_save(checkpoint_path(self.dir, "strategy", r + 1, fix=PROJECT_FIX), sd)
            atomic_write_bytes(csv_path, batch_csv(ids, rel, scores))
            thumbs = batch_thumbnails(
                self._in_project("batches", csv_path.with_suffix(".png").name), ds, ids, pending["predicted"], r
            )
            st["pending"] = pending
            self._commit(st)
            prune_checkpoints(self.dir, {r, r + 1}, fix=PROJECT_FIX)
            err = self._sync_tracking(st)
            return ExportResult(
                round=r,
                csv=csv_path,
                sample_ids=ids,
                files=files,
                scores=[float(s) for s in scores],
                tracking_error=err,
                thumbnails=thumbs,
            )

    def _existing_pending(self, st: dict[str, Any]) -> ExportResult:
        p = st["pending"]
        csv_path = self.batch_csv(p["round"])  # derived, never the stored path: batch files stay in the project
        files = [str(Path(st["images"]) / st["pool"][i]) for i in p["sample_ids"]]
        if not csv_path.exists():
            atomic_write_bytes(
                csv_path, batch_csv(p["sample_ids"], [st["pool"][i] for i in p["sample_ids"]], p["scores"])
            )
        return ExportResult(
            round=p["round"],
            csv=csv_path,
            sample_ids=list(p["sample_ids"]),
            files=files,
            scores=list(p["scores"]),
            already_pending=True,
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
        """Validate a filled-in CSV against the waiting batch and add its labels to L."""
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
            rows = self._validate(csv_path, raw, st, allow_partial)
            r = int(pending["round"])
            by_id = {e.sample_id: e for e in rows}
            predicted = dict(zip(pending["sample_ids"], pending["predicted"]))
            added = [
                {"sample_id": i, "file": st["pool"][i], "label": by_id[i].label, "round": r}
                for i in pending["sample_ids"]
                if i in by_id
            ]  # batch order = the score order
            agreement = float(np.mean([predicted[e["sample_id"]] == e["label"] for e in added])) if added else None
            st["labeled"].extend(added)
            st["rounds"].append(
                {
                    "round": r,
                    "labeled": len(st["labeled"]),
                    "added": len(added),
                    "returned_to_pool": len(pending["sample_ids"]) - len(added),
                    "batch_agreement": agreement,
                    "train_loss": pending.get("train_loss"),
                    "strategy": pending.get("strategy"),
                    "csv": str(csv_path),
                }
            )
            st["pending"] = None
            st["next_round"] = r + 1
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

    def _validate(self, csv_path: Path, raw: bytes, st: dict[str, Any], allow_partial: bool) -> list[Row]:
        pending = st["pending"]
        batch = list(pending["sample_ids"])
        in_batch = set(batch)
        labeled_round = {e["sample_id"]: e["round"] for e in st["labeled"]}
        classes = list(st["classes"])
        class_set = set(classes)
        exported_path = {i: st["pool"][i] for i in batch}  # relative to the images folder
        probs = Problems(csv_path)
        reader, header = read_csv(csv_path, raw, required=("sample_id", "label"))
        rows: list[Row] = []
        first_line: dict[int, int] = {}
        for rec in reader:
            line = reader.line_num
            if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
                continue  # blank line
            if None in rec:
                probs.add(line, "sample_id", f"the row has more fields than the header ({len(header)} columns)")
                continue
            sid_txt = (rec.get("sample_id") or "").strip()
            try:
                sid = int(sid_txt)
            except ValueError:
                probs.add(line, "sample_id", f"{sid_txt!r} is not an integer sample id" if sid_txt else "empty")
                continue
            if sid in first_line:
                probs.add(line, "sample_id", f"{sid} appears again (first on row {first_line[sid]})")
                continue
            first_line[sid] = line
            if sid not in in_batch:
                if sid in labeled_round:
                    probs.add(
                        line,
                        "sample_id",
                        f"{sid} was already labeled in round {labeled_round[sid]}; it is not "
                        f"in the exported batch of round {pending['round']}",
                    )
                else:
                    probs.add(
                        line,
                        "sample_id",
                        f"{sid} is unknown: not in the exported batch of round {pending['round']} ({pending['csv']})",
                    )
                continue
            fp = (rec.get("file_path") or "").strip()
            if fp and not same_file(fp, exported_path[sid], Path(st["images"])):
                probs.add(
                    line,
                    "file_path",
                    f"{fp!r} is not the file of sample {sid} ({exported_path[sid]}); were rows edited out of order?",
                )
                continue
            label = (rec.get("label") or "").strip()
            if not label:
                if not allow_partial:
                    probs.add(
                        line,
                        "label",
                        f"empty; fill in one of: {', '.join(classes)} (or import with "
                        "allow_partial, --allow-partial on the command line, to label the "
                        "rest later)",
                    )
                continue
            if label not in class_set:
                hint = [c for c in classes if c.lower() == label.lower()]
                probs.add(
                    line,
                    "label",
                    f"{label!r} is not a known class"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; known: {', '.join(classes)}",
                )
                continue
            rows.append(Row(line, sid, label))
        missing = [i for i in batch if i not in first_line]
        if missing and not allow_partial:
            shown = ", ".join(map(str, missing[:MAX_LISTED])) + (" ..." if len(missing) > MAX_LISTED else "")
            probs.add(
                None,
                "sample_id",
                f"{len(missing)} sample(s) of the exported batch of round "
                f"{pending['round']} have no row: ids {shown} (import with allow_partial to "
                "label them later)",
            )
        if not probs.items and not rows:
            probs.add(None, "label", "the file holds no labels")
        probs.raise_if_any()
        return rows

    # -- project creation and the pool ----------------------------------------------------------
    def _new_state(self) -> dict[str, Any]:
        lc = self.lcfg
        if not lc.images:
            raise ConfigError(
                f"labeling.images: required to create the project {self.dir} (the folder of images to label)"
            )
        root = user_path(lc.images).resolve()
        if not root.is_dir():
            raise DataError(f"labeling.images: folder {root} does not exist")
        exts = image_extensions()
        if lc.seed_csv:
            pool = scan_images(root, exts, exclude=self.dir, root=root)
            seed = self._read_seed_csv(user_path(lc.seed_csv).resolve(), root, set(pool))
            seed_classes = sorted({lab for _, lab in seed})
        else:
            lab_dir, unl_dir = root / "labeled", root / "unlabeled"
            if not lab_dir.is_dir() or not unl_dir.is_dir():
                raise DataError(
                    f"labeling.images: {root} needs sub-folders labeled/<class>/ (the seed) and unlabeled/ "
                    "(the images to label), or set labeling.seed_csv to a CSV of file,label"
                )
            seed = []
            seed_classes = []
            for d in sorted(p for p in lab_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                files = scan_images(d, exts, exclude=self.dir, root=root)
                if not files:
                    raise DataError(f"labeling.images: class folder {d} holds no image files")
                seed_classes.append(d.name)
                seed += [(str((d / f).relative_to(root).as_posix()), d.name) for f in files]
            pool = [s for s, _ in seed] + scan_images(unl_dir, exts, exclude=self.dir, prefix="unlabeled", root=root)
        classes = list(lc.classes) if lc.classes else seed_classes
        unknown = sorted(set(seed_classes) - set(classes))
        if unknown:
            raise ConfigError(
                f"labeling.classes: the seed has class(es) {unknown} that are not in labeling.classes ({classes})"
            )
        if len(classes) < 2:
            raise DataError(f"labeling.images: need at least 2 classes; the seed of {root} has {classes}")
        if len(seed) < 2:
            raise DataError(f"labeling.images: need at least 2 seed labels in {root}; found {len(seed)}")
        index = {f: i for i, f in enumerate(pool)}
        labeled = [{"sample_id": index[f], "file": f, "label": lab, "round": 0} for f, lab in seed]
        return {
            "version": STATE_VERSION,
            "images": str(root),
            "layout": "csv" if lc.seed_csv else "folders",
            "classes": classes,
            "pool": pool,
            "labeled": labeled,
            "next_round": 1,
            "pending": None,
            "rounds": [
                {
                    "round": 0,
                    "labeled": len(labeled),
                    "added": len(labeled),
                    "returned_to_pool": 0,
                    "batch_agreement": None,
                    "train_loss": None,
                    "strategy": None,
                    "csv": lc.seed_csv,
                }
            ],
            "tracking_run_id": None,
            "logged_rounds": 0,
        }

    def _read_seed_csv(self, path: Path, root: Path, pool: set[str]) -> list[tuple[str, str]]:
        if not path.is_file():
            raise LabelFileError(f"{path}: seed label file not found (labeling.seed_csv)")
        probs = Problems(path)
        reader, _ = read_csv(path, path.read_bytes(), required=("file", "label"))
        out: list[tuple[str, str]] = []
        seen: dict[str, int] = {}
        classes = set(self.lcfg.classes) if self.lcfg.classes else None
        for rec in reader:
            line = reader.line_num
            if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
                continue
            f = (rec.get("file") or "").strip()
            lab = (rec.get("label") or "").strip()
            p = Path(f)
            rel = (
                p.resolve().relative_to(root).as_posix()
                if p.is_absolute() and p.resolve().is_relative_to(root)
                else p.as_posix()
            )
            if not f:
                probs.add(line, "file", "empty")
            elif rel not in pool:
                probs.add(line, "file", f"{f!r} is not an image under {root}")
            elif rel in seen:
                probs.add(line, "file", f"{f!r} appears again (first on row {seen[rel]})")
            elif not lab:
                probs.add(line, "label", "empty")
            elif classes is not None and lab not in classes:
                probs.add(line, "label", f"{lab!r} is not in labeling.classes ({', '.join(self.lcfg.classes)})")
            else:
                seen[rel] = line
                out.append((rel, lab))
        probs.raise_if_any(" in the seed labels")
        return out

    def _rescan(self, st: dict[str, Any]) -> dict[str, Any]:
        """Append images added since the last export; refuse when a known image is gone."""
        root = Path(st["images"])
        exts = image_extensions()
        known = set(st["pool"])
        if st.get("layout") == "csv":
            found = scan_images(root, exts, exclude=self.dir, root=root)
        else:
            found = scan_images(root / "unlabeled", exts, exclude=self.dir, prefix="unlabeled", root=root)
        missing = [f for f in st["pool"] if not (root / f).is_file()]
        if missing:
            raise DataError(
                f"labeling.images: {len(missing)} image(s) of the project are gone, e.g. "
                f"{root / missing[0]}; "
                f"restore them (sample ids are positions in {self.state_file})"
            )
        st = copy.deepcopy(st)
        st["pool"] += [f for f in found if f not in known]
        return st

    def _dataset(self, st: dict[str, Any]) -> ALDataset:
        root = Path(st["images"])
        paths = [root / f for f in st["pool"]]
        x = load_image_files(paths, self.lcfg.image_size, self.lcfg.channels, "labeling")
        cls_idx = {c: i for i, c in enumerate(st["classes"])}
        y = np.zeros(len(paths), dtype=np.int64)  # unlabeled images: placeholder 0, never read
        for e in st["labeled"]:
            y[e["sample_id"]] = cls_idx[e["label"]]
        c, s = x.shape[1], x.shape[2]
        return ALDataset(
            name=f"labeling:{root.name}",
            x_train=torch.from_numpy(x),
            y_train=torch.from_numpy(y),
            x_test=torch.zeros((0, c, s, s), dtype=torch.uint8),
            y_test=torch.zeros(0, dtype=torch.int64),
            num_classes=len(st["classes"]),
            classes=list(st["classes"]),
            augmentation=self.lcfg.augmentation,
            paths=[str(p) for p in paths],
            source=f"labeling project images in {root}",
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


def _batch_scores(
    strategy: Any, cache: Any, unlabeled: np.ndarray, selected: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(scores of the selected samples, the order to write them in: most informative first).
    A :class:`~autoal.strategies.base.ScoreStrategy` gives its score; others their 1-based rank."""
    if isinstance(strategy, ScoreStrategy):
        s = strategy.compute_score(cache).float().cpu().numpy()
        vals = s[np.searchsorted(unlabeled, selected)]
        order = np.argsort(-vals, kind="stable")
        return vals.astype(float), order
    return np.arange(1, len(selected) + 1, dtype=float), np.arange(len(selected))


def batch_thumbnails(path: Path, ds: Any, ids: list[int], predicted: list[str], round_: int, per_row: int = 10) -> Path:
    """A thumbnail sheet of a batch to label, in the CSV's order (rows of ``per_row``, each row
    named by its CSV rows), beside the CSV: every thumbnail captioned with its ``sample_id`` (the
    CSV's id column) and the model's guess, so that a person can label from the sheet."""
    captions = [f"id {i}\nguess {str(p)[:10]}" for i, p in zip(ids, predicted)]
    rows = [f"rows {s + 1}-{min(s + per_row, len(ids))}" for s in range(0, len(ids), per_row)]
    return captioned_grid(
        path,
        [ds.x_train[i].numpy() for i in ids],
        captions,
        per_row=per_row,
        title=f"round {round_}: the batch to label (caption = sample_id)",
        row_labels=rows,
    )


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if nothing but lock files are in it (a first command that failed)."""
    try:
        if all(p.name.startswith(".") for p in folder.iterdir()):
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()
    except OSError:
        pass
