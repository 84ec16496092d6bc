"""The quality matrix as an autoal sweep (issue 21): named settings (conf/setting/) as a sweep axis,
more seeds for each setting's leaders (sweep.leaders), and the matrix report from the sweep's
MLflow runs or from JSON-lines files of runs (bench/reference/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoal.cli.common import compose, run_config
from autoal.errors import ConfigError
from autoal.platform.matrix import method_name
from autoal.platform.sweep import SweepSpec
from autoal.platform.sweep.arms import Arm, leader_arms, strategy_option

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "bench" / "reference" / "quality_runs_2026-11-30.jsonl"
RERUN = REPO / "bench" / "reference" / "quality_runs_paper_rerun_2026-11-30.jsonl"


# --------------------------------------------------------------------------- settings, leaders


@pytest.mark.parametrize(
    "setting, expect",
    [
        ("digits", {"dataset": "digits", "initial": 20, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 1.0}),
        ("mnist_low", {"dataset": "mnist", "initial": 20, "query": 20, "epochs": 30, "min_steps": 100, "ratio": 1.0}),
        (
            "mnist_high",
            {"dataset": "mnist", "initial": 100, "query": 100, "epochs": 10, "min_steps": 100, "ratio": 1.0},
        ),
        ("mnist_lt", {"dataset": "mnist", "initial": 50, "query": 50, "epochs": 20, "min_steps": 100, "ratio": 10.0}),
        ("mnist_lt50", {"dataset": "mnist", "initial": 50, "query": 50, "epochs": 20, "min_steps": 100, "ratio": 50.0}),
        (
            "mnist_lt_low",
            {"dataset": "mnist", "initial": 20, "query": 20, "epochs": 30, "min_steps": 100, "ratio": 10.0},
        ),
        ("digits_lt", {"dataset": "digits", "initial": 40, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 20.0}),
        ("digits_lt30", {"dataset": "digits", "initial": 30, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 30.0}),
        (
            "digits_lt_low",
            {"dataset": "digits", "initial": 20, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 10.0},
        ),
        (
            "mnist_lt20_low",
            {"dataset": "mnist", "initial": 20, "query": 20, "epochs": 30, "min_steps": 100, "ratio": 20.0},
        ),
        (
            "digits_lt5_low",
            {"dataset": "digits", "initial": 20, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 5.0},
        ),
        (
            "digits_lt3_low",
            {"dataset": "digits", "initial": 20, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 3.0},
        ),
        ("digits_b20", {"dataset": "digits", "initial": 20, "query": 20, "epochs": 50, "min_steps": 0, "ratio": 1.0}),
        (
            "digits_lt2_low",
            {"dataset": "digits", "initial": 20, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 2.0},
        ),
        ("digits_i10", {"dataset": "digits", "initial": 10, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 1.0}),
        (
            "digits_lt7_low",
            {"dataset": "digits", "initial": 20, "query": 10, "epochs": 50, "min_steps": 0, "ratio": 7.0},
        ),
        (
            "mnist_lt7_low",
            {"dataset": "mnist", "initial": 20, "query": 20, "epochs": 30, "min_steps": 100, "ratio": 7.0},
        ),
        (
            "mnist_lt15_low",
            {"dataset": "mnist", "initial": 20, "query": 20, "epochs": 30, "min_steps": 100, "ratio": 15.0},
        ),
        (
            "mnist_lt5_low",
            {"dataset": "mnist", "initial": 20, "query": 20, "epochs": 30, "min_steps": 100, "ratio": 5.0},
        ),
        (
            "mnist_lt100",
            {
                "dataset": "mnist",
                "initial": 40,
                "query": 40,
                "rounds": 8,
                "epochs": 15,
                "min_steps": 100,
                "ratio": 100.0,
            },
        ),
        (
            "mnist_lt20",
            {
                "dataset": "mnist",
                "initial": 30,
                "query": 30,
                "rounds": 8,
                "epochs": 15,
                "min_steps": 100,
                "ratio": 20.0,
            },
        ),
    ],
)
def test_a_setting_is_one_bundle_of_overrides(setting, expect):
    """The CPU settings of the quality matrix (once bench/quality.py's), composed; the command line still wins."""
    cfg = run_config(compose([f"setting={setting}", "strategy=entropy"]))
    assert cfg.setting.name == setting and cfg.dataset.name == expect["dataset"]
    rounds = expect.get("rounds", 10)
    assert (cfg.al.initial_size, cfg.al.query_size, cfg.al.rounds) == (expect["initial"], expect["query"], rounds)
    assert (cfg.train.epochs, cfg.train.min_steps) == (expect["epochs"], expect["min_steps"])
    assert cfg.dataset.imbalance_ratio == expect["ratio"] and cfg.model.name == "small_cnn"
    if expect["dataset"] == "mnist":
        pool = {"mnist_lt100": 4000, "mnist_lt20": 3000}.get(setting, 5000)
        assert (cfg.dataset.train_size, cfg.dataset.test_size) == (pool, 2000)
    over = run_config(compose([f"setting={setting}", "al.rounds=3", "train.epochs=2"]))
    assert over.al.rounds == 3 and over.train.epochs == 2


def test_the_gpu_setting_takes_a_fraction_of_a_gpu():
    from autoal.platform.sweep import plan_resources

    cfg = compose(["setting=gpu_mnist_resnet"])
    assert cfg["model"]["name"] == "resnet18" and cfg["setting"]["resources"] == {"CPU": 2, "GPU": 0.25}
    plan = plan_resources(cfg, None, {"CPU": 16, "GPU": 1})
    assert plan.bundles[0] == {"CPU": 2.0, "GPU": 0.25}
    # without a setting: one CPU per torch thread, a whole GPU where there are GPUs
    assert plan_resources(compose(["runtime.num_threads=2"]), None, {"CPU": 4}).bundles[0] == {"CPU": 2.0}


def _arm(setting: str, strategy: str) -> Arm:
    return Arm(
        f"setting={setting},strategy={strategy}",
        {"setting": setting, "strategy": strategy},
        {"strategy": {"name": strategy.replace("_paper", "")}},
    )


def test_leaders_are_the_top_arms_of_each_setting_and_the_named_strategies():
    arms = [_arm(s, m) for s in ("a", "b") for m in ("random", "margin", "kmeans", "autoal", "autoal_paper")]
    aubc = {
        ("a", "random"): [0.5, 0.6],
        ("a", "margin"): [0.8, 0.7],
        ("a", "kmeans"): [0.7, 0.7],
        ("b", "random"): [0.9, 0.9],
        ("b", "margin"): [0.1, 0.2],
        ("b", "kmeans"): [0.3],
        ("a", "autoal"): [0.1],
        ("b", "autoal"): [0.0],
    }
    trials = [
        {"arm": f"setting={s},strategy={m}", "status": "TERMINATED", "aubc": v}
        for (s, m), vs in aubc.items()
        for v in vs
    ]
    trials.append({"arm": "setting=b,strategy=margin", "status": "ERROR", "aubc": 0.99})  # not counted
    lead = leader_arms(arms, trials, top=2, always=["autoal", "autoal_paper"])
    assert [a.label for a in lead] == [
        "setting=a,strategy=margin",
        "setting=a,strategy=kmeans",
        "setting=a,strategy=autoal",
        "setting=a,strategy=autoal_paper",
        "setting=b,strategy=random",
        "setting=b,strategy=kmeans",
        "setting=b,strategy=autoal",
        "setting=b,strategy=autoal_paper",
    ]
    assert strategy_option(arms[-1]) == "autoal_paper"
    assert method_name("setting=b,strategy=autoal_paper", "b") == "autoal_paper"
    assert method_name("setting=b,strategy=autoal,tau=0.1", "b") == "strategy=autoal,tau=0.1"


@pytest.mark.parametrize(
    "leaders, match",
    [
        ({"top": -1, "seeds": 10}, "sweep.leaders.top"),
        ({"top": 3, "seeds": 3}, "sweep.leaders.seeds"),  # a count below sweep.seeds' 5
        ({"top": 3, "seeds": [4, 5]}, "sweep.leaders.seeds"),  # 4 is in sweep.seeds
        ({"top": 3, "seeds": 10, "always": "autoal"}, "sweep.leaders.always"),
        ({"tpo": 3}, "sweep.leaders"),
    ],
)
def test_bad_leaders_are_named(leaders, match):
    with pytest.raises(ConfigError, match=match.replace(".", "[.]")):
        SweepSpec.from_dict({"seeds": 5, "leaders": leaders})


def test_leader_seeds_as_a_count_are_the_next_unused_seeds():
    spec = SweepSpec.from_dict({"seeds": [0, 2, 4], "leaders": {"top": 1, "seeds": 6, "always": ["autoal"]}})
    assert spec.leaders == {"top": 1, "seeds": [1, 3, 5], "always": ["autoal"]}
    assert SweepSpec.from_dict({"seeds": 5, "leaders": {"top": 0, "seeds": 10}}).leaders == {}


def test_the_quality_sweep_composes_its_arms():
    from autoal.platform.sweep import build_arms

    cfg = compose([], "sweep")
    base = compose(["sweep=quality"], "sweep")
    spec = SweepSpec.from_dict(base.pop("sweep"))
    assert spec.seeds == [0, 1, 2, 3, 4] and spec.leaders["seeds"] == [5, 6, 7, 8, 9]

    def compose_fn(extra):
        return compose(["sweep=quality", *extra], "sweep")

    arms = build_arms(spec, base, compose_fn)
    assert len(arms) == len(spec.space["setting"]["grid"]) * len(spec.space["strategy"]["grid"]) and cfg
    assert "autoal_credit" in spec.leaders["always"] and "mnist_lt50" in spec.space["setting"]["grid"]
    by = {a.label: a for a in arms}
    lt = by["setting=mnist_lt,strategy=autoal_paper"].config
    assert lt["dataset"]["imbalance_ratio"] == 10 and lt["al"]["query_size"] == 50
    assert lt["strategy"]["params"]["formulation"] == "paper" and lt["setting"]["name"] == "mnist_lt"


# ---------------------------------------------------------------------------------- the report


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_worker_niceness")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", AUTOAL_PROGRESS="off")
    return env


