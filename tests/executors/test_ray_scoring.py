"""Parallel pool scoring on Ray actors (issue 4 item 1, issue 6: dead actors): the actors'
cache equals the single-process cache exactly, every candidate picks the same samples, a dead
actor (between calls or mid-call) is replaced and its shard rescored, and a whole AL run with
``scoring.executor=ray`` labels the same sequence as ``local``."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from autoal.cache import compute_cache
from autoal.data import DataSpec, load_dataset
from autoal.models import build_model
from autoal.executors.ray_scoring import RayScorer, shard_bounds, weights_key

BATCH = 64


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataSpec(name="digits"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("small_cnn", 1, 10, 8, dropout=0.3)
    # a few BatchNorm statistics that are not the init values, so eval mode is exercised
    m.train()
    with torch.no_grad():
        m(torch.randn(32, 1, 8, 8))
    return m.eval()


@pytest.fixture(scope="module")
def scorer(ray_local):
    s = RayScorer(num_actors=2, gpus_per_actor=0.5, num_cpus=1)
    try:
        yield s
    finally:
        s.close()


def _assert_same_cache(a, b):
    assert np.array_equal(a.indices, b.indices)
    for name in (
        "embeddings",
        "logits",
        "probs",
        "mc.mean_probs",
        "mc.std_probs",
        "mc.mean_entropy",
        "mc.modal_fraction",
    ):
        x, y = a, b
        for part in name.split("."):
            x, y = getattr(x, part), getattr(y, part)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert torch.equal(x, y), f"{name}: max |diff| {(x - y).abs().max().item()}"


def _pool(digits, n=700, seed=3):
    rng = np.random.default_rng(seed)
    return rng.permutation(len(digits.y_train))[:n]  # an unsorted subset, like U after rounds


def test_shard_bounds_cut_at_batch_multiples():
    assert shard_bounds(700, 64, 2) == [(0, 384), (384, 700)]
    assert shard_bounds(700, 64, 3) == [(0, 256), (256, 512), (512, 700)]
    assert shard_bounds(50, 64, 4) == [(0, 50)]  # one batch: one shard
    for n, b, k in [(1, 1, 3), (1000, 7, 4), (129, 64, 2), (128, 64, 5)]:
        bounds = shard_bounds(n, b, k)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(s % b == 0 for s, _ in bounds)
        assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))


def test_platform_package_does_not_import_ray():
    code = "import sys, autoal.platform; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_ray_cache_equals_local_cache_and_candidates_pick_the_same(digits, model, scorer):
    from autoal.strategies import build_strategy
    from autoal.strategies.candidates import PAPER_CANDIDATES

    idx = _pool(digits)
    ref = compute_cache(model, digits, idx, mc_samples=5, batch_size=BATCH, seed=11)
    got = scorer(model, digits, idx, mc_samples=5, batch_size=BATCH, seed=11)
    _assert_same_cache(ref, got)
    for name in PAPER_CANDIDATES + ("random",):
        strat = build_strategy(name)
        a = strat.select_positions(ref, 25, np.random.default_rng(5))
        b = strat.select_positions(got, 25, np.random.default_rng(5))
        assert np.array_equal(a, b), name

    # same weights again (e.g. the labeled set in the same round): no actor reloads the model
    lab = np.setdiff1d(np.arange(len(digits.y_train)), idx)[:150]
    _assert_same_cache(
        compute_cache(model, digits, lab, mc_samples=5, batch_size=BATCH, seed=12),
        scorer(model, digits, lab, mc_samples=5, batch_size=BATCH, seed=12),
    )
    stats = scorer.stats()
    assert [s["model_loads"] for s in stats] == [1, 1] and [s["data_loads"] for s in stats] == [1, 1]

    # new weights (next round): each actor loads them once, the pool images are not resent
    trained = build_model(**model.spec)
    trained.load_state_dict(model.state_dict())
    with torch.no_grad():
        trained.fc.weight.add_(0.01)
    assert weights_key(trained) != weights_key(model)
    _assert_same_cache(
        compute_cache(trained, digits, idx, mc_samples=5, batch_size=BATCH, seed=13),
        scorer(trained, digits, idx, mc_samples=5, batch_size=BATCH, seed=13),
    )
    stats = scorer.stats()
    assert [s["model_loads"] for s in stats] == [2, 2] and [s["data_loads"] for s in stats] == [1, 1]


def test_dead_actor_is_replaced_and_its_shard_rescored(digits, model, scorer, ray_local):
    idx = _pool(digits, n=500, seed=4)
    ref = compute_cache(model, digits, idx, mc_samples=3, batch_size=BATCH, seed=21)
    scorer(model, digits, idx, mc_samples=3, batch_size=BATCH, seed=21)  # actors up and loaded
    before = scorer.replacements

    # killed between calls
    dead = scorer.actors[0]
    ray_local.kill(dead, no_restart=True)
    _assert_same_cache(ref, scorer(model, digits, idx, mc_samples=3, batch_size=BATCH, seed=21))
    assert scorer.replacements == before + 1 and scorer.actors[0] is not dead

    # killed while it holds its shard: the actor is stalled, so the shard waits behind the stall
    victim = scorer.actors[1]
    victim.stall.remote(60)
    killer = threading.Timer(1.0, lambda: ray_local.kill(victim, no_restart=True))
    killer.start()
    t0 = time.perf_counter()
    try:
        got = scorer(model, digits, idx, mc_samples=3, batch_size=BATCH, seed=21)
    finally:
        killer.cancel()
    assert time.perf_counter() - t0 < 45
    _assert_same_cache(ref, got)
    assert scorer.replacements == before + 2 and scorer.actors[1] is not victim
    assert len(scorer.actors) == 2


def test_actors_that_cannot_be_placed_raise_instead_of_hanging(digits, model, ray_local):
    s = RayScorer(num_actors=1, num_cpus=64, use_gpu=False, start_timeout_s=1.0)  # the cluster has 2 CPUs
    with pytest.raises(RuntimeError, match="did not start within"):
        s(model, digits, np.arange(10), mc_samples=2, batch_size=BATCH)
    assert s.actors == []


def test_scoring_executor_ray_builds_a_lazy_ray_scorer():
    from autoal.config import RunConfig
    from autoal.learner import default_scorer

    cfg = RunConfig.from_dict(
        {"scoring": {"executor": "ray", "num_actors": 3, "gpus_per_actor": 0.25, "num_cpus": 0.5}}
    )
    s = default_scorer(cfg)
    assert isinstance(s, RayScorer) and s.num_actors == 3 and s.gpus_per_actor == 0.25 and s.num_cpus == 0.5
    assert s.actors == []  # nothing started before the first call
    if not torch.cuda.is_available():
        assert s.actor_options() == {"num_cpus": 0.5, "num_gpus": 0} and s.resources() == {"CPU": 1.5}
    assert RayScorer(num_actors=2, use_gpu=True, gpus_per_actor=0.5).resources() == {"CPU": 0.0, "GPU": 1.0}


def test_al_run_with_ray_scoring_labels_the_same_sequence_as_local(scorer, tmp_path):
    from autoal.config import RunConfig
    from autoal.loop import ActiveLearningLoop

    def cfg(executor):
        return RunConfig.from_dict(
            {
                "al": {"initial_size": 20, "query_size": 10, "rounds": 2, "mc_samples": 4},
                "train": {"epochs": 3, "batch_size": 32},
                "strategy": {"name": "bald"},
                "scoring": {"executor": executor, "num_actors": 2, "batch_size": 128},
                "tracking": {"enabled": False},
                "runtime": {"output_dir": str(tmp_path / executor), "quiet": True, "num_threads": 2, "device": "cpu"},
            }
        )

    local = ActiveLearningLoop(cfg("local")).run()
    # the module's warm actors serve as the run's scorer (the executor=ray wiring is tested above)
    remote = ActiveLearningLoop(cfg("ray"), scorer=scorer).run()
    assert remote.labeled.tolist() == local.labeled.tolist()
    assert [h["selected"] for h in remote.history] == [h["selected"] for h in local.history]
    assert len(remote.labeled) == 40 and len(scorer.actors) == 2
