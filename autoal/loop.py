"""The pool-based active-learning loop (DESIGN.md §3.1, §3.7, §3.8).

Round r = 0..R: train the task model on L (fresh weights by default), evaluate on the test
split, and — unless r = R — compute the shared cache over U once, ask the strategy for b
indices, move them from U to L, and write the run's state atomically. Every round draws its
randomness from generators derived from (seed, round), so the same seed gives the same picks,
and a resumed run continues exactly where an uninterrupted one would be. The run's folder and
resume are :mod:`autoal.run_folder`'s, its checks before any work :mod:`autoal.preflight`'s, its
tracking record and figures :mod:`autoal.recorder`'s."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from autoal.config import RunConfig
from autoal.data import ALDataset, load_dataset
from autoal.errors import TrainingDiverged
from autoal.faults import strike
from autoal.learner import Learner
from autoal.metrics import aubc
from autoal.models import Backbone, ModuleAdapter
from autoal.preflight import check_data, check_memory, check_run
from autoal.progress import progress_bar
from autoal.query_step import query_step
from autoal.recorder import LoopRecorder, data_params, picks_figure, tracker_for
from autoal.run_folder import FINAL_MODEL_FILE, RunFolder, load_strategy_state, run_dir_for, run_fingerprint
from autoal.seeding import derive_seed, round_rng, seed_torch
from autoal.state import (
    RunState,
    atomic_torch_save,
    atomic_write_json,
    checkpoint_path,
    load_checkpoint,
    prune_checkpoints,
)
from autoal.strategies import Strategy, build_strategy
from autoal.api_marker import public_api

#: names that moved to autoal.run_folder, autoal.preflight and autoal.recorder, importable from here as before
__all__ = [
    "FINAL_MODEL_FILE",
    "ActiveLearningLoop",
    "RoundCallback",
    "RunResult",
    "check_memory",
    "check_run",
    "data_params",
    "final_state_dict",
    "initial_labeled_set",
    "load_strategy_state",
    "picks_figure",
    "run_dir_for",
    "run_experiment",
    "run_fingerprint",
]

RoundCallback = Callable[[dict[str, Any]], None]


@public_api
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


class ActiveLearningLoop:
    """One AL run. ``dataset``, ``strategy``, ``tracker`` and ``scorer`` default to what the
    config names; pass them to reuse objects (tests, sweeps). ``model``: a user's task model (any
    ``nn.Module`` with a linear head, or a :class:`~autoal.models.ModuleAdapter`) in place of
    ``model.name``; each round trains a fresh copy."""

    def __init__(
        self,
        cfg: RunConfig,
        *,
        dataset: ALDataset | None = None,
        strategy: Strategy | None = None,
        tracker: Any = None,
        scorer: Any = None,
        callbacks: list[RoundCallback] | None = None,
        run_dir: str | Path | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        # the config, a folder that cannot be written (a read-only working directory), an unusable
        # tracking store: refused here, before the data is read
        check_run(cfg, run_dir, tracking=tracker is None, names=False)  # the names: built or loaded just below
        self.cfg = cfg
        self.strategy = strategy or build_strategy(cfg.strategy.name, **cfg.strategy.params)
        self.dataset = dataset or load_dataset(cfg.dataset)
        check_data(cfg, self.dataset)
        self.learner = Learner.from_config(cfg, self.dataset, scorer, template=model)
        self.learner.check_needs(self.strategy)
        self.device = self.learner.device
        self.tracker = tracker if tracker is not None else tracker_for(cfg)
        self.callbacks = list(callbacks or [])
        self.run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg, self.dataset, self.learner.template)
        self.folder = RunFolder(self.run_dir)
        self.recorder = LoopRecorder(self.tracker, cfg, self.dataset, self.folder)
        self._model: Backbone | None = None

    # -- the run --------------------------------------------------------------------------
    def run(self) -> RunResult:
        torch.set_num_threads(self.cfg.runtime.threads())  # part of the run's identity (RunConfig.fingerprint)
        with self.folder.opened():  # one process per run folder: a second copy of the command fails
            return self._run_locked()

    def _run_locked(self) -> RunResult:
        cfg = self.cfg
        state = self._load_or_init_state()
        self.folder.write_config(cfg)
        self.recorder.start(state)
        n_pool = len(self.dataset.y_train)
        status = "FAILED"
        # a bar on a terminal; in a log, one line per round (autoal.progress)
        bar = progress_bar(
            cfg.al.rounds + 1,
            "rounds",
            enabled=not cfg.runtime.quiet,
            outer=True,
            unit="round",
            initial=min(state.next_round, cfg.al.rounds + 1),
        )
        try:
            for r in range(state.next_round, cfg.al.rounds + 1):
                t_round = time.perf_counter()
                labeled = np.asarray(state.labeled, dtype=np.int64)
                try:
                    record = self._round(r, labeled, n_pool, state)
                except TrainingDiverged as e:  # the state stays at the last completed round
                    kept = f"rounds 0-{r - 1} stay saved" if r else "no round was saved"
                    raise TrainingDiverged(f"round {r}: {e}; round {r} is not recorded ({kept})") from None
                self._commit_round(r, record, state)
                bar.update(
                    1,
                    note=f"{record['labels']} labels, accuracy {record['accuracy']:.3f}, "
                    f"{time.perf_counter() - t_round:.1f} s",
                    label=f"round {r}/{cfg.al.rounds}",
                )
                for cb in self.callbacks:
                    cb(dict(record))
            status = "FINISHED"
        finally:
            bar.close()
            if status != "FINISHED":
                self.recorder.failed()
        result = self._result(state)
        self.recorder.finish(result)
        return result

    def _commit_round(self, r: int, record: dict[str, Any], state: RunState) -> None:
        """Round ``r``'s picks into L and its record into the state, saved atomically with the
        strategy's (and warm start's) checkpoints for round r + 1, then logged."""
        cfg = self.cfg
        if r < cfg.al.rounds:
            new = np.asarray(record["selected"], dtype=np.int64)
            state.labeled.extend(int(i) for i in new)
            state.labeled_round.extend([r + 1] * len(new))
        state.history.append(record)
        state.next_round = r + 1
        state.finished = r == cfg.al.rounds
        state.rng_state = {
            "seed": cfg.al.seed,
            "next_round": r + 1,
            "next_query_seed": derive_seed(cfg.al.seed, r + 1, "query"),
        }
        strike("state_write", r)
        self._save_strategy(r + 1)
        state.save(self.run_dir, before_replace=lambda _tmp, r=r: strike("state_write_tmp", r))
        prune_checkpoints(self.run_dir, {r + 1})
        self.recorder.rounds(state)

    def _round(self, r: int, labeled: np.ndarray, n_pool: int, state: RunState) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        train_seed = derive_seed(cfg.al.seed, r, "train")
        if self._model is None or not cfg.al.warm_start:
            self._model = self.learner.new_model(train_seed)
        else:  # warm start: the round's draws (dropout, ...) must not depend on earlier rounds, or resume
            seed_torch(train_seed)
        model = self._model
        with progress_bar(
            cfg.train.epochs_for(len(labeled)), f"round {r} train", enabled=not cfg.runtime.quiet, unit="epoch"
        ) as epoch_bar:
            strike("train", r)
            losses = self.learner.train(
                model, labeled, train_seed, progress=lambda e, loss: epoch_bar.update(1, note=f"loss {loss:.3f}")
            )
        metrics = self.learner.evaluate(model)
        t_train = time.perf_counter() - t0
        record: dict[str, Any] = {
            "round": r,
            "labels": int(len(labeled)),
            **metrics,
            "train_loss": losses[-1] if losses else float("nan"),
            "seconds_train": t_train,
            "seconds_score": 0.0,
            "seconds_select": 0.0,
            "selected": [],
        }
        if r == cfg.al.rounds:  # the final task model: in the run folder, and to MLflow when the run ends
            atomic_torch_save(self.folder.file(FINAL_MODEL_FILE), final_state_dict(model))
            return record
        unlabeled = np.setdiff1d(np.arange(n_pool), labeled, assume_unique=False)
        q = query_step(
            self.strategy,
            self.learner,
            model,
            labeled,
            unlabeled,
            cfg.al.query_size,
            seed=cfg.al.seed,
            round_=r,
            progress=not cfg.runtime.quiet,
        )
        selected = q.selected
        record.update(q.metrics)
        record.update(
            {"seconds_score": q.seconds_score, "seconds_select": q.seconds_select, "selected": selected.tolist()}
        )
        atomic_write_json(
            self.folder.file("rounds", f"round_{r:03d}.json"),
            {
                "round": r,
                "selected": selected.tolist(),
                "labels_before": int(len(labeled)),
                **{k: v for k, v in q.artifacts.items() if _jsonable(v)},
            },
        )
        return record

    # -- state ------------------------------------------------------------------------------
    def _load_or_init_state(self) -> RunState:
        """The saved state (checked, with the strategy and warm-start model restored) when resume
        is on and the folder holds one; else a fresh run's, with its seeded initial set."""
        cfg = self.cfg
        resumed = self.folder.resume(cfg, self.dataset, self.learner, self.strategy) if cfg.runtime.resume else None
        if resumed is not None:
            state, model = resumed
            if model is not None:
                self._model = model
            return state
        init = initial_labeled_set(
            self.dataset.y_train.numpy(), cfg.al.initial_size, cfg.al.balanced_init, round_rng(cfg.al.seed, 0, "init")
        )
        return self.folder.start(cfg, self.dataset, self.learner, init)

    def _save_strategy(self, next_round: int) -> None:
        """Strategy state and (warm start) task-model weights that round ``next_round`` starts from."""
        sd = self.strategy.state_dict()
        if sd:
            atomic_torch_save(checkpoint_path(self.run_dir, "strategy", next_round), sd)
        if self.cfg.al.warm_start and self._model is not None:
            atomic_torch_save(checkpoint_path(self.run_dir, "task_model", next_round), self._model.state_dict())

    def _result(self, state: RunState) -> RunResult:
        labels = [h["labels"] for h in state.history]
        accs = [h["accuracy"] for h in state.history]
        return RunResult(
            history=state.history,
            labeled=np.asarray(state.labeled),
            labeled_round=np.asarray(state.labeled_round),
            aubc=aubc(labels, accs),
            final_accuracy=accs[-1],
            run_dir=self.run_dir,
            tracking_run_id=state.tracking_run_id,
            model=self._final_model(),
        )

    def _final_model(self) -> torch.nn.Module | None:
        """The task model of ``final_model.pt`` (read weights-only), as :attr:`RunResult.model`."""
        final = self.folder.file(FINAL_MODEL_FILE)
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


def final_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What ``final_model.pt`` holds: one's own module's state dict under its own keys (so that
    ``module.load_state_dict(torch.load(path, weights_only=True))`` works), a built-in backbone's
    own state dict."""
    return model.user_state_dict() if isinstance(model, ModuleAdapter) else model.state_dict()


def _jsonable(v: Any) -> bool:
    return isinstance(v, (int, float, str, list, dict, bool)) or v is None


def run_experiment(cfg: RunConfig, **kwargs: Any) -> RunResult:
    """Run one AL experiment described by ``cfg`` (see :class:`ActiveLearningLoop`)."""
    return ActiveLearningLoop(cfg, **kwargs).run()
