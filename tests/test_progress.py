"""Progress: bars on a terminal, one line per round in a log (never a carriage return), silence
with ``runtime.quiet``; the long steps of AutoAL (both formulations), VAAL, LPL and ENSvarR
report through ``ctx.progress``; the sweep's status line estimates the time left."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from autoal.progress import (
    ENV_VAR,
    NULL_REPORTER,
    BarReporter,
    Reporter,
    as_reporter,
    clock,
    progress_bar,
    progress_mode,
    track,
)

ROOT = Path(__file__).resolve().parent.parent

torch.set_num_threads(2)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


# ---------------------------------------------------------------------------------------------
# the rule
# ---------------------------------------------------------------------------------------------
def test_mode_follows_the_stream_the_switch_and_the_environment(monkeypatch):
    assert progress_mode(True, _Stream(True)) == "bar"
    assert progress_mode(True, _Stream(False)) == "lines"
    assert progress_mode(True, object()) == "lines"  # no isatty at all
    assert progress_mode(False, _Stream(True)) == "off"
    monkeypatch.setenv(ENV_VAR, "lines")
    assert progress_mode(True, _Stream(True)) == "lines"
    monkeypatch.setenv(ENV_VAR, "off")
    assert progress_mode(True, _Stream(True)) == "off"
    monkeypatch.setenv(ENV_VAR, "bar")
    assert progress_mode(True, _Stream(False)) == "bar"
    assert progress_mode(False, _Stream(False)) == "off"  # quiet stays quiet
    monkeypatch.setenv(ENV_VAR, "auto")
    assert progress_mode(True, _Stream(False)) == "lines"


def test_line_mode_writes_a_line_per_outer_unit_and_nothing_for_inner_ones():
    s = _Stream(False)
    with progress_bar(3, "rounds", stream=s, outer=True) as bar:
        bar.update(1, note="20 labels", label="round 0/2")
        bar.update(1)
    with progress_bar(100, "epochs", stream=s) as inner:  # a heartbeat only after a minute
        for _ in range(100):
            inner.update(1, note="loss 0.5")
    assert s.getvalue() == "round 0/2: 20 labels\nrounds 2/3\n"


def test_line_mode_heartbeat_of_an_inner_step_is_a_plain_line():
    s = _Stream(False)
    with progress_bar(4, "vaal/train", stream=s, heartbeat_s=0.0) as bar:
        bar.update(1, note="loss\r1")
        bar.update(2)
    lines = s.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["vaal/train: 1/4", "vaal/train: 3/4"]
    assert "\r" not in s.getvalue()


def test_bar_mode_draws_a_tqdm_bar_and_off_mode_nothing():
    s = _Stream(True)
    with progress_bar(5, "rounds", stream=s, outer=True) as bar:
        for _ in range(5):
            bar.update(1, note="acc 0.5")
    assert "rounds" in s.getvalue() and "5/5" in s.getvalue() and "\r" in s.getvalue()
    off = _Stream(True)
    with progress_bar(5, "rounds", stream=off, enabled=False, outer=True) as bar:
        bar.update(5)
        assert bar.n == 5
    assert off.getvalue() == ""


def test_without_tqdm_a_bar_is_drawn_as_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the core runs where only torch, numpy, sklearn exist
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    s = _Stream(True)
    with progress_bar(2, "rounds", stream=s, outer=True) as bar:
        bar.update(1, note="ok")
    assert s.getvalue() == "rounds 1/2: ok\n"


def test_track_yields_every_item():
    s = _Stream(False)
    assert list(track(range(7), 7, "images", stream=s)) == list(range(7))
    assert s.getvalue() == ""


def test_reporter_opens_a_bar_per_stage_restarts_and_closes_it():
    s = _Stream(True)
    rep = BarReporter(stream=s)
    rep("ens_var_r/members", 0, 2)
    for member in range(2):
        for e in range(3):
            rep("ens_var_r/train", e + 1, 3, loss=0.25)
        rep("ens_var_r/members", member + 1, 2)
    rep("vaal/train", 1, 10, vae_loss=0.5)
    assert set(rep._bars) == {"vaal/train"}  # finished stages are closed, open ones kept
    assert rep._bars["vaal/train"]._bar.postfix == "vae_loss 0.5"
    rep.close()
    assert not rep._bars
    out = s.getvalue()
    assert out.count("ens_var_r/train:") >= 2 and "ens_var_r/members:" in out  # a bar per member's epochs
    quiet = _Stream(False)
    rep = BarReporter(stream=quiet)
    rep("vaal/train", 5, 10)
    rep.close()
    assert quiet.getvalue() == ""


def test_query_context_takes_a_reporter_or_a_bool():
    from autoal.cache import PoolCache
    from autoal.strategies import QueryContext

    probs = torch.full((3, 2), 0.5)
    cache = PoolCache(indices=np.arange(3), probs=probs, embeddings=torch.zeros(3, 2), logits=probs.log())
    kw = dict(
        cache=cache, unlabeled=cache.indices, labeled=np.zeros(0, dtype=np.int64), n=1, rng=np.random.default_rng(0)
    )
    assert QueryContext(**kw).progress is NULL_REPORTER
    assert QueryContext(**kw, progress=False).progress is NULL_REPORTER
    assert isinstance(QueryContext(**kw, progress=True).progress, BarReporter)
    rec = _Recorder()
    assert QueryContext(**kw, progress=rec).progress is rec
    assert as_reporter(None) is NULL_REPORTER and isinstance(NULL_REPORTER, Reporter)
    with pytest.raises(TypeError):
        as_reporter("yes")


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
LOOP = """
import sys
from autoal.config import RunConfig
from autoal.loop import run_experiment
cfg = RunConfig.from_dict({"dataset": {"name": "digits"}, "model": {"width": 4},
    "al": {"initial_size": 20, "query_size": 10, "rounds": 2, "mc_samples": 2},
    "train": {"epochs": 2, "batch_size": 32}, "strategy": {"name": "lpl", "params": {"hidden": 8}},
    "tracking": {"enabled": False},
    "runtime": {"output_dir": sys.argv[1], "quiet": False, "num_threads": 1, "device": "cpu"}})
