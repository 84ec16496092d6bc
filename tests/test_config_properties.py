"""Hostile input, round two (issue 16), property-based: generated values at every config key and
strategy parameter, generated damage at every persistent file (a run's state.json, a labeling
project's labels.json, a sweep's sweep_meta.json). The properties:

- a config value is accepted or refused with a ConfigError whose one-line message names the
  key; never another exception (no TypeError, OverflowError, ... from deep inside);
- a damaged state file is read back as a valid state or refused with a StateError naming the
  file; reading never changes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import sys

import numpy as np

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoal.config import RunConfig
from autoal.errors import ConfigError, StateError
from autoal.state import RunState
from autoal.strategies import build_strategy
from autoal.strategies.registry import strategy_defaults
from autoal.tracking import flatten

sys.path.insert(0, str(Path(__file__).resolve().parent / "cli"))
from cli_invoke import nested as _nested  # noqa: E402 - the table's helper: a dotted key as a nested mapping

# every leaf key of the run config (strategy params and dataset options come separately)
CONFIG_KEYS = sorted(
    k
    for k in flatten(RunConfig().to_dict())
    if not k.startswith(("strategy.params", "dataset.options", "tracking.tags"))
)

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def test_the_key_list_covers_every_section():
    sections = {k.split(".")[0] for k in CONFIG_KEYS}
    assert sections == {"dataset", "model", "train", "al", "strategy", "tracking", "scoring", "runtime", "setting"}
    assert len(CONFIG_KEYS) >= 40


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(CONFIG_KEYS), value=JUNK)
def test_any_value_at_any_config_key_is_accepted_or_named(key, value):
    try:
        cfg = RunConfig.from_dict(_nested(key, value))
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message and message.startswith(key.rsplit(".", 1)[0]), (key, value, message)
        return
    # accepted: then the value is one the field can hold (numbers finite, no null where not allowed)
    got = cfg.to_dict()
    for part in key.split("."):
        got = got[part]
    if isinstance(got, float):
        assert math.isfinite(got), (key, value)


STRATEGY_PARAMS = sorted(
    {
        (name, p)
        for name in (
            "autoal",
            "kmeans",
            "coreset",
            "badge",
            "typiclust",
            "lpl",
            "vaal",
            "ens_var_r",
            "ddu",
            "albl",
            "cluster_margin",
        )
        for p in strategy_defaults(name)
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=st.sampled_from(STRATEGY_PARAMS), value=JUNK)
def test_any_value_at_any_strategy_parameter_is_accepted_or_named(pair, value):
    name, param = pair
    try:
        build_strategy(name, **{param: value})
    except ConfigError as e:
        assert "\n" not in str(e) and (param in str(e) or f"strategy ({name})" in str(e)), (pair, value, str(e))


# ------------------------------------------------------------------ damaged persistent files


def _valid_state() -> dict:
    return {
        "fingerprint": "abc",
        "next_round": 2,
        "labeled": [4, 7, 9, 1, 3],
        "labeled_round": [0, 0, 0, 1, 1],
        "history": [{"round": 0, "labels": 3, "accuracy": 0.5}, {"round": 1, "labels": 5, "accuracy": 0.6}],
        "tracking_run_id": None,
        "logged_rounds": 2,
        "rng_state": {},
        "finished": False,
        "data": {},
        "model": {},
    }


def _damage(d: dict, draw) -> str:
    """One kind of damage: a field removed, a field replaced, a history record's field replaced,
    or the text cut short."""
    kind = draw(st.sampled_from(["drop", "replace", "record", "truncate"]))
    d = json.loads(json.dumps(d))
    if kind == "drop":
        d.pop(draw(st.sampled_from(sorted(d))))
    elif kind == "replace":
        d[draw(st.sampled_from(sorted(d)))] = draw(JUNK)
    elif kind == "record" and d.get("history"):
        rec = d["history"][draw(st.integers(0, len(d["history"]) - 1))]
        rec[draw(st.sampled_from(sorted(rec) + ["labels"]))] = draw(JUNK)
    text = json.dumps(d, allow_nan=True)
    if kind == "truncate":
        text = text[: draw(st.integers(0, len(text) - 1))]
    return text


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_damaged_run_state_is_refused_naming_the_file_and_left_alone(tmp_path, data):
    text = _damage(_valid_state(), data.draw)
    path = tmp_path / "state.json"
    path.write_text(text)
    try:
        state = RunState.load(tmp_path)
    except StateError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:  # accepted: then it is a state the loop can use
        assert state is not None and isinstance(state.next_round, int) and len(state.history) == state.next_round
        for h in state.history:
            assert math.isfinite(float(h["labels"])) and 0 <= float(h["accuracy"]) <= 1
    assert path.read_text() == text


def _valid_labeling_state(project: Path) -> dict:
    return {
        "version": 1,
        "images": "/data/img",
        "classes": ["a", "b"],
        "pool": ["x.png", "y.png", "z.png"],
        "labeled": [
            {"sample_id": 0, "file": "x.png", "label": "a", "round": 0},
            {"sample_id": 1, "file": "y.png", "label": "b", "round": 0},
        ],
        "next_round": 1,
        "rounds": [{"round": 0}],
        "pending": {
            "round": 1,
            "csv": str(project / "batches" / "round_001.csv"),
            "sample_ids": [2],
            "scores": [1.0],
            "predicted": ["a"],
            "strategy": "margin",
        },
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_labeling_state_check_names_the_problem_and_never_raises(data):
    from autoal.labeling.config import STATE_VERSION
    from autoal.labeling.state import state_problem as _state_problem

    project = Path("/projects/p")
    good = _valid_labeling_state(project)
    good["version"] = STATE_VERSION
    assert _state_problem(good, project) is None
    text = _damage(good, data.draw)
    try:
        st_ = json.loads(text)
    except ValueError:
        return  # unreadable JSON is refused by load_state before the check (tested in labeling/test_project.py)
    problem = _state_problem(st_, project)
    assert problem is None or isinstance(problem, str)


def test_a_pending_batch_path_cannot_send_a_write_outside_the_project(tmp_path):
    """labels.json's pending csv pointing elsewhere: export re-writes the batch file inside the
    project (the path is derived from the round), never at the stored path."""
    from labeling_images import make_images

    from autoal.labeling import LabelingConfig, LabelingProject

    images, project = tmp_path / "images", tmp_path / "project"
    make_images(images)
    cfg = RunConfig.from_dict(
        {
            "al": {"query_size": 4, "mc_samples": 2},
            "train": {"epochs": 2, "batch_size": 16},
            "tracking": {"enabled": False},
            "runtime": {"quiet": True, "num_threads": 2},
        }
    )
    lab = LabelingConfig.from_dict({"images": str(images), "project": str(project), "image_size": 8})
    first = LabelingProject(cfg, lab).export_batch()
    state_file = project / "labels.json"
    st_ = json.loads(state_file.read_text())
    elsewhere = tmp_path / "outside" / "stolen.csv"
    st_["pending"]["csv"] = str(elsewhere)
    state_file.write_text(json.dumps(st_))
    first.csv.unlink()  # the batch file is gone: export writes it again
    again = LabelingProject(cfg, lab).export_batch()
    assert again.already_pending and again.csv == first.csv and first.csv.exists()
    assert not elsewhere.exists() and not elsewhere.parent.exists()


@pytest.mark.parametrize(
    "text, field",
    [
        ("{", "unreadable"),
        ("[]", "JSON object"),
        ('{"sweep_id": "s"}', "'name'"),
        ('{"sweep_id": "s", "name": "n", "spec": {}, "arms": [1], "base": {}}', "arms[0]"),
    ],
)
def test_a_damaged_sweep_meta_is_refused_naming_the_file(tmp_path, text, field):
    from autoal.platform.sweep.driver import read_meta

    (tmp_path / "sweep_meta.json").write_text(text)
    with pytest.raises(StateError) as info:
        read_meta(str(tmp_path))
    assert "sweep_meta.json" in str(info.value) and field in str(info.value)
    assert (tmp_path / "sweep_meta.json").read_text() == text


def test_a_state_contradicting_its_config_is_refused(tmp_path):
    """state.json with the right fingerprint but counts another config would make: refused,
    not reported."""
    from autoal.loop import ActiveLearningLoop, run_experiment

    cfg = RunConfig.from_dict(
        {
            "al": {"rounds": 1, "mc_samples": 2},
            "train": {"epochs": 2},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": True},
        }
    )
    r = run_experiment(cfg)
    path = r.run_dir / "state.json"
    d = json.loads(path.read_text())
    d["labeled_round"] = [0] * (len(d["labeled"]) - 5) + [1] * 5  # round 1 added 5, not al.query_size (10)
    d["history"][0]["labels"] = len(d["labeled"]) - 5  # the records agree with labeled_round: well-formed
    d["history"][1]["labels"] = len(d["labeled"])
    path.write_text(json.dumps(d))
    before = path.read_bytes()
    with pytest.raises(StateError, match=r"contradicts the run's config: the initial set holds 25 samples"):
        ActiveLearningLoop(cfg).run()
    assert path.read_bytes() == before


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    """Huge PNGs of a few hundred KB on disk: 9000 x 9000 (81 megapixels, above autoal's limit,
    below PIL's) is refused from its header by autoal; 15000 x 15000 (225 megapixels) by PIL at
    open. Both are a DataError naming the file, before anything is decoded."""
    import struct
    import zlib

    from autoal.data.files import MAX_IMAGE_PIXELS, load_image_files
    from autoal.errors import DataError

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    def png(side: int) -> bytes:
        raw = zlib.compress((b"\x00" * (side + 1)) * side, 9)  # filter byte + one grey byte per pixel
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw)
            + chunk(b"IEND", b"")
        )

    for side, pattern in (
        (9000, r"big.png is 9000x9000 = 81,000,000 pixels; autoal decodes at most 50,000,000"),
        (15000, r"huge.png is too large to decode"),
    ):
        path = tmp_path / ("big.png" if side == 9000 else "huge.png")
        path.write_bytes(png(side))
        assert side * side > MAX_IMAGE_PIXELS
        with pytest.raises(DataError, match=pattern):
            load_image_files([path], size=8, channels=1, desc="test")


def test_stores_that_cannot_work_are_named_at_once(tmp_path):
    """A SQLite URI naming a folder (MLflow would retry for minutes), a deleted experiment."""
    import time

    from mlflow.tracking import MlflowClient

    from autoal.errors import TrackingError
    from autoal.tracking import check_tracking_uri, ensure_experiment

    folder = tmp_path / "store"
    folder.mkdir()
    t0 = time.time()
    with pytest.raises(TrackingError, match=r"the SQLite store .*store is a folder"):
        check_tracking_uri(f"sqlite:///{folder}")
    assert time.time() - t0 < 5
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    exp = ensure_experiment(uri, "gone")
    MlflowClient(uri).delete_experiment(exp)
    with pytest.raises(TrackingError, match=r"experiment 'gone' .* was deleted; restore it"):
        ensure_experiment(uri, "gone")


def test_a_run_killed_between_creating_its_mlflow_run_and_saving_the_id_adopts_it(tmp_path):
    """The MLflow run exists (RUNNING, tagged with the run folder) but state.json never got its
    id: the resumed run adopts it instead of leaving an orphan beside a second run."""
    from mlflow.tracking import MlflowClient

    from autoal.loop import run_dir_for, run_experiment
    from autoal.tracking import ensure_experiment

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = RunConfig.from_dict(
        {
            "al": {"rounds": 1, "mc_samples": 2},
            "train": {"epochs": 2},
            "tracking": {"uri": uri, "experiment": "adopt", "log_model": False},
            "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True},
        }
    )
    client = MlflowClient(uri)
    exp = ensure_experiment(uri, "adopt")
    orphan = client.create_run(exp, tags={"autoal.run_dir": str(run_dir_for(cfg))}).info.run_id
    r = run_experiment(cfg)
    assert r.tracking_run_id == orphan
    runs = client.search_runs([exp])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_an_oversized_label_cell_is_a_named_error(tmp_path):
    from autoal.errors import LabelFileError
    from autoal.labeling.files import read_csv

    raw = ("sample_id,label\n1," + "x" * 200_000 + "\n").encode()
    reader, _ = read_csv(tmp_path / "b.csv", raw, required=("sample_id", "label"))
    with pytest.raises(LabelFileError, match=r"b.csv: row 2: not a CSV row \(field larger than field limit"):
        list(reader)


def test_dataset_root_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "root.txt"
    f.write_text("x")
    with pytest.raises(ConfigError, match=r"dataset.root: .*root.txt is a file"):
        RunConfig.from_dict({"dataset": {"root": str(f)}})


def test_a_second_first_export_of_one_project_is_refused_not_raced(tmp_path):
    """Two concurrent first exports: the first holds the project's lock (taken as soon as the
    folder exists), the second is refused and writes nothing."""
    import os

    from labeling_images import make_images

    from autoal.labeling import LabelingConfig, LabelingProject
    from autoal.state import lock_folder

    images, project = tmp_path / "images", tmp_path / "project"
    make_images(images)
    project.mkdir()
    held = lock_folder(project)  # the other export, mid-way
    try:
        cfg = RunConfig.from_dict(
            {
                "al": {"query_size": 4, "mc_samples": 2},
                "train": {"epochs": 2},
                "tracking": {"enabled": False},
                "runtime": {"quiet": True},
            }
        )
        lab = LabelingConfig.from_dict({"images": str(images), "project": str(project), "image_size": 8})
        with pytest.raises(StateError, match="another process"):
            LabelingProject(cfg, lab).export_batch()
        assert list(project.iterdir()) == []
    finally:
        os.close(held)
    missing = tmp_path / "never"
    bad = LabelingConfig.from_dict({"images": str(tmp_path / "no-images"), "project": str(missing), "image_size": 8})
    from autoal.errors import DataError

    with pytest.raises(DataError, match="labeling.images: folder .*no-images does not exist"):
        LabelingProject(cfg, bad).export_batch()
    assert not missing.exists()  # a refused first export leaves no empty project folder


def test_a_report_folder_cannot_escape_through_the_sweep_id():
    from autoal.errors import TrackingError
    from autoal.platform.report import report_id_for

    assert report_id_for("lam-20261130-010203-ab12", None, "autoal") == "lam-20261130-010203-ab12"
    for bad in ("../../escape", "/abs", ".."):
        with pytest.raises(TrackingError, match="report.sweep_id: expected a sweep id"):
            report_id_for(bad, None, "autoal")


def test_concurrent_first_starts_create_one_store_and_one_experiment(tmp_path):
    """Four processes create the same fresh SQLite store and experiment at once (four `autoal run`
    started together): one experiment, every process gets its id, nobody fails."""
    import subprocess
    import sys as _sys

    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys; from autoal.tracking import ensure_experiment; print(ensure_experiment(sys.argv[1], 'together'))"
    )
    procs = [
        subprocess.Popen([_sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-800:] for _, e in outs]
    ids = {o.strip().splitlines()[-1] for o, _ in outs}
    assert len(ids) == 1
    from mlflow.tracking import MlflowClient

    assert [e.name for e in MlflowClient(uri).search_experiments() if e.name == "together"] == ["together"]


def test_an_image_name_that_is_not_utf8_is_named_before_a_project_exists(tmp_path):
    """A file name with undecodable bytes among the images: a LabelFileError naming it, before
    any project state is written (it used to fail in export with a UnicodeEncodeError)."""
    import os

    from labeling_images import make_images

    from autoal.errors import LabelFileError
    from autoal.labeling import LabelingConfig, LabelingProject

    images, project = tmp_path / "images", tmp_path / "project"
    make_images(images)
    unlabeled = next(p for p in images.rglob("*.png") if "unlabeled" in p.parts)
    os.rename(unlabeled, os.path.join(os.fsencode(unlabeled.parent), b"caf\xe9.png"))
    cfg = RunConfig.from_dict(
        {
            "al": {"query_size": 4, "mc_samples": 2},
            "train": {"epochs": 2},
            "tracking": {"enabled": False},
            "runtime": {"quiet": True},
        }
    )
    lab = LabelingConfig.from_dict({"images": str(images), "project": str(project), "image_size": 8})
    with pytest.raises(LabelFileError, match=r"image file name b'caf\\xe9.png' is not valid UTF-8"):
        LabelingProject(cfg, lab).export_batch()
    assert not (project / "labels.json").exists()


# ------------------------------------------------------------------ damaged strategy state

STATEFUL = {
    "autoal": {},
    "autoal_paper": {"formulation": "paper", "warmup_epochs": 1, "search_epochs": 1},
    "albl": {},
    "lpl": {"warm_start": True, "epochs": 1},
}


class _StopAfterRoundZero(Exception):
    pass


class _Checkpoints(dict):
    """key -> (run folder, state); a short repr for Hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<strategy checkpoints of {', '.join(sorted(self))}>"