def test_matrix_report_of_the_reference_runs_needs_no_store(tmp_path):
    """`autoal report report.runs_files=[...]`: the legacy runs (the paper formulation's re-run over
    the originals) give bench/README.md's figures; no MLflow store is read or created."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoal",
            "report",
            f"report.runs_files=[{REFERENCE},{RERUN}]",
            f"report.out_dir={tmp_path / 'rep'}",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert not (tmp_path / "mlflow.db").exists()
    md = (tmp_path / "rep" / "matrix.md").read_text()
    assert "| margin | 0.8809 (2) | **0.7871 (1)** | 0.9114 (3) | **0.8581 (1)** |" in md
    assert "autoal_paper" in md and "autoal[paper]" not in md
    assert "0.8772 ± 0.0019" in md  # the re-run replaced the original on digits
    records = [json.loads(x) for x in (tmp_path / "rep" / "matrix_runs.jsonl").read_text().splitlines()]
    assert len(records) == 220
    assert (tmp_path / "rep" / "quality_matrix.png").stat().st_size > 10_000
    bad = subprocess.run(
        [sys.executable, "-m", "autoal", "report", f"report.runs_files=[{tmp_path / 'nope.jsonl'}]"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "report.runs_files" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_matrix_records_carry_each_trials_learning_curve_in_round_order():
    import pandas as pd

    from autoal.platform.matrix_report import matrix_records

    trials = pd.DataFrame(
        [
            {"run_id": "a", "arm": "margin", "seed": 0, "status": "FINISHED", "setting": "digits", "aubc": 0.8,
             "final_accuracy": 0.9, "method": "margin"},
            {"run_id": "b", "arm": "entropy", "seed": 0, "status": "FINISHED", "setting": "digits", "aubc": 0.7,
             "final_accuracy": 0.85, "method": "entropy"},
        ]
    )  # fmt: skip
    rounds = pd.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b"],
            "round": [2, 0, 1, 0, 1],
            "labels": [40, 20, 30, 20, float("nan")],
            "accuracy": [0.9, 0.5, 0.7, 0.4, 0.85],
        }
    )
    a, b = matrix_records(trials, rounds)
    assert (a["labels"], a["accuracy"]) == ([20, 30, 40], [0.5, 0.7, 0.9])
    assert (b["labels"], b["accuracy"]) == ([20], [0.4])  # a round without its label count is left out
    assert "labels" not in matrix_records(trials)[0]  # no per-round table, no curve


@pytest.mark.slow
def test_quality_smoke_sweep_runs_leaders_and_reports_the_matrix(tmp_path):
    """`autoal sweep sweep=quality_smoke`: 2 settings x 3 strategies x 2 seeds, then a third seed
    for each setting's best single strategy and AutoAL; every trial an MLflow run tagged with its
    setting and method; the report's matrix section (tables, heat map, run-time split)."""
    out = subprocess.run(
        [sys.executable, "-m", "autoal", "sweep", "sweep=quality_smoke", "sweep.address=local"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    assert "leaders: 4 arm(s) x 1 more seed(s)" in out.stdout, out.stdout[-3000:]
    (rep,) = (tmp_path / "runs" / "reports").iterdir()
    records = [json.loads(x) for x in (rep / "matrix_runs.jsonl").read_text().splitlines()]
    assert len(records) == 16
    seeds = {}
    for r in records:
        seeds.setdefault((r["setting"], r["method"]), set()).add(r["seed"])
        assert r["long_tailed"] == (r["setting"] == "mnist_lt")
        assert r["seconds_train"] > 0 and r["seconds_overhead"] >= 0
        # the learning curve: one point per round, labels growing, ending at the final accuracy
        assert len(r["labels"]) == len(r["accuracy"]) >= 2 and r["labels"] == sorted(set(r["labels"]))
        assert r["accuracy"][-1] == pytest.approx(r["final_accuracy"])
    assert seeds[("digits", "autoal")] == seeds[("mnist_lt", "autoal")] == {0, 1, 2}
    three = [k for k, v in seeds.items() if v == {0, 1, 2} and k[1] != "autoal"]
    assert sorted(s for s, _ in three) == ["digits", "mnist_lt"]  # one leader per setting
    report = (rep / "report.md").read_text()
    assert "## Quality matrix" in report and "### mnist_lt" in report and "final bal. acc" in report
    assert (rep / "quality_matrix.png").stat().st_size > 5_000 and (rep / "runtime_split.png").stat().st_size > 5_000

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("autoal")
    runs = client.search_runs([exp.experiment_id], "tags.autoal_role = 'trial'")
    assert len(runs) == 16
    assert {(r.data.tags["setting"], r.data.tags["method"]) for r in runs} == set(seeds)


def _trial_states(runs: Path, seeds: tuple[int, ...]) -> dict[Path, int]:
    """state.json -> mtime (ns) of the sweep's trial folders of ``seeds``."""
    return {p: p.stat().st_mtime_ns for s in seeds for p in runs.glob(f"*-seed{s}-*/state.json")}


@pytest.mark.slow
def test_quality_smoke_sweep_resumes_after_ctrl_c_in_the_leaders_stage(tmp_path):
    """Ctrl-C once a leaders-stage trial (seed 2) has started: exit 130 with the resume command;
    `sweep.resume=true` then restores the leaders' Tune experiment with the same leaders, reruns no
    first-stage trial, and ends with 16 MLflow trial runs, all FINISHED (the interrupted trial's run
    reopened, not doubled), and the matrix report."""
    import re
    import signal
    import threading
    import time

    env = _env()
    env.pop("AUTOAL_SWEEP_STORAGE", None)
    args = [sys.executable, "-m", "autoal", "sweep", "sweep=quality_smoke", "sweep.address=local"]
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []

    def read() -> None:  # drain the pipe while the sweep runs (the test polls the run folders meanwhile)
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sweep_id = None
    try:
        deadline = time.time() + 900
        while time.time() < deadline and proc.poll() is None:
            m = next(
                (re.search(r"\[(quality_smoke-[^\]]+)\] leaders:", x) for x in list(lines) if " leaders: " in x), None
            )
            if (
                m
                and (tmp_path / "runs" / "sweeps" / m.group(1)).is_dir()
                and _trial_states(tmp_path / "runs" / "sweeps" / m.group(1), (2,))
            ):
                sweep_id = m.group(1)  # a leader trial has its MLflow run and state: interrupt it now
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.2)
        proc.wait(timeout=300)
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = "".join(lines)
    assert sweep_id is not None, text[-4000:]
    assert proc.returncode == 130, text[-4000:]
    # Tune caught the SIGINT and ended its run: the CLI names the sweep to resume
    resume_line = f"interrupted: continue with  autoal sweep {' '.join(args[4:])} sweep.resume={sweep_id}"
    assert resume_line in text, text[-3000:]
    exp = tmp_path / "ray_results" / sweep_id
    leaders = json.loads((exp / "sweep_meta.json").read_text())["leaders"]
    assert len(leaders) == 4 and (tmp_path / "ray_results" / f"{sweep_id}-leaders").is_dir()
    runs = tmp_path / "runs" / "sweeps" / sweep_id
    first = _trial_states(runs, (0, 1))
    assert len(first) == 12
    done2 = [p for p in _trial_states(runs, (2,)) if json.loads(p.read_text()).get("finished")]
    assert len(done2) < 4  # the leaders' stage was interrupted, not finished

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    eid = client.get_experiment_by_name("autoal").experiment_id

    def sweep_runs(role: str) -> list:
        return client.search_runs([eid], f"tags.sweep_id = '{sweep_id}' and tags.autoal_role = '{role}'")

    cut = {r.info.run_id: r.info.status for r in sweep_runs("trial") if r.data.tags["seed"] == "2"}
    # a leader trial's run was cut short (the loop ends it FAILED when Tune stops its trial)
    assert any(st != "FINISHED" for st in cut.values()), cut
    assert [r.info.status for r in sweep_runs("sweep")] == ["KILLED"]

    out = subprocess.run(
        args + ["sweep.resume=true"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    assert f"[{sweep_id}] resuming from" in out.stdout
    # the leaders' trials that had not started are counted by the status line, not listed by Tune
    # one warning each ("Failed to fetch metrics ... FileNotFoundError")
    assert "Failed to fetch metrics" not in out.stdout + out.stderr, out.stderr[-3000:]
    assert f"[{sweep_id}] leaders: 4 arm(s) x 1 more seed(s): {', '.join(leaders)}" in out.stdout, out.stdout[-3000:]
    assert json.loads((exp / "sweep_meta.json").read_text())["leaders"] == leaders
    assert _trial_states(runs, (0, 1)) == first, "a first-stage trial was rerun"
    assert len(_trial_states(runs, (2,))) == 4  # the restored trials kept their ids (and run folders)
    assert "16/16 trials finished" in out.stdout, out.stdout[-3000:]
    (rep,) = (tmp_path / "runs" / "reports").iterdir()
    assert len((rep / "matrix_runs.jsonl").read_text().splitlines()) == 16
    trials = sweep_runs("trial")
    assert len(trials) == 16, [(r.data.tags["arm"], r.data.tags["seed"], r.info.status) for r in trials]
    assert {r.info.status for r in trials} == {"FINISHED"}
    assert len({(r.data.tags["arm"], r.data.tags["seed"]) for r in trials}) == 16
    assert {r.data.tags["arm"] for r in trials if r.data.tags["seed"] == "2"} == set(leaders)
    assert set(cut) <= {r.info.run_id for r in trials}  # the interrupted trials' runs reopened, not replaced
    assert [r.info.status for r in sweep_runs("sweep")] == ["FINISHED"]  # the same parent run, ended
