"""Issue 23, "one line, exit 2, state unchanged" for numbers: the bound table of the run config
(:mod:`autoal.bounds`) refuses out-of-range hyper-parameters in ``RunConfig.from_dict`` and hence
in ``autoal run`` and ``autoal run --check`` before anything is written; training that diverges
(a non-finite loss) stops the round with :class:`~autoal.errors.TrainingDiverged` and leaves the
run's saved state at the last completed round."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from autoal.bounds import bound_of
from autoal.cli.common import compose, config_groups, run_config
from autoal.config import RunConfig
from autoal.data.registry import load_dataset
from autoal.errors import ConfigError, TrainingDiverged
from autoal.learner import Learner
from autoal.loop import ActiveLearningLoop
from autoal.training import TrainConfig
from autoal.typed_config import field_type

sys.path.insert(0, str(Path(__file__).resolve().parent / "cli"))
from cli_invoke import invoke  # noqa: E402 - autoal <args> in this process, a traceback fails


def _numeric_fields(cls, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    out = []
    for f in dataclasses.fields(cls):
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if sub is not None and dataclasses.is_dataclass(sub):
            out += _numeric_fields(sub, f"{prefix}{f.name}.")
        elif field_type(f)[0] in (int, float):
            out.append((f"{prefix}{f.name}", f))
    return out


def test_every_number_of_the_run_config_has_a_bound():
    fields = _numeric_fields(RunConfig)
    assert len(fields) >= 20
    assert [key for key, f in fields if bound_of(f) is None] == []


def test_every_packaged_option_lies_within_the_bounds():
    groups = config_groups()
    for group in ("train", "model", "al", "scoring", "runtime", "setting"):
        for option in groups[group]:
            run_config(compose([f"{group}={option}"]))  # raises if a packaged value is out of range


def _nested(key: str, value) -> dict:
    section, name = key.split(".")
    return {section: {name: value}}


#: (key, value, the range the message names, the value as the message shows it)
REFUSED = [
    ("train.lr", 1e300, "(0, 10]", "1e+300"),
    ("train.lr", 1e30, "(0, 10]", "1e+30"),
    ("train.lr", 0, "(0, 10]", "0.0"),
    ("train.weight_decay", 1e300, "[0, 1]", "1e+300"),
    ("train.weight_decay", -1, "[0, 1]", "-1.0"),
    ("train.momentum", -5, "[0, 1)", "-5.0"),
    ("train.momentum", 1, "[0, 1)", "1.0"),
    ("train.epochs", 0, "[1, 100000]", "0"),
    ("train.batch_size", 0, ">= 1", "0"),
    ("train.min_steps", -1, ">= 0 (0 = off)", "-1"),
    ("al.initial_size", 0, ">= 1", "0"),
    ("al.query_size", 0, ">= 1", "0"),
    ("al.rounds", -1, "[0, 100000]", "-1"),
    ("al.rounds", 10**400, "[0, 100000]", "an integer of 401 digits"),
    ("al.mc_samples", 10**6, "[0, 10000]", "1000000"),
    ("al.seed", 2**32, "[0, 4294967296)", "4294967296"),
    ("model.dropout", 1, "[0, 1)", "1.0"),
    ("model.width", 0, "[1, 1024]", "0"),
    ("scoring.num_actors", 0, ">= 1", "0"),
    ("scoring.batch_size", 0, ">= 1", "0"),
    ("scoring.gpus_per_actor", -0.5, ">= 0", "-0.5"),
    ("scoring.num_cpus", -1, ">= 0", "-1.0"),
    ("runtime.num_threads", 5000, "[0, 4096]", "5000"),
    ("dataset.train_size", 0, ">= 1", "0"),
    ("dataset.imbalance_ratio", 0.5, ">= 1", "0.5"),
    ("dataset.subset_seed", -1, ">= 0", "-1"),
]


@pytest.mark.parametrize("key, value, allowed, shown", REFUSED, ids=[f"{r[0]}={r[3]}" for r in REFUSED])
def test_an_out_of_range_number_is_one_config_error_naming_key_value_and_range(key, value, allowed, shown):
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict(_nested(key, value))
    msg = str(e.value)
    assert msg.startswith(f"{key}: must ") and allowed in msg and msg.endswith(f"got {shown}"), msg
    assert "\n" not in msg


def test_the_ends_of_the_ranges_are_accepted_and_a_config_built_by_hand_is_checked():
    cfg = RunConfig.from_dict(
        {
            "train": {"lr": 10, "momentum": 0, "weight_decay": 1},
            "model": {"dropout": 0},
            "al": {"rounds": 0, "seed": 2**32 - 1, "mc_samples": 0},
        }
    )
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.al.seed) == (10.0, 1.0, 2**32 - 1)
    for train in (TrainConfig(lr=float("inf")), TrainConfig(weight_decay=-1.0), TrainConfig(momentum="0.9")):
        with pytest.raises(ConfigError, match=r"^train\.(lr|weight_decay|momentum): "):
            RunConfig(train=train).validate()


# ------------------------------------------------------------------ the command line


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder (where the default run folders and mlflow.db would go), entered."""
    (tmp_path / "notes.txt").write_text("a user's file\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOAL_PROGRESS", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


ISSUE_OVERRIDES = [
    ("train.lr=1e300", "train.lr: must lie in (0, 10]; got 1e+300"),
    ("train.weight_decay=1e300", "train.weight_decay: must lie in [0, 1]; got 1e+300"),
    ("train.weight_decay=-1", "train.weight_decay: must lie in [0, 1]; got -1.0"),
    ("train.momentum=-5", "train.momentum: must lie in [0, 1); got -5.0"),
    ("train.lr=1e30", "train.lr: must lie in (0, 10]; got 1e+30"),
]


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
@pytest.mark.parametrize("override, line", ISSUE_OVERRIDES, ids=[o for o, _ in ISSUE_OVERRIDES])
def test_run_and_check_refuse_in_one_line_and_write_nothing(workdir, override, line, check):
    before = snapshot(workdir)
    code, out, err = invoke(["run", *(["--check"] if check else []), override])
    assert code == 2 and err == f"error: ConfigError: {line}\n" and not out, (code, out, err)
    assert snapshot(workdir) == before  # no run folder, no mlflow.db


# ------------------------------------------------------------------ training that diverges

#: SGD at lr 10 with weight decay 1 multiplies the weights by about -8 a step: on digits the
#: small CNN's loss is NaN after ~21 steps (every seed tried), so a round of 10 steps stays
#: finite and one of 100 steps diverges
DIVERGES = {"optimizer": "sgd", "lr": 10.0, "weight_decay": 1.0}


def test_train_model_raises_on_a_non_finite_loss():
    cfg = RunConfig.from_dict(
        {"train": {**DIVERGES, "epochs": 50}, "tracking": {"enabled": False}, "runtime": {"num_threads": 2}}
    )
    dataset = load_dataset(cfg.dataset)
    learner = Learner.from_config(cfg, dataset)
    with pytest.raises(
        TrainingDiverged,
        match=r"^training diverged: the training loss is nan in epoch \d+ of 50 "
        r"\(optimizer step \d+\); lower train\.lr \(now 10 ",
    ):
        learner.train(learner.new_model(0), np.arange(20), seed=0)
    sane = Learner.from_config(RunConfig.from_dict({"train": {"epochs": 50}, "tracking": {"enabled": False}}), dataset)
    assert np.isfinite(sane.train(sane.new_model(0), np.arange(20), seed=0)).all()


def test_a_diverging_round_is_an_error_and_the_state_stays_at_the_last_completed_round(tmp_path):
    cfg = RunConfig.from_dict(
        {
            "train": {**DIVERGES, "epochs": 5, "batch_size": 2},  # round 0: 4 labels, 10 steps; round 1: 40, 100
            "al": {"initial_size": 4, "query_size": 36, "rounds": 2, "mc_samples": 0},
            "strategy": {"name": "random"},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 2},
        }
    )
    saved: list[bytes] = []
    loop = ActiveLearningLoop(cfg, callbacks=[lambda rec: saved.append((loop.run_dir / "state.json").read_bytes())])
    with pytest.raises(
        TrainingDiverged,
        match=r"^round 1: training diverged: the training loss is nan in epoch 2 "
        r"of 5 .*; round 1 is not recorded \(rounds 0-0 stay saved\)$",
    ):
        loop.run()
    state_file = loop.run_dir / "state.json"
    assert len(saved) == 1 and state_file.read_bytes() == saved[0]  # the state written after round 0, untouched
    state = json.loads(saved[0])
    assert state["next_round"] == 1 and not state["finished"] and [h["round"] for h in state["history"]] == [0]
    assert len(state["labeled"]) == 40 and not (loop.run_dir / "rounds" / "round_001.json").exists()
    # resuming runs round 1 again from the saved state, and diverges the same way
    with pytest.raises(TrainingDiverged, match=r"^round 1: "):
        ActiveLearningLoop(cfg).run()
    assert state_file.read_bytes() == saved[0]


