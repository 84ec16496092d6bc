"""The query contract, over every registered strategy (issue 25): each one builds from its
defaults, answers one round on a tiny pool of digits with ``n`` distinct dataset indices from the
unlabeled pool, and answers the same under the same seed. Parametrized from the registry, so a
strategy added to autoal is checked without naming it here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from autoal.config import RunConfig
from autoal.data.files import dataset_from_arrays
from autoal.loop import ActiveLearningLoop
from autoal.strategies import Strategy, build_strategy, strategy_names

INITIAL, QUERY = 12, 7  # an odd batch: no strategy can get it right by halving


@pytest.fixture(scope="module")
def tiny_pool():
    """120 pool / 40 test images of digits (8x8, 10 classes), the same for every strategy."""
    x, y = load_digits(return_X_y=True)
    x = (x.reshape(-1, 8, 8) * 16).clip(0, 255).astype(np.uint8)
    return dataset_from_arrays(
        "tiny_digits",
        x[:120],
        y[:120],
        x[120:160],
        y[120:160],
        where="tiny pool",
        source="sklearn digits, first 160 images",
    )


def one_round(dataset, name: str, seed: int, out) -> tuple[np.ndarray, np.ndarray]:
    """The dataset indices the strategy ``name`` picks in its first query round, and the initial set."""
    cfg = RunConfig.from_dict(
        {
            "strategy": {"name": name, "params": {}},
            "model": {"name": "small_cnn"},
            "train": {"epochs": 2, "min_steps": 4, "batch_size": 16},
            "al": {"initial_size": INITIAL, "query_size": QUERY, "rounds": 1, "seed": seed, "mc_samples": 3},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(out), "resume": False, "quiet": True},
        }
    )
    r = ActiveLearningLoop(cfg, dataset=dataset).run()
    labeled, arrived = np.asarray(r.labeled), np.asarray(r.labeled_round)
    return labeled[arrived == 1], labeled[arrived == 0]


@pytest.mark.parametrize("name", strategy_names())
def test_a_strategy_answers_the_query_contract(name, tiny_pool, tmp_path):
    assert isinstance(build_strategy(name), Strategy)
    picks, initial = one_round(tiny_pool, name, seed=3, out=tmp_path / "a")
    assert len(picks) == QUERY and len(set(picks.tolist())) == QUERY, f"{name}: {picks}"
    assert len(initial) == INITIAL
    assert np.all((picks >= 0) & (picks < len(tiny_pool.y_train))), f"{name}: outside the pool"
    assert not set(picks.tolist()) & set(initial.tolist()), f"{name}: picked labeled samples"
    again, _ = one_round(tiny_pool, name, seed=3, out=tmp_path / "b")
    assert sorted(again.tolist()) == sorted(picks.tolist()), f"{name}: not deterministic under a seed"
