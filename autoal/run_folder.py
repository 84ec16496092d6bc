"""A run's folder and identity (DESIGN.md §3.7): where a run lives (:func:`run_dir_for`, named by
the run's fingerprint, so that the same command on the same data and model finds its state
again), opening it (one process at a time, no link leading outside: :meth:`RunFolder.opened`),
and resuming: a saved state checked against the config, the data and the model before it is
used, with the strategy's and the task model's checkpoints of the round it resumes
(:meth:`RunFolder.resume`)."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from autoal.config import RunConfig
from autoal.containment import check_tree, inside
from autoal.data import ALDataset, load_dataset
from autoal.errors import ConfigError, StateError
from autoal.learner import Learner
from autoal.models import ModuleAdapter
from autoal.state import (
    RUN_FOLDER_FIX,
    RunState,
    STATE_FILE,
    STRATEGY_FILE,
    atomic_write_bytes,
    checkpoint_path,
    load_checkpoint,
    lock_folder,
    prune_checkpoints,
    remove_stale_temps,
)
from autoal.strategies import Strategy
from autoal.writable import space_for
from autoal.paths import user_path

#: the final round's task model (state dict) in the run folder; logged to MLflow as the run's model
FINAL_MODEL_FILE = "final_model.pt"


def run_fingerprint(
    cfg: RunConfig, dataset: ALDataset, model: ModuleAdapter | None = None, legacy: bool = False
) -> str:
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
    root = user_path(cfg.runtime.output_dir).resolve()
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
        saved.get("name"),
        saved.get("train_shape"),
        saved.get("labels_sha256"),
        now.get("name"),
        now.get("train_shape"),
        now.get("labels_sha256"),
        "; ".join(diff),
    )


def _contradicts_config(state: RunState, cfg: RunConfig) -> str | None:
    """How a (well-formed) saved state contradicts the config it claims to belong to, or None:
    more rounds than configured, or per-round label counts other than the initial set and one
    batch per completed round."""
    if state.next_round > cfg.al.rounds + 1:
        return f"next_round is {state.next_round} but al.rounds is {cfg.al.rounds}"
    per_round = (
        np.bincount(np.asarray(state.labeled_round, dtype=np.int64), minlength=state.next_round + 1)
        if state.labeled_round
        else np.zeros(state.next_round + 1, dtype=np.int64)
    )
    if state.labeled and int(per_round[0]) != cfg.al.initial_size:
        return f"the initial set holds {int(per_round[0])} samples but al.initial_size is {cfg.al.initial_size}"
    expected_rounds = min(state.next_round, cfg.al.rounds)  # picks made by the completed rounds
    for r in range(1, expected_rounds + 1):
        if int(per_round[r]) != cfg.al.query_size:
            return f"round {r} added {int(per_round[r])} labels but al.query_size is {cfg.al.query_size}"
    if len(per_round) > expected_rounds + 1 and int(per_round[expected_rounds + 1 :].sum()):
        return "labels are recorded for rounds that have not run"
    return None


def load_strategy_state(strategy: Strategy, path: Path) -> None:
    """Restore ``strategy`` from its checkpoint ``path``: a file that is not a strategy state
    (unreadable, not a mapping, keys or values of the wrong kind) is a StateError naming the file,
    never a KeyError or TypeError from inside the strategy."""
    saved = load_checkpoint(path, "cpu")
    if not isinstance(saved, dict):
        raise StateError(
            f"{path}: expected the {strategy.name} strategy's state (a mapping); got "
            f"{type(saved).__name__}; move the run folder away to start the run afresh"
        )
    try:
        strategy.load_state_dict(saved)
    except StateError as e:
        raise StateError(f"{path}: {' '.join(str(e).split())}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError) as e:
        raise StateError(
            f"{path}: the {strategy.name} strategy's state does not fit ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); move the run folder away to start the run afresh"
        ) from None


class RunFolder:
    """One run's folder: its paths (checked to stay inside it), its lock, its config file, and
    its saved state (resumed, or started afresh)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, *parts: str) -> Path:
        """``<folder>/<parts>``, checked to lie inside the run folder once links are followed
        (:func:`~autoal.containment.inside`); a path that leads outside is a StateError."""
        path = self.path.joinpath(*parts)
        inside(self.path, path, what="run folder path", fix=RUN_FOLDER_FIX)
        return path

    @contextmanager
    def opened(self) -> Iterator["RunFolder"]:
        """The folder, created and locked for this process (a second copy of the command fails),
        its entries checked to lead nowhere outside it; a full disk inside is one line naming the
        file (``runtime.output_dir``)."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(
                f"runtime.output_dir: the run folder {self.path} is a file; move it away or choose "
                "another runtime.output_dir or tracking.run_name"
            )
        with space_for(self.path, "runtime.output_dir"):
            self.path.mkdir(parents=True, exist_ok=True)
            lock = lock_folder(self.path)
            try:
                # a link in the folder that leads outside it (rounds/ -> elsewhere): refused before any
                # file is read, written or deleted; a run folder that is itself a link is resolved first
                check_tree(self.path, what="run folder entry", fix=RUN_FOLDER_FIX)
                yield self
            finally:
                if lock is not None:
                    os.close(lock)

    def write_config(self, cfg: RunConfig) -> None:
        """The resolved run config as ``config.yaml`` (JSON, which is YAML, when PyYAML is not
        installed), logged to MLflow with the run's other artifacts."""
        d = cfg.to_dict()
        try:
            import yaml

            text = yaml.safe_dump(d, sort_keys=False, default_flow_style=False)
        except ImportError:  # the core runs without PyYAML (the GPU machine)
            text = json.dumps(d, indent=2, default=str) + "\n"
        atomic_write_bytes(self.file("config.yaml"), text.encode())

    def start(self, cfg: RunConfig, dataset: ALDataset, learner: Learner, initial: np.ndarray) -> RunState:
        """A fresh run's state (round 0 with the ``initial`` labeled set), saved; the checkpoints
        and final model of an older run in the folder are removed (resume off must not meet
        them later)."""
        state = RunState(
            fingerprint=run_fingerprint(cfg, dataset, learner.template),
            labeled=initial.tolist(),
            labeled_round=[0] * len(initial),
            data=dataset.identity(),
            model=learner.model_identity(),
        )
        prune_checkpoints(self.path, {0})
        self.file(FINAL_MODEL_FILE).unlink(missing_ok=True)
        state.save(self.path)
        return state

    def resume(
        self, cfg: RunConfig, dataset: ALDataset, learner: Learner, strategy: Strategy
    ) -> tuple[RunState, Any] | None:
        """The saved state, checked to belong to this config, data and model, with ``strategy``
        restored and (warm start) the task model the next round starts from (else None); None
        when the folder holds no state."""
        state = RunState.load(self.path)
        if state is None:
            return None
        self._check_belongs(state, cfg, dataset, learner)
        remove_stale_temps(self.path)  # left by a process killed inside a write
        # checkpoints are keyed by the round they lead into, so that a crash between writing
        # them and writing state.json never pairs a state with a later round's weights
        strat_file = checkpoint_path(self.path, "strategy", state.next_round)
        if not strat_file.exists() and self.file(STRATEGY_FILE).exists():
            strat_file = self.file(STRATEGY_FILE)  # run folders written before keyed checkpoints
        if strat_file.exists() and state.next_round > 0:
            load_strategy_state(strategy, strat_file)
        model_file = checkpoint_path(self.path, "task_model", state.next_round)
        if not model_file.exists() and self.file("task_model.pt").exists():
            model_file = self.file("task_model.pt")
        model = None
        if cfg.al.warm_start and state.next_round > 0 and model_file.exists():
            model = learner.new_model(0)
            model.load_state_dict(load_checkpoint(model_file, learner.device))
        return state, model

    def _check_belongs(self, state: RunState, cfg: RunConfig, dataset: ALDataset, learner: Learner) -> None:
        """A StateError naming the state file when the saved state belongs to another data set,
        model or config, contradicts the config, or labels samples outside the pool."""
        state_file = self.path / STATE_FILE
        saved, saved_model = state.data or {}, state.model or {}
        # a state written before full-content digests (no "hash" in its data identity) is
        # checked the way it was written: its fingerprint covers the sampled identity
        legacy = "hash" not in saved
        expected = run_fingerprint(cfg, dataset, learner.template, legacy=legacy)
        if state.fingerprint != expected:
            ident = dataset.legacy_identity() if legacy else dataset.identity()
            model = learner.model_identity()
            if saved and saved != ident:
                what = _identity_change(saved, ident)
            elif saved_model and saved_model != model:
                what = (
                    f"another model (saved: {json.dumps(saved_model, sort_keys=True)}; this run: "
                    f"{json.dumps(model, sort_keys=True)})"
                )
            else:
                what = "another config"
            raise StateError(
                f"{state_file}: saved state belongs to {what} (fingerprint {state.fingerprint}, "
                f"this run {expected}); use another runtime.output_dir or tracking.run_name"
            )
        contradiction = _contradicts_config(state, cfg)
        if contradiction:
            raise StateError(
                f"{state_file}: saved state contradicts the run's config: {contradiction}; move the "
                "file away to start the run afresh"
            )
        n_pool = len(dataset.y_train)
        if state.labeled and max(state.labeled) >= n_pool:
            raise StateError(
                f"{state_file}: labeled index {max(state.labeled)} is outside the pool of "
                f"{dataset.name} ({n_pool} samples); did the data change?"
            )