def _stop_after_round_zero(record: dict) -> None:
    raise _StopAfterRoundZero


def _stateful_config(key: str, root: Path) -> RunConfig:
    return RunConfig.from_dict(
        {
            "dataset": {"name": "digits"},
            "al": {"rounds": 2, "initial_size": 30},
            "train": {"epochs": 2, "min_steps": 0},
            "strategy": {"name": key.split("_")[0], "params": STATEFUL[key]},
            "tracking": {"enabled": False},
            "model": {"name": "small_cnn"},
            "runtime": {"output_dir": str(root), "quiet": True},
        }
    )


@pytest.fixture(scope="module")
def strategy_checkpoints(tmp_path_factory):
    """Real strategy checkpoints (AutoAL's look-ahead with its gate and FitNet; the paper
    formulation's SearchNet, FitNet, LPM and optimizers; ALBL; LPL with warm start): a run of
    two rounds each on digits, stopped after round 0 (as a crash would), with the checkpoint
    round 1 reads. Returns key -> (run folder, state)."""
    import torch

    from autoal.loop import run_dir_for, run_experiment
    from autoal.state import checkpoint_path

    found = _Checkpoints()
    for key in STATEFUL:
        cfg = _stateful_config(key, tmp_path_factory.mktemp(key))
        with pytest.raises(_StopAfterRoundZero):
            run_experiment(cfg, callbacks=[_stop_after_round_zero])
        run_dir = run_dir_for(cfg)
        state = torch.load(checkpoint_path(run_dir, "strategy", 1), weights_only=True)  # plain: issue 23
        assert state, key  # a state worth damaging
        found[key] = (run_dir, state)
    return found


