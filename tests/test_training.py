"""Task-model training: the step floor of small labeled sets (train.min_steps) and the even
mini-batches of an epoch."""

import numpy as np
import pytest
import torch

from autoal.config import RunConfig
from autoal.data import DataSpec, load_dataset
from autoal.errors import ConfigError
from autoal.training import TrainConfig, epoch_batches, train_model


def test_min_steps_raises_the_epochs_of_small_labeled_sets_only():
    cfg = TrainConfig(epochs=10, batch_size=64, min_steps=100)
    assert cfg.epochs_for(20) == 100  # one step an epoch
    assert cfg.epochs_for(130) == 34  # 3 steps an epoch: ceil(100 / 3)
    assert cfg.epochs_for(6400) == 10  # 100 steps an epoch already
    assert TrainConfig(epochs=10).epochs_for(20) == 10
    with pytest.raises(ConfigError, match="train.min_steps: must be >= 0"):
        RunConfig.from_dict({"train": {"min_steps": -1}})


def test_training_runs_the_raised_number_of_epochs():
    ds = load_dataset(DataSpec(name="digits"))
    from autoal.models import build_model

    m = build_model("small_cnn", 1, 10, 8, width=4)
    losses = train_model(m, ds, np.arange(10), TrainConfig(epochs=2, min_steps=7), device=torch.device("cpu"), seed=0)
    assert len(losses) == 7


@pytest.mark.parametrize(
    "n, batch_size, sizes",
    [
        (130, 64, [44, 43, 43]),
        (128, 64, [64, 64]),
        (129, 64, [43, 43, 43]),
        (10, 64, [10]),
        (65, 64, [33, 32]),
        (3, 1, [1, 1, 1]),
    ],
)
def test_an_epoch_is_cut_into_batches_of_near_equal_size(n, batch_size, sizes):
    """⌈n / b⌉ batches, as many as a b-sized split with its remainder, but no tail of a few samples."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    batches = epoch_batches(perm, batch_size)
    assert [len(b) for b in batches] == sizes
    assert torch.equal(torch.cat(batches), perm)  # every sample once, in the permutation's order
    assert epoch_batches(torch.zeros(0, dtype=torch.long), 64) == ()


def test_training_never_steps_on_a_small_tail_batch():
    """130 labels at batch size 64: the model sees batches of 43-44, never the 2-sample tail a
    64/64/2 split would give it once an epoch (and last)."""
    ds = load_dataset(DataSpec(name="digits"))
    from autoal.models import build_model

    m = build_model("small_cnn", 1, 10, 8, width=4)
    seen: list[int] = []
    m.register_forward_pre_hook(lambda _module, args: seen.append(int(args[0].shape[0])))
    cfg = TrainConfig(epochs=3, batch_size=64)
    train_model(m, ds, np.arange(130), cfg, device=torch.device("cpu"), seed=0)
    assert len(seen) == 3 * 3 == 3 * -(-130 // 64)  # the steps per epoch are unchanged (min_steps counts them)
    assert sorted(set(seen)) == [43, 44]
