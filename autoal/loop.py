"""The pool-based active-learning loop (DESIGN.md §3.1, §3.7, §3.8).

Round r = 0..R: train the task model on L (fresh weights by default), evaluate on the test
split, and — unless r = R — compute the shared cache over U once, ask the strategy for b
indices, move them from U to L, and write the run's state atomically. Every round draws its
randomness from generators derived from (seed, round), so the same seed gives the same picks,
and a resumed run continues exactly where an uninterrupted one would be."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from autoal.version import __version__
from autoal.cache import class_cache_bytes
from autoal.config import RunConfig
from autoal.containment import check_tree, inside
from autoal.data import ALDataset, load_dataset
from autoal.data.checks import check_pool_classes
from autoal.data.registry import LOADERS
from autoal.errors import ConfigError, DataError, StateError, TrainingDiverged
from autoal.faults import strike
from autoal.learner import Learner
from autoal.memory import available_memory_bytes, human_bytes
from autoal.metrics import aubc
from autoal.models import Backbone, ModuleAdapter
from autoal.plots import class_histogram, image_grid, learning_curve
from autoal.progress import progress_bar
from autoal.query_step import query_step
from autoal.seeding import derive_seed, round_rng, seed_torch
from autoal.state import (RUN_FOLDER_FIX, RunState, STATE_FILE, STRATEGY_FILE, atomic_torch_save, atomic_write_bytes, atomic_write_json,
                          checkpoint_path, load_checkpoint, lock_folder, prune_checkpoints, remove_stale_temps)
from autoal.strategies import Strategy, build_strategy
from autoal.extras import require
from autoal.tracking import TRACKING_OFF, MLflowTracker, NullTracker, check_tracking_uri, config_params, git_sha
from autoal.writable import check_writable_folder, space_for

RoundCallback = Callable[[dict[str, Any]], None]
#: the final round's task model (state dict) in the run folder; logged to MLflow as the run's model
FINAL_MODEL_FILE = "final_model.pt"


@dataclass
class RunResult:
    history: list[dict[str, Any]]
    labeled: np.ndarray
    labeled_round: np.ndarray
    aubc: float
    final_accuracy: float
    run_dir: Path
    tracking_run_id: str | None = None
    #: the figures written into the run folder (learning curve, class histogram, picks)
    figures: dict[str, Path] = field(default_factory=dict)
    #: the final round's trained task model, on the CPU in eval mode: one's own module (its class
    #: and keys, without the adapter's MC dropout; :meth:`ModuleAdapter.user_module`) or the
    #: built-in backbone; None when the run has no final model file
    model: torch.nn.Module | None = None

    @property
    def curve(self) -> tuple[list[int], list[float]]:
        return [h["labels"] for h in self.history], [h["accuracy"] for h in self.history]


def initial_labeled_set(y: np.ndarray, size: int, balanced: bool, rng: np.random.Generator) -> np.ndarray:
    """A seeded random initial set; with ``balanced``, as equal a share per class as the pool
    allows (round-robin over classes in a seeded order)."""
    n = len(y)
    if not balanced:
        return np.sort(rng.choice(n, size=size, replace=False))
    classes = np.unique(y)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    picks: list[int] = []
    depth = 0
    while len(picks) < size:
        for c in rng.permutation(len(classes)):
            if depth < len(per_class[c]) and len(picks) < size:
                picks.append(int(per_class[c][depth]))
        depth += 1
    return np.sort(np.asarray(picks, dtype=np.int64))


def data_params(dataset: ALDataset) -> dict[str, Any]:
    """The pool and test split as used (after subsampling): MLflow params ``data.*``."""
    info = dataset.info
    return {"data.pool_size": info["pool_size"], "data.test_size": info["test_size"],
            "data.imbalance_ratio_measured": round(float(info["imbalance_ratio"]), 4),
            "data.pool_class_counts": ",".join(str(c) for c in info["pool_class_counts"])}


def run_fingerprint(cfg: RunConfig, dataset: ALDataset, model: ModuleAdapter | None = None,
                    legacy: bool = False) -> str:
    """What a run computes: everything in the config that changes the queries, the data's
    identity (:meth:`ALDataset.identity`) and, for a user's model, the adapter's
    (:meth:`ModuleAdapter.identity`), so that the same config on other data or another model is
    another run. ``legacy``: with the data's sampled identity of run folders written before
    full-content digests (:meth:`ALDataset.legacy_identity`), to find and resume them."""
    data = dataset.legacy_fingerprint() if legacy else dataset.fingerprint()
    text = f"{cfg.fingerprint()}:{data}"
    if model is not None:
        text += ":" + json.dumps(model.identity(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_dir_for(cfg: RunConfig, dataset: ALDataset | None = None, model: ModuleAdapter | None = None) -> Path:
    """Deterministic run folder, so that the same command on the same data and model finds its
    state again (``dataset`` defaults to the one the config names, loaded). When that folder does
    not exist but one named by the legacy (sampled) data identity holds a state (a run folder
    written before full-content digests) and resume is on, that folder: it resumes."""
    dataset = dataset if dataset is not None else load_dataset(cfg.dataset)
    name = cfg.tracking.run_name or f"{dataset.name}-{cfg.strategy.name}-seed{cfg.al.seed}"
    root = Path(cfg.runtime.output_dir).expanduser().resolve()
    path = root / f"{name}-{run_fingerprint(cfg, dataset, model)}"
    if cfg.runtime.resume and not path.exists():
        legacy = root / f"{name}-{run_fingerprint(cfg, dataset, model, legacy=True)}"
        if (legacy / STATE_FILE).is_file():
            return legacy
    return path


def _identity_change(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """The data set named as saved and as now, and the identity fields that differ."""
    diff = [f"{k} {saved.get(k)} -> {now.get(k)}" for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    return "another data set (saved: {} {} labels {}; this run: {} {} labels {}; differing: {})".format(
        saved.get("name"), saved.get("train_shape"), saved.get("labels_sha256"), now.get("name"),
        now.get("train_shape"), now.get("labels_sha256"), "; ".join(diff))


class ActiveLearningLoop:
    """One AL run. ``dataset``, ``strategy``, ``tracker`` and ``scorer`` default to what the
    config names; pass them to reuse objects (tests, sweeps). ``model``: a user's task model (any
    ``nn.Module`` with a linear head, or a :class:`~autoal.models.ModuleAdapter`) in place of
    ``model.name``; each round trains a fresh copy."""

    def __init__(self, cfg: RunConfig, *, dataset: ALDataset | None = None, strategy: Strategy | None = None,
                 tracker: Any = None, scorer: Any = None, callbacks: list[RoundCallback] | None = None,
                 run_dir: str | Path | None = None, model: torch.nn.Module | None = None) -> None:
        # the config, a folder that cannot be written (a read-only working directory), an unusable
        # tracking store: refused here, before the data is read
        check_run(cfg, run_dir, tracking=tracker is None, names=False)  # the names: built or loaded just below
        self.cfg = cfg
        self.strategy = strategy or build_strategy(cfg.strategy.name, **cfg.strategy.params)
        self.dataset = dataset or load_dataset(cfg.dataset)
        # a data set object built by the caller has not met the loaders' checks: one class cannot be queried
        check_pool_classes(self.dataset.y_train, self.dataset.num_classes,
                           f"{self.dataset.name} ({self.dataset.source})" if self.dataset.source else self.dataset.name,
                           self.dataset.classes)
        cfg.al.check_pool(len(self.dataset.y_train), self.dataset.name)
        check_memory(len(self.dataset.y_train), self.dataset.num_classes, self.dataset.name,
                     mc=cfg.al.mc_samples > 0)
        self.learner = Learner.from_config(cfg, self.dataset, scorer, template=model)
        self.learner.check_needs(self.strategy)
        self.device = self.learner.device
        self.tracker = tracker if tracker is not None else _default_tracker(cfg)
        self.callbacks = list(callbacks or [])
        self.run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg, self.dataset, self.learner.template)
        self._model: Backbone | None = None
        #: the rounds whose metrics the tracking run holds: read from the store once per process
        #: (only this process writes the run: the run folder's lock), then kept up to date here
        self._logged_steps: set[int] | None = None

    # -- the run --------------------------------------------------------------------------
    def run(self) -> RunResult:
        torch.set_num_threads(self.cfg.runtime.threads())  # part of the run's identity (RunConfig.fingerprint)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"runtime.output_dir: the run folder {self.run_dir} is a file; move it away or choose "
                              "another runtime.output_dir or tracking.run_name")
        with space_for(self.run_dir, "runtime.output_dir"):  # a full disk: one line naming the file
            self.run_dir.mkdir(parents=True, exist_ok=True)
            lock = lock_folder(self.run_dir)  # one process per run folder: a second copy of the command fails
            try:
                # a link in the folder that leads outside it (rounds/ -> elsewhere): refused before any
                # file is read, written or deleted; a run folder that is itself a link is resolved first
                check_tree(self.run_dir, what="run folder entry", fix=RUN_FOLDER_FIX)
                return self._run_locked()
            finally:
                if lock is not None:
                    os.close(lock)

    def _path(self, *parts: str) -> Path:
        """``run_dir/<parts>``, checked to lie inside the run folder once links are followed
        (:func:`~autoal.containment.inside`); a path that leads outside is a StateError."""
        path = self.run_dir.joinpath(*parts)
        inside(self.run_dir, path, what="run folder path", fix=RUN_FOLDER_FIX)
        return path

    def _run_locked(self) -> RunResult:
        cfg = self.cfg
        state = self._load_or_init_state()
        self._write_config()
        self._start_tracking(state)
        y = self.dataset.y_train.numpy()
        n_pool = len(y)
        status = "FAILED"
        # a bar on a terminal; in a log, one line per round (autoal.progress)
        bar = progress_bar(cfg.al.rounds + 1, "rounds", enabled=not cfg.runtime.quiet, outer=True, unit="round",
                           initial=min(state.next_round, cfg.al.rounds + 1))
        try:
            for r in range(state.next_round, cfg.al.rounds + 1):
                t_round = time.perf_counter()
                labeled = np.asarray(state.labeled, dtype=np.int64)
                try:
                    record = self._round(r, labeled, n_pool, state)
                except TrainingDiverged as e:  # the state stays at the last completed round
                    kept = f"rounds 0-{r - 1} stay saved" if r else "no round was saved"
                    raise TrainingDiverged(f"round {r}: {e}; round {r} is not recorded ({kept})") from None
                if r < cfg.al.rounds:
                    new = np.asarray(record["selected"], dtype=np.int64)
                    state.labeled.extend(int(i) for i in new)
                    state.labeled_round.extend([r + 1] * len(new))
                state.history.append(record)
                state.next_round = r + 1
                state.finished = r == cfg.al.rounds
                state.rng_state = {"seed": cfg.al.seed, "next_round": r + 1,
                                   "next_query_seed": derive_seed(cfg.al.seed, r + 1, "query")}
                strike("state_write", r)
                self._save_strategy(r + 1)
                state.save(self.run_dir, before_replace=lambda _tmp, r=r: strike("state_write_tmp", r))
                prune_checkpoints(self.run_dir, {r + 1})
                self._log_round(record, state)
                bar.update(1, note=f"{record['labels']} labels, accuracy {record['accuracy']:.3f}, "
                              f"{time.perf_counter() - t_round:.1f} s", label=f"round {r}/{cfg.al.rounds}")
                for cb in self.callbacks:
                    cb(dict(record))
            status = "FINISHED"
        finally:
            bar.close()
            if status != "FINISHED":
                self.tracker.end("FAILED")
        result = self._result(state)
        self._finish_tracking(result)
        return result

    def _round(self, r: int, labeled: np.ndarray, n_pool: int, state: RunState) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        train_seed = derive_seed(cfg.al.seed, r, "train")
        if self._model is None or not cfg.al.warm_start:
            self._model = self.learner.new_model(train_seed)
        else:  # warm start: the round's draws (dropout, ...) must not depend on earlier rounds, or resume
            seed_torch(train_seed)
        model = self._model
        with progress_bar(cfg.train.epochs_for(len(labeled)), f"round {r} train",
                          enabled=not cfg.runtime.quiet, unit="epoch") as epoch_bar:
            strike("train", r)
            losses = self.learner.train(model, labeled, train_seed,
                                        progress=lambda e, loss: epoch_bar.update(1, note=f"loss {loss:.3f}"))
        metrics = self.learner.evaluate(model)
        t_train = time.perf_counter() - t0
        record: dict[str, Any] = {"round": r, "labels": int(len(labeled)), **metrics,
                                  "train_loss": losses[-1] if losses else float("nan"),
                                  "seconds_train": t_train, "seconds_score": 0.0, "seconds_select": 0.0,
                                  "selected": []}
        if r == cfg.al.rounds:  # the final task model: in the run folder, and to MLflow when the run ends
            atomic_torch_save(self._path(FINAL_MODEL_FILE), final_state_dict(model))
            return record
        unlabeled = np.setdiff1d(np.arange(n_pool), labeled, assume_unique=False)
        q = query_step(self.strategy, self.learner, model, labeled, unlabeled, cfg.al.query_size, seed=cfg.al.seed,
                       round_=r, progress=not cfg.runtime.quiet)
        selected = q.selected
        record.update(q.metrics)
        record.update({"seconds_score": q.seconds_score, "seconds_select": q.seconds_select,
                       "selected": selected.tolist()})
        atomic_write_json(self._path("rounds", f"round_{r:03d}.json"),
                          {"round": r, "selected": selected.tolist(), "labels_before": int(len(labeled)),
                           **{k: v for k, v in q.artifacts.items() if _jsonable(v)}})
        return record

    # -- state and tracking -----------------------------------------------------------------
    def _load_or_init_state(self) -> RunState:
        cfg = self.cfg
        fp = run_fingerprint(cfg, self.dataset, self.learner.template)
        state = RunState.load(self.run_dir) if cfg.runtime.resume else None
        if state is not None:
            state_file = self.run_dir / STATE_FILE
            saved, saved_model = state.data or {}, state.model or {}
            # a state written before full-content digests (no "hash" in its data identity) is
            # checked the way it was written: its fingerprint covers the sampled identity
            legacy = "hash" not in saved
            expected = run_fingerprint(cfg, self.dataset, self.learner.template, legacy=True) if legacy else fp
            if state.fingerprint != expected:
                ident = self.dataset.legacy_identity() if legacy else self.dataset.identity()
                model = self.learner.model_identity()
                if saved and saved != ident:
                    what = _identity_change(saved, ident)
                elif saved_model and saved_model != model:
                    what = (f"another model (saved: {json.dumps(saved_model, sort_keys=True)}; this run: "
                            f"{json.dumps(model, sort_keys=True)})")
                else:
                    what = "another config"
                raise StateError(f"{state_file}: saved state belongs to {what} (fingerprint {state.fingerprint}, "
                                 f"this run {expected}); use another runtime.output_dir or tracking.run_name")
            contradiction = _contradicts_config(state, cfg)
            if contradiction:
                raise StateError(f"{state_file}: saved state contradicts the run's config: {contradiction}; move the "
                                 "file away to start the run afresh")
            n_pool = len(self.dataset.y_train)
            if state.labeled and max(state.labeled) >= n_pool:
                raise StateError(f"{state_file}: labeled index {max(state.labeled)} is outside the pool of "
                                 f"{self.dataset.name} ({n_pool} samples); did the data change?")
            remove_stale_temps(self.run_dir)  # left by a process killed inside a write
            # checkpoints are keyed by the round they lead into, so that a crash between writing
            # them and writing state.json never pairs a state with a later round's weights
            strat_file = checkpoint_path(self.run_dir, "strategy", state.next_round)
            if not strat_file.exists() and self._path(STRATEGY_FILE).exists():
                strat_file = self._path(STRATEGY_FILE)  # run folders written before keyed checkpoints
            if strat_file.exists() and state.next_round > 0:
                load_strategy_state(self.strategy, strat_file)
            model_file = checkpoint_path(self.run_dir, "task_model", state.next_round)
            if not model_file.exists() and self._path("task_model.pt").exists():
                model_file = self._path("task_model.pt")
            if cfg.al.warm_start and state.next_round > 0 and model_file.exists():
                self._model = self.learner.new_model(0)
                self._model.load_state_dict(load_checkpoint(model_file, self.device))
            return state
        init = initial_labeled_set(self.dataset.y_train.numpy(), cfg.al.initial_size, cfg.al.balanced_init,
                                   round_rng(cfg.al.seed, 0, "init"))
        state = RunState(fingerprint=fp, labeled=init.tolist(), labeled_round=[0] * len(init),
                         data=self.dataset.identity(), model=self.learner.model_identity())
        prune_checkpoints(self.run_dir, {0})  # a fresh start (resume off) must not meet an older run's weights later
        self._path(FINAL_MODEL_FILE).unlink(missing_ok=True)
        state.save(self.run_dir)
        return state

    def _save_strategy(self, next_round: int) -> None:
        """Strategy state and (warm start) task-model weights that round ``next_round`` starts from."""
        sd = self.strategy.state_dict()
        if sd:
            atomic_torch_save(checkpoint_path(self.run_dir, "strategy", next_round), sd)
        if self.cfg.al.warm_start and self._model is not None:
            atomic_torch_save(checkpoint_path(self.run_dir, "task_model", next_round), self._model.state_dict())

    def _write_config(self) -> None:
        """The resolved run config as ``config.yaml`` in the run folder (JSON, which is YAML, when
        PyYAML is not installed), logged to MLflow with the run's other artifacts."""
        d = self.cfg.to_dict()
        try:
            import yaml

            text = yaml.safe_dump(d, sort_keys=False, default_flow_style=False)
        except ImportError:  # the core runs without PyYAML (the GPU machine)
            text = json.dumps(d, indent=2, default=str) + "\n"
        atomic_write_bytes(self._path("config.yaml"), text.encode())

    def _start_tracking(self, state: RunState) -> None:
        # the run folder identifies the MLflow run until its id is saved (adopted after a crash in between)
        run_id = self.tracker.start(state.tracking_run_id, identity={"autoal.run_dir": str(self.run_dir)})
        self._logged_steps = None
        if run_id != state.tracking_run_id:
            state.tracking_run_id = run_id
            state.logged_rounds = 0
            state.save(self.run_dir)
        self.tracker.set_tags({"dataset": self.cfg.dataset.name, "strategy": self.cfg.strategy.name,
                               "seed": str(self.cfg.al.seed), "git_sha": git_sha(), "autoal_version": __version__,
                               "run_dir": str(self.run_dir), "threads": str(torch.get_num_threads()),
                               # a trial's priority (Ray starts workers at nice 15 unless told otherwise)
                               "process_niceness": str(os.nice(0)) if hasattr(os, "nice") else "",
                               **({"setting": self.cfg.setting.name} if self.cfg.setting.name else {}),
                               "long_tailed": str(float(self.cfg.dataset.imbalance_ratio) > 1).lower(),
                               # MLflow caps tag values at 5000 characters
                               "dataset_source": (self.dataset.source or "not recorded by the loader")[:5000]})
        self.tracker.log_params({**config_params(self.cfg.to_dict()), **data_params(self.dataset)})
        warned = self.dataset.info.get("class_warnings") or []
        if warned:  # test classes the pool lacks, or pool classes the test split lacks (autoal.data.checks)
            self.tracker.set_tags({"data_warnings": " | ".join(warned)[:5000]})
        ident = self.dataset.identity()
        source = {"loader": self.cfg.dataset.name, "source": (self.dataset.source or "")[:1000],
                  "labels_sha256": ident["labels_sha256"]}
        for context, shape, digest in (("training", ident["train_shape"], ident["train_sha256"]),
                                       ("evaluation", ident["test_shape"], ident["test_sha256"])):
            self.tracker.log_dataset(f"{self.dataset.name}-{'pool' if context == 'training' else 'test'}",
                                     self.dataset.fingerprint(), context,
                                     {**source, "shape": "x".join(map(str, shape)), "images_sha256": digest})
        # a resumed run re-logs rounds that its state holds but the store may have missed
        for rec in state.history[state.logged_rounds:]:
            self._log_round(rec, state)

    def _log_round(self, record: dict[str, Any], state: RunState) -> None:
        r = record["round"]
        if r < state.logged_rounds:
            return
        if self._logged_steps is None:
            self._logged_steps = set(self.tracker.logged_steps("accuracy"))
        if r not in self._logged_steps:
            self.tracker.log_metrics({k: v for k, v in record.items()
                                      if isinstance(v, (int, float)) and k != "round"}, step=r)
            self._logged_steps.add(r)
        path = self._path("rounds", f"round_{r:03d}.json")
        if path.exists():
            self.tracker.log_artifact(path, "rounds")
        state.logged_rounds = r + 1
        state.save(self.run_dir)

    def _result(self, state: RunState) -> RunResult:
        labels = [h["labels"] for h in state.history]
        accs = [h["accuracy"] for h in state.history]
        return RunResult(history=state.history, labeled=np.asarray(state.labeled),
                         labeled_round=np.asarray(state.labeled_round),
                         aubc=aubc(labels, accs), final_accuracy=accs[-1], run_dir=self.run_dir,
                         tracking_run_id=state.tracking_run_id, model=self._final_model())

    def _final_model(self) -> torch.nn.Module | None:
        """The task model of ``final_model.pt`` (read weights-only), as :attr:`RunResult.model`."""
        final = self._path(FINAL_MODEL_FILE)
        if not final.exists():
            return None
        model = self.learner.new_model(0)
        state = load_checkpoint(final, torch.device("cpu"))
        model = model.cpu()
        if isinstance(model, ModuleAdapter) and not any(k.startswith("body.") for k in state):
            model.load_user_state_dict(state)
        else:  # a built-in backbone, or a run folder written before final_model.pt held the user's keys
            model.load_state_dict(state)
        if isinstance(model, ModuleAdapter) and not model.embedding_norm:
            return model.user_module()
        return model.eval()

    def _finish_tracking(self, result: RunResult) -> None:
        labels, accs = result.curve
        last = len(result.history) - 1
        if last not in self.tracker.logged_steps("aubc"):  # a rerun of a finished run logs nothing twice
            self.tracker.log_metrics({"aubc": result.aubc, "final_accuracy": result.final_accuracy}, step=last)
        title = f"{self.cfg.dataset.name} · {self.cfg.strategy.name} · seed {self.cfg.al.seed}"
        result.figures["learning_curve"] = learning_curve(self._path("learning_curve.png"),
                                                          {self.cfg.strategy.name: (labels, accs, None)}, title=title)
        classes = self.dataset.y_train.numpy()[result.labeled]
        counts = [np.bincount(classes[result.labeled_round <= r], minlength=self.dataset.num_classes).tolist()
                  for r in range(len(result.history))]
        labeled_file = self._path("labeled.json")
        atomic_write_json(labeled_file, {"labeled": result.labeled.tolist(),
                                         "labeled_round": result.labeled_round.tolist(),
                                         "labels": classes.tolist(), "classes": list(self.dataset.classes),
                                         "class_counts_per_round": counts})
        result.figures["class_histogram"] = class_histogram(
            self._path("class_histogram.png"), counts, self.dataset.classes, title=f"labeled set · {title}")
        if self.dataset.kind == "images":  # features have no picture to show
            result.figures["picks"] = picks_figure(self._path("picks.png"), self.dataset, result, title=title)
        for p in (*result.figures.values(), labeled_file, self._path(STATE_FILE), self._path("config.yaml")):
            self.tracker.log_artifact(p)
        if self.cfg.tracking.log_model and result.model is not None:
            example = self.dataset.eval_transform(self.dataset.x_test[:2]).numpy()
            self.tracker.log_model(result.model, registered_name=self.cfg.tracking.register_model,
                                   input_example=example)
        self.tracker.end("FINISHED")


