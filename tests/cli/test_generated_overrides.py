"""Hostile input at the command line (issue 16), generated: ``key=value`` overrides built from
junk values (and raw junk text) thrown at the ``autoal`` command's entry points, in-process
through :func:`autoal.cli.main`, from an empty working folder. The properties:

- the command exits 0 or 2 — never a traceback, never another code; an exit of 2 prints exactly
  one line on stderr, ``error: <Type>: ...``, naming the override's key (or the override itself);
- a refused command changes no file: the working folder, where the run folders, the SQLite store,
  Ray's results and the reports would go, is byte-for-byte what it was;
- ``--check`` and the command itself refuse alike: for every value ``run --check`` refuses, the
  real ``run`` exits 2 with the same line and writes nothing (the accepted ones would train; the
  table in test_input_errors.py and the run tests cover those).

``run``/``sweep``/``ablation`` go through ``--check`` (it validates everything the command
validates before it starts Ray, reads data or writes a file); ``report`` and ``query`` run as
they are: in an empty folder there is no store to report on and no project to query, so each
must end in one line, whatever the value."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_invoke import invoke
from autoal.config import RunConfig
from autoal.platform.report import REPORT_OPTIONS
from autoal.platform.sweep import SweepSpec
from autoal.strategies.registry import strategy_defaults
from autoal.tracking import flatten

import dataclasses

RUN_KEYS = sorted(
    k
    for k in flatten(RunConfig().to_dict())
    if not k.startswith(("strategy.params", "dataset.options", "tracking.tags"))
)
#: (strategy group option, parameter) for the strategies that have parameters
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
SWEEP_KEYS = sorted(f"sweep.{f.name}" for f in dataclasses.fields(SweepSpec))
REPORT_KEYS = sorted(f"report.{k}" for k in REPORT_OPTIONS)
LABELING_KEYS = sorted(
    f"labeling.{k}"
    for k in ("images", "seed_csv", "classes", "image_size", "channels", "augmentation", "allow_partial")
)

# ------------------------------------------------------------------ values, in Hydra's syntax


def hydra_text(value) -> str:
    """``value`` written as an override's right-hand side (Hydra's grammar)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ",".join(hydra_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_text(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


PLAIN_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    PLAIN_TEXT,
)
VALUES = st.one_of(
    SCALARS.map(hydra_text),
    st.lists(SCALARS, max_size=3).map(hydra_text),
    st.dictionaries(IDENT, SCALARS, max_size=2).map(hydra_text),
    PLAIN_TEXT,  # raw text as typed: may break the override grammar, or interpolate ${...}
    st.sampled_from(
        [
            "${al.seed}",
            "${nope}",
            "${oc.env:AUTOAL_NO_SUCH_VAR}",
            "[",
            "{a:",
            "'x",
            "a,b",
            "/",
            "..",
            "~",
            "-1",
            "1e999",
            "0x10",
            "1_000",
            "' '",
        ]
    ),
)

# ------------------------------------------------------------------ running the command


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``, with a digest of each file's bytes."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        found[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """An empty working folder with one file a command could clobber, entered for the module."""
    root = tmp_path_factory.mktemp("cli-hostile")
    (root / "notes.txt").write_text("a user's file\n")
    old = os.getcwd()
    os.chdir(root)
    env = {k: os.environ.get(k) for k in ("AUTOAL_PROGRESS", "MLFLOW_TRACKING_URI")}
    os.environ["AUTOAL_PROGRESS"] = "0"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield root
    finally:
        os.chdir(old)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _names(key: str, override: str) -> tuple[str, ...]:
    """What a refusal of ``override`` may name: the override, its key, the key's section, or
    (for a group choice) the group."""
    bare = key.lstrip("+~")
    return (override, bare, bare.rsplit(".", 1)[0], bare.split(".")[0])


def assert_exit_ok_or_one_line(code: int, err: str, key: str, override: str) -> None:
    assert code in (0, 2), (override, code, err[-2000:])
    if code == 2:
        lines = err.strip("\n").split("\n")
        assert len(lines) == 1, (override, err)
        assert re.match(r"^error: [A-Za-z]+Error: ", lines[0]), (override, err)
        assert any(name and name in lines[0] for name in _names(key, override)), (override, lines[0])
        assert "Traceback" not in err


HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


# ------------------------------------------------------------------ the properties


def test_the_keys_cover_every_section():
    assert {k.split(".")[0] for k in RUN_KEYS} == {
        "dataset",
        "model",
        "train",
        "al",
        "strategy",
        "tracking",
        "scoring",
        "runtime",
        "setting",
    }
    assert len(RUN_KEYS) >= 40 and len(SWEEP_KEYS) >= 20 and len(STRATEGY_PARAMS) >= 20
    assert hydra_text([None, "a'b", float("nan")]) == "[null,'a\\'b',nan]"


@settings(max_examples=250, deadline=None, suppress_health_check=HEALTH)
@given(key=st.sampled_from(RUN_KEYS), value=VALUES)
def test_run_refuses_any_value_in_one_line_and_writes_nothing(workdir, key, value):
    override = f"{key}={value}"
    before = snapshot(workdir)
    code, _, err = invoke(["run", "--check", override])
    assert_exit_ok_or_one_line(code, err, key, override)
    assert snapshot(workdir) == before, override
    if code == 2:  # the command itself refuses it alike, before any work
        code_run, out_run, err_run = invoke(["run", override])
        assert (code_run, err_run) == (2, err), (override, err, err_run, out_run[-500:])
        assert snapshot(workdir) == before, override


@settings(max_examples=120, deadline=None, suppress_health_check=HEALTH)
@given(pair=st.sampled_from(STRATEGY_PARAMS), value=VALUES)
def test_strategy_parameters_refuse_any_value_in_one_line(workdir, pair, value):
    name, param = pair
    key = f"strategy.params.{param}"
    override = f"{key}={value}"
    before = snapshot(workdir)
    code, _, err = invoke(["run", "--check", f"strategy={name}", override])
    assert_exit_ok_or_one_line(code, err, key, override)
    assert snapshot(workdir) == before, override


@settings(max_examples=80, deadline=None, suppress_health_check=HEALTH)
@given(option=st.sampled_from(["image_size", "test_fraction", "split_seed", "workers", "no_such_option"]), value=VALUES)
def test_dataset_options_refuse_any_value_in_one_line(workdir, option, value):
    key = f"dataset.options.{option}"
    override = f"+{key}={value}"
    before = snapshot(workdir)
    code, _, err = invoke(["run", "--check", "dataset=npz", "dataset.path=/nonexistent/data.npz", override])
    assert_exit_ok_or_one_line(code, err, key, override)
    assert snapshot(workdir) == before, override


@settings(max_examples=120, deadline=None, suppress_health_check=HEALTH)
@given(
    command=st.sampled_from([["sweep"], ["ablation", "ablation=fig3"], ["run", "-m", "strategy=margin,entropy"]]),
    key=st.sampled_from(SWEEP_KEYS + ["al.seed", "al.rounds", "train.lr"]),
    value=VALUES,
)
def test_sweeps_refuse_any_value_in_one_line_and_start_nothing(workdir, command, key, value):
    override = f"{key}={value}"
    if command[0] == "run" and key.startswith("sweep."):
        return  # -m builds its own sweep section from the comma-separated values
    before = snapshot(workdir)
    code, _, err = invoke([*command, "--check", override])
    assert_exit_ok_or_one_line(code, err, key, override)
    assert snapshot(workdir) == before, override


@settings(max_examples=80, deadline=None, suppress_health_check=HEALTH)
@given(key=st.sampled_from(REPORT_KEYS + ["tracking.uri", "tracking.experiment"]), value=VALUES)
def test_report_refuses_any_value_in_one_line_and_creates_no_store(workdir, key, value):
    override = f"{key}={value}"
    before = snapshot(workdir)
    code, out, err = invoke(["report", override])
    # an empty folder holds no store: nothing to report on, whatever the value; a valid value
    # gets to the store's check, which names tracking.uri
    assert code == 2, (override, out[-500:], err[-500:])
    named = key if key in err else "tracking.uri"
    assert_exit_ok_or_one_line(code, err, named, override)
    assert snapshot(workdir) == before, override


@settings(max_examples=80, deadline=None, suppress_health_check=HEALTH)
@given(
    sub=st.sampled_from(["export", "status", "discard"]),
    key=st.sampled_from(LABELING_KEYS + ["al.query_size", "strategy.name", "labeling.project"]),
    value=VALUES,
)
def test_query_refuses_any_value_in_one_line_and_creates_no_project(workdir, sub, key, value):
    override = f"{key}={value}"
    project = [] if key == "labeling.project" else ["labeling.project=proj"]
    images = ["labeling.images=/nonexistent/images"] if sub == "export" and key != "labeling.images" else []
    before = snapshot(workdir)
    code, out, err = invoke(["query", sub, *project, *images, override])
    # no project, no image folder: every command ends in one line, whatever the value; a valid
    # value gets to the missing project (or image folder), which the line names
    assert code == 2, (override, out[-500:], err[-500:])
    named = key if key in err or "no labeling project" not in err and "/nonexistent/images" not in err else "proj"
    assert_exit_ok_or_one_line(code, err, named if "/nonexistent" not in err else "/nonexistent/images", override)
    assert snapshot(workdir) == before, override


@settings(max_examples=60, deadline=None, suppress_health_check=HEALTH)
@given(
    args=st.lists(
        st.one_of(
            PLAIN_TEXT,
            st.sampled_from(
                [
                    "--cfg",
                    "-m",
                    "--check",
                    "--csv",
                    "--",
                    "-",
                    "=",
                    "run",
                    "query",
                    "--help=3",
                    "-x",
                    "--sweep",
                    "--resources",
                    "CPU=x",
                    "--base-dir",
                    "export",
                ]
            ),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_any_argument_list_ends_in_a_clear_exit(workdir, args):
    """Junk arguments to any command (or as the command): exit 0 (help, version, a check that
    passes) or 2 with one line; nothing written."""
    before = snapshot(workdir)
    for command in (["run", "--check"], ["sweep", "--check"], ["query"], ["report"], ["cluster-check"], []):
        if not command and args[0] in ("run", "sweep", "ablation", "query", "report", "cluster-check"):
            continue  # a real command with junk after it: covered by the rows with --check
        code, _, err = invoke([*command, *args])
        assert code in (0, 2), (command, args, err[-2000:])
        if code == 2:
            assert len(err.strip("\n").split("\n")) == 1 and err.startswith("error: "), (command, args, err)
        assert snapshot(workdir) == before, (command, args)


def test_check_accepts_the_readme_commands_and_writes_nothing(workdir):
    before = snapshot(workdir)
    code, out, err = invoke(["run", "--check", "dataset=digits", "strategy=autoal", "al.rounds=3"])
    assert code == 0 and out.startswith("config ok: digits · autoal · seed 0: 3 rounds"), err
    code, out, err = invoke(["sweep", "--check"])
    assert code == 0 and "5 arm(s) x 5 seed(s) = 25 trial(s)" in out, err
    code, out, err = invoke(["ablation", "--check", "ablation=fig4"])
    assert code == 0 and "sweep ok: fig4" in out, err
    assert snapshot(workdir) == before
    for command in (["run"], ["sweep"], ["ablation"], ["report"], ["query"], ["cluster-check"]):
        code, out, err = invoke([*command, "--help"])
        assert code == 0 and "autoal" in out and not err, (command, err)
    code, out, err = invoke(["run", "--check", "al.rounds=-3"])
    assert code == 2 and err.startswith("error: ConfigError: al.rounds"), err
    json.dumps(before)  # the snapshot is plain data (a failing comparison prints it)
