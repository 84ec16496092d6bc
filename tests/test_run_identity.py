"""Runs are identified by what they compute (issue 14): the same config on other data is another
run, never an earlier run's results returned again; a folder reused for other data is refused."""

import dataclasses

import pytest
import torch

from autoal.config import RunConfig
from autoal.data import DataSpec, load_dataset
from autoal.errors import StateError
from autoal.loop import ActiveLearningLoop, run_dir_for, run_experiment


def _cfg(tmp_path):
    return RunConfig.from_dict(
        {
            "al": {"rounds": 1, "initial_size": 20, "query_size": 10, "mc_samples": 0},
            "train": {"epochs": 2},
            "strategy": {"name": "margin"},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True, "num_threads": 1},
        }
    )


def _other_digits():
    """The same name, shapes and labels as digits, other images (mirrored left-right)."""
    a = load_dataset(DataSpec())
    return a, dataclasses.replace(a, x_train=torch.flip(a.x_train, dims=[-1]).contiguous())


def test_same_config_on_other_data_is_another_run(tmp_path):
    a, b = _other_digits()
    assert a.name == b.name and a.fingerprint() != b.fingerprint()
    ra = run_experiment(_cfg(tmp_path), dataset=a)
    rb = run_experiment(_cfg(tmp_path), dataset=b)
    assert ra.run_dir != rb.run_dir and ra.run_dir.name.startswith("digits-margin-seed0-")
    from autoal.state import RunState

    assert RunState.load(rb.run_dir).data == b.identity() and RunState.load(ra.run_dir).data == a.identity()
    assert run_dir_for(_cfg(tmp_path), a) == ra.run_dir and run_dir_for(_cfg(tmp_path)) == ra.run_dir
    # the same call again resumes its own run (nothing recomputed, the same history)
    again = run_experiment(_cfg(tmp_path), dataset=b)
    assert again.run_dir == rb.run_dir and again.history == rb.history


def test_a_run_folder_reused_for_other_data_names_both(tmp_path):
    a, b = _other_digits()
    first = ActiveLearningLoop(_cfg(tmp_path), dataset=a).run()
    with pytest.raises(StateError, match=r"another data set \(saved: digits .* this run: digits") as info:
        ActiveLearningLoop(_cfg(tmp_path), dataset=b, run_dir=first.run_dir).run()
    assert "state.json" in str(info.value) and "runtime.output_dir" in str(info.value)


def test_every_run_folder_keeps_its_resolved_config(tmp_path):
    import yaml

    cfg = _cfg(tmp_path)
    res = run_experiment(cfg)
    written = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert written == cfg.to_dict() and RunConfig.from_dict(written).fingerprint() == cfg.fingerprint()