def final_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What ``final_model.pt`` holds: one's own module's state dict under its own keys (so that
    ``module.load_state_dict(torch.load(path, weights_only=True))`` works), a built-in backbone's
    own state dict."""
    return model.user_state_dict() if isinstance(model, ModuleAdapter) else model.state_dict()


def picks_figure(path: Path, dataset: ALDataset, result: RunResult, per_round: int = 16, title: str = "") -> Path:
    """Thumbnails of each round's picks (round 0: the initial set), up to ``per_round`` a round,
    each row labeled with the round and the picks' classes (:meth:`ALDataset.display_images`;
    image data only: a ValueError for features)."""
    if dataset.kind != "images":
        raise ValueError(f"picks_figure: the data set {dataset.name!r} holds {dataset.kind}, not images")
    rows = []
    y = dataset.y_train.numpy()
    for r in range(int(result.labeled_round.max()) + 1 if len(result.labeled_round) else 0):
        idx = result.labeled[result.labeled_round == r][:per_round]
        if len(idx) == 0:
            continue
        label = f"round {r}" if r else "initial"
        rows.append((f"{label}\n{' '.join(dataset.classes[int(c)][:3] for c in y[idx][:8])}",
                     dataset.display_images(idx)))
    return image_grid(path, rows, per_row=per_round, title=f"picks · {title}")


def _contradicts_config(state: RunState, cfg: RunConfig) -> str | None:
    """How a (well-formed) saved state contradicts the config it claims to belong to, or None:
    more rounds than configured, or per-round label counts other than the initial set and one
    batch per completed round."""
    if state.next_round > cfg.al.rounds + 1:
        return f"next_round is {state.next_round} but al.rounds is {cfg.al.rounds}"
    per_round = np.bincount(np.asarray(state.labeled_round, dtype=np.int64), minlength=state.next_round + 1) \
        if state.labeled_round else np.zeros(state.next_round + 1, dtype=np.int64)
    if state.labeled and int(per_round[0]) != cfg.al.initial_size:
        return f"the initial set holds {int(per_round[0])} samples but al.initial_size is {cfg.al.initial_size}"
    expected_rounds = min(state.next_round, cfg.al.rounds)  # picks made by the completed rounds
    for r in range(1, expected_rounds + 1):
        if int(per_round[r]) != cfg.al.query_size:
            return f"round {r} added {int(per_round[r])} labels but al.query_size is {cfg.al.query_size}"
    if len(per_round) > expected_rounds + 1 and int(per_round[expected_rounds + 1:].sum()):
        return "labels are recorded for rounds that have not run"
    return None


def _jsonable(v: Any) -> bool:
    return isinstance(v, (int, float, str, list, dict, bool)) or v is None


def check_memory(n_pool: int, num_classes: int, dataset: str, mc: bool, available: int | None = None) -> None:
    """Refuse, before any training, a pool whose class-sized cache (:func:`class_cache_bytes`)
    exceeds the memory this machine has available (read now; ``available`` for a given figure)."""
    need = class_cache_bytes(n_pool, num_classes, mc)
    have = available_memory_bytes() if available is None else available
    if have is not None and need > have:
        raise DataError(f"{dataset}: a pool of {n_pool:,} samples with {num_classes:,} classes needs "
                        f"{human_bytes(need)} for each round's class probabilities"
                        + (" and MC dropout moments" if mc else "") + f"; this machine has {human_bytes(have)} "
                        "available (subsample with dataset.train_size, or check the labels: they must be class "
                        "indices 0..C-1)")


def load_strategy_state(strategy: Strategy, path: Path) -> None:
    """Restore ``strategy`` from its checkpoint ``path``: a file that is not a strategy state
    (unreadable, not a mapping, keys or values of the wrong kind) is a StateError naming the file,
    never a KeyError or TypeError from inside the strategy."""
    saved = load_checkpoint(path, "cpu")
    if not isinstance(saved, dict):
        raise StateError(f"{path}: expected the {strategy.name} strategy's state (a mapping); got "
                         f"{type(saved).__name__}; move the run folder away to start the run afresh")
    try:
        strategy.load_state_dict(saved)
    except StateError as e:
        raise StateError(f"{path}: {' '.join(str(e).split())}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError) as e:
        raise StateError(f"{path}: the {strategy.name} strategy's state does not fit ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]}); move the run folder away to start the run afresh") from None


def check_run(cfg: RunConfig, run_dir: str | Path | None = None, tracking: bool = True, names: bool = True) -> None:
    """What a run can be refused for before any work, without reading the data or writing a file:
    the config (:meth:`RunConfig.validate`), the run folder's root (``runtime.output_dir``, or
    ``run_dir``), the extras the config needs (Ray for Ray scoring) and, with ``tracking``, the
    tracking store (MLflow installed, the store usable). ``autoal run --check`` asks this.
    With ``names``, the data set and the strategy are looked up by name and the strategy built
    from its parameters (cheap: nothing is trained or loaded); the loop, which may be given its
    own strategy and data objects, builds or loads them itself right after."""
    cfg.validate()
    if names:
        LOADERS.get(cfg.dataset.name)
        build_strategy(cfg.strategy.name, **cfg.strategy.params)
    if run_dir is not None:
        check_writable_folder(run_dir, "run_dir")
    else:
        check_writable_folder(cfg.runtime.output_dir, "runtime.output_dir")
    if cfg.scoring.executor == "ray":
        require("scoring.executor=ray", "ray", alternative="scoring=local")
    if tracking and cfg.tracking.enabled:
        require(f"tracking in MLflow (tracking.uri={cfg.tracking.uri})", "mlflow", alternative=TRACKING_OFF)
        check_tracking_uri(cfg.tracking.uri)


def _default_tracker(cfg: RunConfig):
    if not cfg.tracking.enabled:
        return NullTracker()
    return MLflowTracker(cfg.tracking.uri, cfg.tracking.experiment, run_name=cfg.tracking.run_name
                         or f"{cfg.dataset.name}-{cfg.strategy.name}-seed{cfg.al.seed}", tags=cfg.tracking.tags)


def run_experiment(cfg: RunConfig, **kwargs: Any) -> RunResult:
    """Run one AL experiment described by ``cfg`` (see :class:`ActiveLearningLoop`)."""
    return ActiveLearningLoop(cfg, **kwargs).run()