def test_the_command_prints_one_line_and_exits_2_when_training_diverges(workdir):
    code, out, err = invoke(
        [
            "run",
            "train.optimizer=sgd",
            "train.lr=10",
            "train.weight_decay=1",
            "al.rounds=1",
            "al.mc_samples=0",
            "strategy=random",
            "tracking.enabled=false",
            "runtime.quiet=true",
            "runtime.num_threads=2",
        ]
    )
    assert code == 2 and not out, (code, out, err)
    assert err.startswith("error: TrainingDiverged: round 0: training diverged: the training loss is nan in epoch ")
    assert err.count("\n") == 1 and "lower train.lr (now 10" in err and "no round was saved" in err, err
    (run_dir,) = (workdir / "runs").iterdir()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["next_round"] == 0 and state["history"] == []
    assert not os.path.exists(workdir / "mlflow.db")


def test_choice_fields_are_checked_by_check_bounds():
    from dataclasses import dataclass

    from autoal.bounds import check_bounds, choice, choices_of

    @dataclass
    class P:
        optimizer: str = choice("sgd", ("sgd", "adam"), note="the search's optimizer")
        maybe: str | None = choice(None, ("a", "b"))

    check_bounds(P())
    check_bounds(P("adam", "b"))
    assert choices_of(__import__("dataclasses").fields(P)[0]) == ("sgd", "adam")
    with pytest.raises(
        ConfigError, match=r"^x\.optimizer: expected one of sgd, adam \(the search's optimizer\); got 'rmsprop'$"
    ):
        check_bounds(P("rmsprop"), "x.")
