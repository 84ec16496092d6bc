"""Sweeps and ablations on Ray Tune, tracked in MLflow (DESIGN.md §4-5); one module per concept.

One trial = one AL run; the objective is its AUBC. The pieces, from config to results:

- :class:`SweepSpec` — the ``sweep:`` section of a config (see ``conf/sweep/base.yaml``): a search
  ``space`` of config keys (``grid``/``choice``/``uniform``/``loguniform``), optional named
  ``arms`` (config deltas: ablations), ``fixed`` deltas for every trial, paired ``seeds``, and
  the Tune settings (``max_concurrent``, ``max_failures``, ``storage_path``, ``resume``, ...).
- :func:`parse_space` turns the space into Tune search-space objects; :func:`expand_points`
  samples the random ones in the driver (seeded, ``num_samples`` draws) and crosses them with
  the grids, so that every point runs with *every* seed (paired seeds for the report's tests).
- :func:`build_arms` resolves every point (and named arm) into a full, validated run config —
  before Ray starts, so a misspelt key fails in a second, not after the first trial.
- :func:`plan_resources` declares every nested resource of a trial: Ray scorer actors are
  children of the trial and go into its placement group; Ray Train workers (Train V2) reserve a
  placement group of their own outside the trial's, so they are budgeted by capping the number
  of concurrent trials instead (otherwise two trials on 2 CPUs each hold a CPU and wait forever
  for a worker's).
- :func:`trial_fn` is the Tune function trainable: it composes the trial's config, runs
  :class:`~autoal.loop.ActiveLearningLoop` with an MLflow child run (tagged with the sweep id,
  ablation, arm, seed, data set, git sha and autoal version) and reports every round to Tune
  (``tune.report``, with a checkpoint of the run's state), so that the MLflow step and the Tune
  iteration are both the AL round. A retried trial (``max_failures``) resumes from its last
  round and continues the same MLflow run.
- :func:`run_sweep` is the driver: creates the MLflow experiment and the sweep's parent run once,
  before any trial starts; builds (or, with ``resume``, restores with ``Tuner.restore``) the
  Tuner; shows progress; returns a :class:`SweepResult` with per-trial and per-arm summaries.

MLflow with a SQLite store: every tracking call of a trial holds an exclusive lock on
``<db>.lock`` beside the database (one writer per SQLite file) and is retried when SQLite still
reports "database is locked". On a cluster use an ``mlflow server`` (``tracking.uri=http://...``).
"""

from __future__ import annotations

from autoal.platform.sweep.spec import (
    CONFIG_SECTIONS,
    ComposeFn,
    META_FILE,
    ROLE_TAG,
    SPACE_KINDS,
    SweepSpec,
    expand_points,
    flatten_space,
    parse_space,
)
from autoal.platform.sweep.arms import Arm, build_arms, point_label, resolve_groups, set_dotted
from autoal.platform.sweep.resources import ResourcePlan, plan_resources, train_workers
from autoal.platform.sweep.trial import TrialContext, absolutize, trial_config, trial_fn
from autoal.platform.sweep.progress import make_progress_callback
from autoal.platform.sweep.session import cluster_address, ray_session
from autoal.platform.sweep.driver import (
    SweepResult,
    check_sweep,
    find_resumable,
    format_summary,
    new_sweep_id,
    read_meta,
    run_sweep,
    summarize_arms,
    write_meta,
)

__all__ = [
    "Arm",
    "CONFIG_SECTIONS",
    "ComposeFn",
    "META_FILE",
    "ROLE_TAG",
    "ResourcePlan",
    "SPACE_KINDS",
    "SweepResult",
    "SweepSpec",
    "TrialContext",
    "absolutize",
    "build_arms",
    "check_sweep",
    "cluster_address",
    "expand_points",
    "find_resumable",
    "flatten_space",
    "format_summary",
    "make_progress_callback",
    "new_sweep_id",
    "parse_space",
    "plan_resources",
    "point_label",
    "ray_session",
    "read_meta",
    "resolve_groups",
    "run_sweep",
    "set_dotted",
    "summarize_arms",
    "train_workers",
    "trial_config",
    "trial_fn",
    "write_meta",
]
