"""Labeling by a person: the AL loop on a user's own unlabeled images.

Each round, ``export`` trains the task model on the labeled set L, scores the unlabeled images
with the configured strategy (the loop's own pieces: :class:`autoal.learner.Learner` and
:func:`autoal.query_step.query_step`) and writes the next batch to
label as a CSV; a person fills in the ``label`` column; ``import`` validates the file, adds the
samples to L with the round number, and the next ``export`` continues.

Input: an image folder, in one of two layouts
----------------------------------------------
A. class folders for the seed::

       images/labeled/<class>/*.png      the labeled seed; the class list = these folder names
       images/unlabeled/**/*.png         the images to label (any depth)

B. a seed CSV (``seed_csv``) with columns ``file,label`` (``file`` relative to ``images/``)::

       images/**/*.png                   every image (any depth); the seed CSV's files are labeled
       seed.csv                          file,label
                                         cats/001.png,cat

   The class list is ``classes`` when given (it may name classes the seed lacks), else the
   sorted distinct labels of the seed CSV.

Any format PIL reads; hidden files are skipped. Images are resized to ``image_size`` (RGB, or
grayscale with ``channels: 1``). The seed is read once, when the project is created; images added
later (under ``unlabeled/`` in layout A, anywhere in layout B) join the pool at the next export.
At least two seed labels and two classes are needed.

Project folder (written by autoal only, atomically)
---------------------------------------------------
::

    project/labels.json                   the project's state: the pool (sample id = position),
                                          classes, the labeled set (sample_id, file, label, round;
                                          round 0 = seed), the batch waiting for labels, the
                                          per-round record, the MLflow run id
    project/batches/round_001.csv         the exported batch of round 1 (to fill in)
    project/batches/round_001.imported.csv  the file that was imported for round 1 (audit copy)
    project/checkpoints/strategy_002.pt   a stateful strategy's state entering round 2
    project/settings.json                 the settings of the last export (autoal/labeling/settings.py)

Every path a project keeps is absolute, fixed when it is first given: the images folder, the seed
CSV and the MLflow store (``tracking.uri``, the default ``sqlite:///mlflow.db`` included) are
resolved against the working folder of that command, so that later commands may run from any
folder. A project whose stored images folder no longer exists is refused (the project file and
the path named; nothing written). The thumbnail sheet ``batches/round_001.png`` shows the batch in
the CSV's order, each image captioned with its ``sample_id``.

The exported CSV has the columns ``sample_id, file_path, score, label``: ``file_path`` is the
image's path relative to the project's images folder (posix ``/``; the CSV is portable between
machines and mounts), ``score`` the strategy's score (higher = more informative; for
strategies that pick a set rather than score samples — kmeans, coreset, badge, autoal — the
1-based rank in the selection), ``label`` empty. Rows come most informative first.

Import rules (each failure is a :class:`~autoal.errors.LabelFileError` that names the CSV, the
row — the line of the file, header = line 1 — and the field, lists every problem found, and
changes nothing): columns ``sample_id`` and ``label`` are required (others, e.g. notes, are
ignored); every ``sample_id`` must be an integer of the exported batch, at most once; a non-empty
``file_path`` must be the exported path of that id, relative or absolute (the form older versions
wrote) (catches rows shifted by hand); every label
must be one of the class names (exact spelling); an empty label is an error and a batch with
missing rows is rejected unless ``allow_partial``, in which case the unlabeled samples return to
the pool and the round closes with the labels given. Blank lines are skipped; a UTF-8 byte-order
mark (spreadsheet export) is accepted.

Exporting while a batch waits for labels writes nothing new: it returns the waiting batch (and
rewrites its CSV if it was deleted); :meth:`LabelingProject.discard_pending` drops it. The same
state gives the same batch: every draw is seeded by (``al.seed``, round).

MLflow (``tracking``): one run per project (run name = the project folder's name), step = round:
``labeled`` (|L| after the round), ``added``, ``labeled/<class>``, and for rounds >= 1
``batch_agreement`` (how often the model that chose the batch predicted the label the person
gave) and ``train_loss``; ``labels.json`` is logged as an artifact. Logging that fails after the
state was saved is reported and retried by the next command.
"""

from __future__ import annotations

from autoal.labeling.config import CSV_COLUMNS, STATE_NAME, ExportResult, ImportResult, LabelingConfig
from autoal.labeling.project import LabelingProject
from autoal.labeling.settings import merge_overrides, store_overrides, stored_overrides

__all__ = [
    "CSV_COLUMNS",
    "STATE_NAME",
    "ExportResult",
    "ImportResult",
    "LabelingConfig",
    "LabelingProject",
    "merge_overrides",
    "store_overrides",
    "stored_overrides",
]
