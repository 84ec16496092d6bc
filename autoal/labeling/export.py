"""Exporting a batch to label: the unlabeled pool, the strategy's state, the round's training and
query (the loop's own pieces), the batch in score order with the model's guesses, its thumbnail
sheet, and the waiting batch returned again (see :mod:`autoal.labeling`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoal.config import RunConfig
from autoal.errors import ConfigError
from autoal.labeling.config import ExportResult
from autoal.labeling.files import batch_csv
from autoal.learner import Learner
from autoal.plots import captioned_grid
from autoal.progress import progress_bar
from autoal.query_step import query_step
from autoal.seeding import derive_seed
from autoal.state import atomic_write_bytes, load_checkpoint
from autoal.strategies.base import ScoreStrategy


@dataclass(frozen=True)
class Batch:
    """A chosen batch, most informative first: sample ids, scores, the model's guesses (class
    names) and the round's last training loss."""

    ids: list[int]
    scores: np.ndarray
    predicted: list[str]
    train_loss: float | None


def unlabeled_pool(st: dict[str, Any], query_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(labeled, unlabeled) sample ids of ``st``; a ConfigError when ``query_size`` is larger than
    the unlabeled pool."""
    labeled = np.asarray([e["sample_id"] for e in st["labeled"]], dtype=np.int64)
    unlabeled = np.setdiff1d(np.arange(len(st["pool"])), labeled)
    if query_size > len(unlabeled):
        raise ConfigError(
            f"al.query_size: {query_size} is larger than the unlabeled pool of {Path(st['images'])} "
            f"({len(unlabeled)} image(s) left to label)"
        )
    return labeled, unlabeled


def restore_strategy(strategy: Any, ckpt: Path) -> None:
    """Load a stateful strategy's state entering this round from ``ckpt``, when there is one."""
    if ckpt.exists():
        strategy.load_state_dict(
            load_checkpoint(  # weights_only: a received project never runs code
                ckpt,
                "cpu",
                hint="move the file away (the next export starts the strategy's own state afresh; the labels are kept)",
            )
        )


def choose_batch(
    cfg: RunConfig,
    strategy: Any,
    learner: Learner,
    classes: list[str],
    labeled: np.ndarray,
    unlabeled: np.ndarray,
    round_: int,
) -> Batch:
    """Round ``round_``: train a model on ``labeled`` and query ``al.query_size`` samples of
    ``unlabeled`` (seeded by ``al.seed`` and the round, as in the loop)."""
    torch.set_num_threads(cfg.runtime.threads())
    seed = int(cfg.al.seed)
    train_seed = derive_seed(seed, round_, "train")
    model = learner.new_model(train_seed)
    # progress as in the loop: bars on a terminal, silent in a log (autoal.progress)
    with progress_bar(
        cfg.train.epochs_for(len(labeled)), f"round {round_} train", enabled=not cfg.runtime.quiet, unit="epoch"
    ) as bar:
        losses = learner.train(
            model, labeled, train_seed, progress=lambda e, loss: bar.update(1, note=f"loss {loss:.3f}")
        )
    q = query_step(
        strategy,
        learner,
        model,
        labeled,
        unlabeled,
        int(cfg.al.query_size),
        seed=seed,
        round_=round_,
        progress=not cfg.runtime.quiet,
    )
    selected, cache = q.selected, q.cache
    scores, order = _batch_scores(strategy, cache, unlabeled, selected)
    selected, scores = selected[order], scores[order]
    pos = np.searchsorted(unlabeled, selected)
    predicted = cache.probs[torch.as_tensor(pos, device=cache.probs.device)].argmax(1).cpu().tolist()
    return Batch(
        ids=[int(i) for i in selected],
        scores=scores,
        predicted=[classes[p] for p in predicted],
        train_loss=float(losses[-1]) if losses else None,
    )


def pending_record(round_: int, csv_path: Path, batch: Batch, strategy_name: str) -> dict[str, Any]:
    """The state's record of the batch waiting for labels."""
    return {
        "round": round_,
        "csv": str(csv_path),
        "sample_ids": batch.ids,
        "scores": [float(s) for s in batch.scores],
        "predicted": batch.predicted,
        "train_loss": batch.train_loss,
        "strategy": strategy_name,
    }


def existing_pending(st: dict[str, Any], csv_path: Path) -> ExportResult:
    """The batch already waiting for labels in ``st``; its CSV ``csv_path`` rewritten when it was
    deleted."""
    p = st["pending"]
    files = [str(Path(st["images"]) / st["pool"][i]) for i in p["sample_ids"]]
    if not csv_path.exists():
        atomic_write_bytes(csv_path, batch_csv(p["sample_ids"], [st["pool"][i] for i in p["sample_ids"]], p["scores"]))
    return ExportResult(
        round=p["round"],
        csv=csv_path,
        sample_ids=list(p["sample_ids"]),
        files=files,
        scores=list(p["scores"]),
        already_pending=True,
    )


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