print("AUBC", run_experiment(cfg).aubc)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    return {**env, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def test_loop_in_a_log_writes_one_line_per_round_and_no_carriage_return(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", LOOP, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\r" not in out.stderr
    rounds = re.findall(r"^round (\d)/2: (\d+) labels, accuracy \d\.\d{3}, \d+\.\d s$", out.stderr, re.M)
    assert rounds == [("0", "20"), ("1", "30"), ("2", "40")], out.stderr
    assert len(out.stderr) < 1000, out.stderr  # 3 short lines (the issue: 9 KB of bar redraws)


def test_loop_on_a_terminal_draws_bars(tmp_path):
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(tmp_path)], stdout=subprocess.PIPE, stderr=slave, env=_env(), cwd=tmp_path
    )
    os.close(slave)
    buf = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        buf += chunk
    os.close(master)
    assert proc.wait(timeout=300) == 0
    text = buf.decode(errors="replace")
    assert "\r" in text and "rounds:" in text and "3/3" in text  # the rounds bar
    assert "lpl/train" in text  # the strategy's own training, as a bar
    assert not re.search(r"^round \d/2: ", text, re.M)  # no log lines on a terminal


@pytest.mark.parametrize("how", ["quiet", "env"])
def test_quiet_or_progress_off_writes_nothing(tmp_path, capfd, monkeypatch, how):
    from autoal.config import RunConfig
    from autoal.loop import run_experiment

    if how == "env":
        monkeypatch.setenv(ENV_VAR, "off")
    cfg = RunConfig.from_dict(
        {
            "dataset": {"name": "digits"},
            "model": {"width": 4},
            "al": {"initial_size": 20, "query_size": 10, "rounds": 1, "mc_samples": 0},
            "train": {"epochs": 1},
            "strategy": {"name": "entropy"},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path), "quiet": how == "quiet", "device": "cpu"},
        }
    )
    run_experiment(cfg)
    err = capfd.readouterr().err
    assert "round 0/1" not in err and "rounds" not in err, err
    if how == "quiet":  # in a log (capfd is not a terminal) the same run writes its round lines
        monkeypatch.setenv(ENV_VAR, "lines")
        cfg.runtime.quiet = False
        cfg.runtime.resume = False
        run_experiment(cfg)
        assert re.findall(r"^round \d/1: ", capfd.readouterr().err, re.M) == ["round 0/1: ", "round 1/1: "]