def _damage_state(state, draw):
    """One random change to a (nested) strategy state: a value replaced with junk, a key
    removed, a tensor reshaped, or the whole state replaced."""
    import copy

    import torch

    junk = st.one_of(
        JUNK,
        st.just(torch.zeros(3)),
        st.just(torch.full((2, 2), float("nan"))),
        st.just(np.zeros(2)),
        st.just({"weight": torch.zeros(1)}),
    )
    if draw(st.integers(0, 9)) == 0:
        return draw(junk)
    state = copy.deepcopy(state)
    node, path = state, []
    while True:  # walk down a random path of mappings
        keys = sorted(node, key=str) if isinstance(node, dict) else []
        if not keys:
            break
        k = draw(st.sampled_from(keys))
        if not isinstance(node[k], dict) or not node[k] or draw(st.booleans()):
            path.append(k)
            break
        node = node[k]
        path.append(k)
    if not isinstance(node, dict) or not path:
        return state
    leaf = path[-1]
    action = draw(st.sampled_from(["junk", "delete", "reshape"]))
    if action == "delete":
        del node[leaf]
    elif action == "reshape" and isinstance(node[leaf], torch.Tensor) and node[leaf].numel() > 1:
        node[leaf] = node[leaf].flatten()[:-1].clone()
    else:
        node[leaf] = draw(junk)
    return state


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_damaged_strategy_state_is_refused_naming_the_file(strategy_checkpoints, tmp_path, data):
    """A checkpoint of the right strategy with damaged content is refused on load with a
    StateError naming the file, or accepted; what is accepted never fails later as anything but
    a StateError (the parts applied once the networks exist are applied here, as a round would)."""
    import torch

    from autoal.loop import load_strategy_state

    key = data.draw(st.sampled_from(sorted(strategy_checkpoints)))
    damaged = _damage_state(strategy_checkpoints[key][1], data.draw)
    path = tmp_path / f"{key}.pt"
    torch.save(damaged, path)
    before = path.read_bytes()
    strategy = build_strategy(key.split("_")[0], **STATEFUL[key])
    try:
        load_strategy_state(strategy, path)
    except StateError as e:
        assert str(path) in str(e) and "\n" not in str(e), str(e)
    assert path.read_bytes() == before


