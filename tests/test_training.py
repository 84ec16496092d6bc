"""Task-model training: the step floor of small labeled sets (train.min_steps)."""

import numpy as np
import pytest
import torch

from autoal.config import RunConfig
from autoal.data import DataSpec, load_dataset
from autoal.errors import ConfigError
from autoal.training import TrainConfig, train_model


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
