"""bench/gpu_quality.py runs the GPU setting on a machine without Hydra; its copy of the setting
must be the setting that ``autoal sweep`` composes (autoal/conf/setting/gpu_mnist_resnet.yaml)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from autoal.cli.common import compose, run_config
from autoal.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def _gpu_quality():
    spec = importlib.util.spec_from_file_location("gpu_quality", ROOT / "bench" / "gpu_quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_quality"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _what_matters(cfg: RunConfig) -> dict:
    """The fields that decide what a run computes on which device (not the seed, strategy,
    tracking, run folder or thread count, which the runner sets per run)."""
    al = dataclasses.asdict(cfg.al)
    al.pop("seed")
    return {
        "dataset": dataclasses.asdict(cfg.dataset),
        "model": dataclasses.asdict(cfg.model),
        "train": dataclasses.asdict(cfg.train),
        "al": al,
        "scoring": dataclasses.asdict(cfg.scoring),
        "device": cfg.runtime.device,
    }


@pytest.mark.parametrize("strategy", ["margin", "autoal"])
def test_gpu_setting_is_the_conf_setting(strategy, tmp_path):
    gq = _gpu_quality()
    assert set(gq.SETTINGS) == {"gpu_mnist_resnet"}
    setting = gq.SETTINGS["gpu_mnist_resnet"]
    ours = RunConfig.from_dict(setting.config(strategy, {}, 0, 8, str(tmp_path)))
    conf = run_config(compose(["setting=gpu_mnist_resnet", f"strategy={strategy}"]))
    mine, theirs = _what_matters(ours), _what_matters(conf)
    assert mine == theirs, {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
    # the fields the brief names, spelt out (a change to _what_matters must not hide them)
    assert (conf.dataset.name, conf.dataset.options, conf.dataset.train_size, conf.dataset.test_size) == (
        "mnist",
        {"source": "idx"},
        None,
        None,
    )
    assert (
        (conf.al.initial_size, conf.al.query_size, conf.al.rounds)
        == (setting.initial, setting.query, setting.rounds)
        == (500, 500, 10)
    )
    assert (conf.model.name, conf.train.epochs, conf.train.batch_size, conf.train.optimizer, conf.train.lr) == (
        setting.model,
        *(setting.train[k] for k in ("epochs", "batch_size", "optimizer", "lr")),
    )
    assert conf.runtime.device == ours.runtime.device == setting.device == "cuda"
    assert setting.long_tailed is (conf.dataset.imbalance_ratio != 1.0)


def test_gpu_quality_names_the_cpu_settings_home():
    gq = _gpu_quality()
    with pytest.raises(SystemExit, match="autoal sweep sweep=quality"):
        gq.main(["--settings", "digits", "--out", "/nonexistent/q.json"])
