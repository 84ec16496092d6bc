"""Extra models of a strategy trained as Ray tasks (DESIGN.md §5): ENSvarR's ensemble members
(:class:`autoal.strategies.baselines.ens_var_r.EnsembleVarRatio`) train in parallel, one Ray task
each, and return their predicted labels over the pool.

The strategy keeps the math (seeds, votes, variation ratio); this module holds the Ray part:
:func:`ray_running` (is there a Ray to run on, without importing it) and
:func:`member_votes_on_ray` (the tasks). Each task receives the member's weights as the driver
initialized them and the driver's torch RNG state after that initialization, and trains with the
learner's recipe, so its votes equal those of the same member trained in the loop's process.
"""

from __future__ import annotations

import copy
import random
import sys
from typing import Any, Callable, Sequence

import numpy as np
import torch

from autoal.cache import compute_cache
from autoal.device import prepare_model
from autoal.training import train_model


def ray_running() -> bool:
    """True when Ray is initialized in this process. Ray is not imported here: it cannot be
    initialized unless someone imported it already."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


def member_votes(
    model: torch.nn.Module,
    rng_state: torch.Tensor,
    dataset: Any,
    labeled: np.ndarray,
    unlabeled: np.ndarray,
    train_cfg: Any,
    seed: int,
    use_cuda: bool,
    batch_size: int,
) -> np.ndarray:
    """The task body: train one member (already initialized) on ``labeled`` as the learner's
    ``train`` does, then return its predicted labels over ``unlabeled``. The global torch RNG
    (dropout masks) is restored to the state it had after the member's seeded initialization in
    the driver, so that the result equals the in-process path's."""
    random.seed(seed)
    torch.manual_seed(seed)  # CUDA generators as after the driver's seed_torch(seed)
    torch.set_rng_state(rng_state)
    device = torch.device("cuda" if use_cuda and torch.cuda.is_available() else "cpu")
    model = prepare_model(model, device)
    train_model(model, dataset, labeled, train_cfg, device=device, seed=seed)
    cache = compute_cache(model, dataset, unlabeled, mc_samples=0, batch_size=batch_size, device=device, seed=seed)
    return cache.probs.argmax(1).cpu().numpy()


def member_votes_on_ray(
    learner: Any,
    dataset: Any,
    labeled: np.ndarray,
    unlabeled: np.ndarray,
    seeds: Sequence[int],
    *,
    use_cuda: bool,
    num_cpus: float = 1.0,
    num_gpus: float | None = None,
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> list[torch.Tensor]:
    """Predicted labels over ``unlabeled`` of one member per seed, each trained on ``labeled`` in a
    Ray task of ``num_cpus`` CPUs and ``num_gpus`` GPUs (None: a 1/members share of a GPU when
    ``use_cuda`` and the cluster has GPUs, else none). ``learner`` builds each member
    (``new_model(seed)``, in the driver, seeded) and gives the recipe (``train_cfg``).
    ``progress(done, total)`` is called as members finish. Results are in ``seeds``' order."""
    import ray

    gpus = num_gpus
    if gpus is None:
        gpus = 1.0 / len(seeds) if use_cuda and ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    task = ray.remote(num_cpus=float(num_cpus), num_gpus=float(gpus))(member_votes)
    ds_ref = ray.put(dataset)
    refs = []
    for s in seeds:
        model = learner.new_model(s)  # seeded init in the driver, exactly as the in-process path
        state = torch.get_rng_state()
        refs.append(
            task.remote(
                copy.deepcopy(model).cpu(),
                state,
                ds_ref,
                labeled,
                unlabeled,
                learner.train_cfg,
                s,
                use_cuda and gpus > 0,
                batch_size,
            )
        )
        del model
    report = progress or (lambda done, total: None)
    report(0, len(refs))
    waiting = list(refs)
    while waiting:  # members in the order they finish, for progress only
        _, waiting = ray.wait(waiting, num_returns=1)
        report(len(refs) - len(waiting), len(refs))
    return [torch.from_numpy(np.array(v, dtype=np.int64)) for v in ray.get(refs)]  # writable copies


__all__ = ["member_votes", "member_votes_on_ray", "ray_running"]
