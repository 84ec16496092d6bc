"""Running a sweep's Tune experiments: one :class:`Stage` (arms x seeds) per Tuner, started or
restored (:func:`fit_stage`), with the search space, search algorithm and scheduler Tune sees."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from autoal.errors import ConfigError
from autoal.platform.sweep.arms import Arm
from autoal.platform.sweep.progress import make_progress_callback
from autoal.platform.sweep.resources import ResourcePlan
from autoal.platform.sweep.spec import SweepSpec, search_domains
from autoal.tracking import config_params, end_parent_run, flatten


@dataclass
class Stage:
    """One Tune experiment of a sweep: the arms x seeds it runs, where it is stored."""

    sweep_id: str
    path: str
    storage: str
    arms: list[Arm]
    seeds: list[int]
    total: int
    name: str | None = None


def has_tuner(path: str) -> bool:
    """Whether a stage's Tune experiment was started (and so is restored, not started anew)."""
    from ray import tune

    return bool(tune.Tuner.can_restore(path))


@contextlib.contextmanager
def _quiet_restore() -> Iterator[None]:
    """Tune's restore reads every trial's results and warns, one line per trial, for each trial
    that has none yet (every pending trial of an interrupted sweep: a wall of FileNotFoundErrors);
    the sweep's own status line counts them. Silence that one logger while restoring."""
    log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def fit_stage(
    stage: Stage,
    spec: SweepSpec,
    trainable: Any,
    plan: ResourcePlan,
    resume: bool,
    out: Callable[[str], None],
    uri: str | None,
    parent_run_id: str | None,
) -> Any:
    """Run (or, with ``resume``, restore and continue) one stage's Tuner; the parent run ends
    KILLED when the fit does not return."""
    from ray import tune

    progress = make_progress_callback(stage.sweep_id, stage.total, spec.progress_interval_s, out)
    space = _param_space(stage.arms, spec, stage.seeds)
    fit_ok = False
    try:
        if resume:
            with _quiet_restore():
                tuner = tune.Tuner.restore(
                    stage.path, trainable=trainable, resume_unfinished=True, resume_errored=True, param_space=space
                )
            _attach_callbacks(tuner, progress, spec)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(
                    metric="aubc",
                    mode="max",
                    max_concurrent_trials=None if spec.searched else (plan.max_concurrent or None),
                    reuse_actors=True,
                    num_samples=spec.num_samples if spec.searched else 1,
                    search_alg=_search_alg(spec, plan.max_concurrent),
                    scheduler=_scheduler(spec, stage.arms, stage.sweep_id),
                ),
                run_config=tune.RunConfig(
                    name=stage.name or stage.sweep_id,
                    storage_path=stage.storage,
                    verbose=0,
                    callbacks=[progress],
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
        grid = tuner.fit()
        fit_ok = True
    finally:
        if uri and not fit_ok:
            _end_parent(uri, parent_run_id, "KILLED")
    return grid


def _attach_callbacks(tuner: Any, progress: Any, spec: SweepSpec) -> None:
    """A restored Tuner keeps its saved RunConfig; put the progress callback and the current
    failure budget on it."""
    internal = getattr(tuner, "_local_tuner", None)
    rc = getattr(internal, "_run_config", None) if internal is not None else None
    if rc is None:
        return
    from ray import tune

    rc.callbacks = [progress]
    rc.verbose = 0
    rc.failure_config = tune.FailureConfig(max_failures=spec.max_failures)


def _param_space(arms: list[Arm], spec: SweepSpec, seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """What Tune sees of each trial: the seed and the actual values of the swept keys (so that
    ``ResultGrid``, ``get_best_result`` and Tune's analysis show configurations): for the grid,
    the arm's label plus each varied key's value in that arm (resolved by ``sample_from`` from
    the arm); for a search algorithm, the space's domains themselves."""
    from ray import tune

    seeds = list(spec.seeds if seeds is None else seeds)
    if spec.searched:
        return {
            **search_domains(spec.space),
            "seed": seeds[0] if spec.search_alg == "optuna" else tune.grid_search(seeds),
        }
    values = {a.label: flatten(a.config) for a in arms}
    keys = sorted(varied_keys(arms))
    space: dict[str, Any] = {"arm": tune.grid_search([a.label for a in arms]), "seed": tune.grid_search(seeds)}
    for k in keys:
        space[k] = tune.sample_from(lambda config, k=k: values[config["arm"]].get(k))
    return space


def _search_alg(spec: SweepSpec, max_concurrent: int = 0) -> Any:
    """None for the grid (Tune's default generator enumerates it), Tune's BasicVariantGenerator
    drawing random points (seeded by ``sweep.sample_seed``), or an Optuna searcher."""
    if spec.search_alg == "grid":
        return None
    if spec.search_alg == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=spec.sample_seed, max_concurrent=int(max_concurrent or 0))
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError("sweep.search_alg: optuna is not installed (pip install optuna)")
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search import ConcurrencyLimiter

    searcher = OptunaSearch(seed=spec.sample_seed)
    return ConcurrencyLimiter(searcher, max_concurrent=int(max_concurrent)) if max_concurrent else searcher


def _scheduler(spec: SweepSpec, arms: Sequence[Arm], sweep_id: str) -> Any:
    """ASHA over AL rounds (one Tune iteration per round; the metric is the AUBC so far)."""
    if spec.scheduler == "none":
        return None
    from autoal.platform.sweep.schedulers import RecordingASHA

    rounds = max(int((a.config.get("al") or {}).get("rounds", 10)) for a in arms) if arms else 10
    return RecordingASHA(
        sweep_id,
        time_attr="training_iteration",
        max_t=rounds + 1,
        grace_period=spec.asha["grace_rounds"],
        reduction_factor=spec.asha["reduction_factor"],
    )


def varied_keys(arms: Sequence[Arm]) -> set[str]:
    """The flat config keys whose values differ between the arms (what the sweep compares)."""
    flats = [config_params(a.config) for a in arms]
    keys = set().union(*flats) if flats else set()
    return {k for k in keys if len({f.get(k) for f in flats}) > 1}


def _end_parent(uri: str | None, run_id: str | None, status: str) -> None:
    if not uri or not run_id:
        return
    try:
        end_parent_run(uri, run_id, status)
    except Exception:  # noqa: BLE001 - best effort while shutting down
        pass