def _shrink_a_weight(state: dict) -> str:
    """Replace the first 2-D+ tensor found in ``state`` (depth first) by one of another shape;
    return its key."""
    import torch

    for k, v in state.items():
        if isinstance(v, dict):
            found = _shrink_a_weight(v)
            if found:
                return f"{k}.{found}"
        elif isinstance(v, torch.Tensor) and v.ndim >= 2:
            state[k] = torch.zeros(1, 1)
            return k
    return ""


@pytest.mark.parametrize("key, part", [("autoal", "FitNet"), ("autoal_paper", "SearchNet"), ("lpl", "LPL task model")])
def test_a_strategy_state_that_does_not_fit_its_networks_fails_as_a_state_error(
    strategy_checkpoints, tmp_path, key, part
):
    """The parts a strategy applies once its networks exist (FitNet's weights in the look-ahead,
    the paper's SearchNet, LPL's warm-start model) fail as a StateError naming the part when the
    resumed round applies them, not as torch's RuntimeError."""
    import copy
    import shutil

    import torch

    from autoal.loop import run_experiment
    from autoal.state import checkpoint_path

    run_dir, state = strategy_checkpoints[key]
    state = copy.deepcopy(state)
    damaged = _shrink_a_weight(
        state["lookahead"]["fitnet"]
        if key == "autoal"
        else state["searchnet"]
        if key == "autoal_paper"
        else state["saved"]["model"]
    )
    assert damaged
    cfg = _stateful_config(key, tmp_path)
    copy_dir = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy_dir)
    torch.save(state, checkpoint_path(copy_dir, "strategy", 1))
    with pytest.raises(StateError, match=rf"^the saved {part} does not fit \(RuntimeError: .*move the run folder"):
        run_experiment(cfg)