# ---------------------------------------------------------------------------------------------
# the strategies
# ---------------------------------------------------------------------------------------------
class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, dict]] = []

    def __call__(self, stage: str, done: int, total: int, **info) -> None:
        self.calls.append((stage, int(done), int(total), info))

    def runs(self, stage: str) -> list[list[tuple[int, int, dict]]]:
        """The stage's reports, split where ``done`` starts over; each must count up to its
        total (one fixed total per run)."""
        out: list[list[tuple[int, int, dict]]] = []
        for s, done, total, info in self.calls:
            if s != stage:
                continue
            if not out or done <= out[-1][-1][0]:
                out.append([])
            out[-1].append((done, total, info))
        assert out, f"stage {stage!r} was never reported; got {sorted({c[0] for c in self.calls})}"
        for run in out:
            totals = {t for _, t, _ in run}
            assert len(totals) == 1 and run[-1][0] == run[-1][1] > 0, run
            dones = [d for d, _, _ in run]
            assert dones == sorted(set(dones)) and dones[0] <= 1, dones
        return out


@pytest.fixture(scope="module")
def learner(tmp_path_factory):
    from autoal.config import RunConfig
    from autoal.loop import ActiveLearningLoop

    cfg = RunConfig.from_dict(
        {
            "model": {"width": 4},
            "train": {"epochs": 2, "batch_size": 32},
            "al": {"mc_samples": 2},
            "tracking": {"enabled": False},
            "runtime": {"output_dir": str(tmp_path_factory.mktemp("runs")), "quiet": True, "device": "cpu"},
        }
    )
    return ActiveLearningLoop(cfg).learner


@pytest.fixture(scope="module")
def parts(learner):
    labeled, unlabeled = np.arange(40), np.arange(40, 400)
    model = learner.new_model(0)
    learner.train(model, labeled, 0)
    return model, labeled, unlabeled, learner.score(model, unlabeled, 0), learner.score(model, labeled, 1)


def _ctx(learner, parts, rec: _Recorder, n: int = 10):
    from autoal.strategies import QueryContext

    model, labeled, unlabeled, cache, labeled_cache = parts
    return QueryContext(
        cache=cache,
        unlabeled=unlabeled,
        labeled=labeled,
        n=n,
        rng=np.random.default_rng(3),
        seed=5,
        labeled_cache=labeled_cache,
        model=model,
        dataset=learner.dataset,
        learner=learner,
        progress=rec,
    )


def test_vaal_reports_every_iteration(learner, parts):
    from autoal.strategies.baselines.vaal import VAAL

    rec = _Recorder()
    VAAL(epochs=0, min_iterations=6, width=4, latent_dim=4, disc_hidden=16).query(_ctx(learner, parts, rec))
    (run,) = rec.runs("vaal/train")
    assert [d for d, _, _ in run] == list(range(1, 7)) and run[-1][1] == 6
    assert {"vae_loss", "disc_loss"} <= set(run[-1][2])


def test_lpl_reports_every_epoch(learner, parts):
    from autoal.strategies.baselines.lpl import LearningLoss

    rec = _Recorder()
    LearningLoss(hidden=8, epochs=3).query(_ctx(learner, parts, rec))
    (run,) = rec.runs("lpl/train")
    assert [d for d, _, _ in run] == [1, 2, 3] and run[-1][1] == 3
    assert {"ce", "rank"} <= set(run[-1][2])


def test_ens_var_r_reports_members_and_their_epochs(learner, parts, monkeypatch):
    from autoal.strategies.baselines.ens_var_r import EnsembleVarRatio

    monkeypatch.setitem(sys.modules, "ray", None)  # the sequential path even when a test left Ray up
    rec = _Recorder()
    s = EnsembleVarRatio(ensemble_size=3)
    s.query(_ctx(learner, parts, rec))
    assert s.last_backend == "sequential"
    (members,) = rec.runs("ens_var_r/members")
    assert [d for d, _, _ in members] == [0, 1, 2] and members[-1][1] == 2
    epochs = learner.train_cfg.epochs_for(len(parts[1]))
    train = rec.runs("ens_var_r/train")
    assert len(train) == 2 and all([d for d, _, _ in r] == list(range(1, epochs + 1)) for r in train)
    # each member's epochs come before that member is counted done
    order = [(c[0], c[1]) for c in rec.calls if c[0] == "ens_var_r/members" or c[1] == epochs]
    assert order == [
        ("ens_var_r/members", 0),
        ("ens_var_r/train", epochs),
        ("ens_var_r/members", 1),
        ("ens_var_r/train", epochs),
        ("ens_var_r/members", 2),
    ]


def test_ens_var_r_on_ray_reports_members_as_they_finish(learner, parts, monkeypatch):
    """The Ray path's progress loop, with a stand-in for Ray that runs each task in-process."""
    from autoal.strategies.baselines.ens_var_r import EnsembleVarRatio

    class _Ref:
        def __init__(self, fn, args):
            self.fn, self.args = fn, args

    waited = []

    def wait(refs, num_returns=1):
        waited.append(len(refs))
        return refs[:num_returns], refs[num_returns:]

    fake = types.SimpleNamespace(
        is_initialized=lambda: True,
        cluster_resources=lambda: {},
        put=lambda x: x,
        remote=lambda **kw: lambda fn: types.SimpleNamespace(remote=lambda *a: _Ref(fn, a)),
        wait=wait,
        get=lambda refs: [r.fn(*r.args) for r in refs],
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    rec = _Recorder()
    s = EnsembleVarRatio(ensemble_size=3)
    s.query(_ctx(learner, parts, rec))
    assert s.last_backend == "ray" and waited == [2, 1]
    (members,) = rec.runs("ens_var_r/members")
    assert [(d, t) for d, t, _ in members] == [(0, 2), (1, 2), (2, 2)]


def test_autoal_paper_reports_every_search_update(learner, parts):
    from autoal.strategies import build_strategy

    rec = _Recorder()
    s = build_strategy(
        "autoal",
        formulation="paper",
        warmup_epochs=2,
        search_epochs=2,
        cycles=2,
        width=4,
        gmm_samples=200,
        candidates=["entropy", "margin"],
    )
    s.query(_ctx(learner, parts, rec))
    (run,) = rec.runs("autoal/search")
    dones = [d for d, _, _ in run]
    assert dones == list(range(1, run[-1][1] + 1))  # every optimizer update, none skipped or extra
    # 40 labels → A and V of 20, one batch each: 2 warm-up + 2·2 search updates per cycle
    assert run[-1][1] == 2 * (2 + 2 * 2)
    assert [i["cycle"] for _, _, i in run] == [1] * 6 + [2] * 6


def test_planned_updates_count_the_batches_the_search_trains_on():
    from autoal.search.cycle import batch_rows
    from autoal.search.round import _batches

    rng = np.random.default_rng(0)
    checked = 0
    for n in range(0, 140):
        for bs in (1, 2, 3, 8, 16, 64):
            try:
                rows = batch_rows(n, bs, rng)
            except IndexError:  # batch_rows itself fails when n == bs + 1 (reported, not ours)
                continue
            assert _batches(n, bs) == sum(len(r) >= 2 for r in rows), (n, bs)
            checked += 1
    assert checked > 700


def test_autoal_lookahead_reports_fitnet_epochs_and_its_steps(learner, parts):
    from autoal.strategies import build_strategy

    rec = _Recorder()
    s = build_strategy("autoal", candidates=["entropy", "margin"], lookahead_parts=2, head_steps=5, gate="none")
    s.query(_ctx(learner, parts, rec))
    (steps,) = rec.runs("autoal/lookahead")
    assert [(d, t) for d, t, _ in steps] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert [i.get("step") for _, _, i in steps[1:]] == ["fitnet", "candidates", "lookahead"]
    (fit,) = rec.runs("autoal/fitnet")
    assert [d for d, _, _ in fit] == list(range(1, fit[-1][1] + 1)) and "loss" in fit[-1][2]
    # FitNet's epochs all come inside the look-ahead's first step
    at = [(c[0], c[1]) for c in rec.calls]
    fitnet = [i for i, c in enumerate(at) if c[0] == "autoal/fitnet"]
    assert at.index(("autoal/lookahead", 0)) < fitnet[0] and fitnet[-1] < at.index(("autoal/lookahead", 1))


def test_query_step_closes_the_bars_a_failing_strategy_left_open(learner, parts, monkeypatch):
    from autoal import progress as progress_mod
    from autoal.query_step import query_step
    from autoal.strategies.base import Strategy

    made = []

    class _Spy(BarReporter):
        def __init__(self, **kw):
            super().__init__(mode="bar", stream=_Stream(True))
            made.append(self)

    class _Fails(Strategy):
        name = "fails"

        def query(self, ctx):
            ctx.progress("fails/train", 1, 5)
            raise RuntimeError("boom")

    monkeypatch.setattr(progress_mod, "BarReporter", _Spy)
    model, labeled, unlabeled, _, _ = parts
    with pytest.raises(RuntimeError, match="boom"):
        query_step(_Fails(), learner, model, labeled, unlabeled, 5, seed=0, round_=0, progress=True)
    assert len(made) == 1 and not made[0]._bars  # opened, then closed by query_step


# ---------------------------------------------------------------------------------------------
# the sweep's status line
# ---------------------------------------------------------------------------------------------
def test_eta_from_finished_durations_running_trials_and_concurrency():
    from autoal.platform.sweep.progress import estimate_eta, eta_text

    assert estimate_eta([], [10.0], 5, 2) is None
    assert eta_text(None) == "ETA —"
    # mean 60 s; 2 slots free at 50 and 10 s; 3 pending: 10→70, 50→110, 70→130
    assert estimate_eta([40.0, 80.0], [10.0, 50.0], 3, 2) == pytest.approx(130.0)
    assert estimate_eta([60.0], [], 3, 1) == pytest.approx(180.0)  # one at a time
    assert estimate_eta([60.0], [], 3, 4) == pytest.approx(60.0)  # all at once
    assert estimate_eta([60.0], [90.0], 0, 1) == pytest.approx(0.0)  # a late trial: ends now
    assert estimate_eta([60.0], [], 0, 2) == pytest.approx(0.0)
    assert eta_text(3725.0) == "ETA 1:02:05" and eta_text(65.0) == "ETA 1:05" and clock(59.6) == "1:00"


def test_status_line_shows_eta_dash_until_a_trial_finished_then_an_estimate():
    from autoal.platform.sweep.progress import _ProgressMixin

    def trial(tid, status, **res):
        return types.SimpleNamespace(
            trial_id=tid, status=status, last_result=res, config={"arm": "a", "seed": 0}, num_failures=0
        )

    lines: list[str] = []
    p = _ProgressMixin("sw", total=5, interval_s=0, out=lines.append)
    p.t0 = 1000.0
    running = [trial("t0", "RUNNING"), trial("t1", "RUNNING")]
    for t in running:
        p.trial_started(t, now=1000.0)
    pending = [trial(f"t{i}", "PENDING") for i in range(2, 5)]
    assert p.line(running + pending, now=1030.0).endswith("0:30 · ETA —")
    done = trial("t0", "TERMINATED", aubc=0.5, final_accuracy=0.6)
    p.trial_ended(done, now=1100.0)  # took 100 s
    t2 = trial("t2", "RUNNING")
    p.trial_started(t2, now=1100.0)
    text = p.line([done, running[1], t2] + pending[1:], now=1120.0)
    # 2 slots: t1 ends at +0 (100 s elapsed), t2 at +80; the 2 pending: 0→100, 80→180
    assert text.endswith("2:00 · ETA 3:00"), text
    assert "1/5 done" in text and "best AUBC 0.5000" in text
    # a restored sweep: a trial finished before this process started counts with Tune's time
    q = _ProgressMixin("sw", total=2, interval_s=0, out=lines.append)
    q.t0 = 0.0
    old = trial("x", "TERMINATED", aubc=0.4, final_accuracy=0.5, time_total_s=50.0)
    assert q.line([old, trial("y", "PENDING")], now=10.0).endswith("ETA 0:50")
