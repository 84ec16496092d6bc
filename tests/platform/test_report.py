"""Reports from MLflow (issue 4 item 6): a sweep's runs written straight into a SQLite store
(no Ray, no training), then every table and figure checked against values computed here."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from autoal.errors import TrackingError
from autoal.metrics import aubc
from autoal.platform.report import markdown, paired_comparison, write_report

ARMS = ["entropy", "margin", "autoal"]
SEEDS = [0, 1, 2, 3]
LABELS = [20, 30, 40]
CANDS = ["entropy", "margin", "kmeans"]


def _acc(arm: str, seed: int, r: int) -> float:
    base = {"entropy": 0.50, "margin": 0.55, "autoal": 0.58}[arm]
    return round(base + 0.1 * r + 0.01 * ((seed * 7 + r * 3 + len(arm)) % 5), 4)


def _seconds(arm: str) -> dict[str, float]:
    if arm == "autoal":
        return {
            "seconds_train": 1.0,
            "seconds_score": 0.2,
            "seconds_select": 2.0,
            "seconds_candidates": 0.5,
            "seconds_search": 1.2,
        }
    return {"seconds_train": 1.0, "seconds_score": 0.2, "seconds_select": 0.1}


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    """A parent run and 12 child runs (3 arms x 4 seeds, 3 rounds each), plus a run of another
    sweep and a failed run that the report must ignore."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("rep", artifact_location=str(tmp_path / "artifacts"))
    parent = c.create_run(
        exp,
        run_name="s1",
        tags={"sweep_id": "s1", "autoal_role": "sweep", "sweep": "s", "arms": json.dumps(ARMS), "reference": "entropy"},
    ).info.run_id
    ts = int(time.time() * 1000)
    for arm in ARMS:
        for seed in SEEDS:
            rid = c.create_run(
                exp,
                run_name=f"{arm}-seed{seed}",
                tags={
                    "sweep_id": "s1",
                    "autoal_role": "trial",
                    "arm": arm,
                    "seed": str(seed),
                    "trial_id": f"{arm}{seed}",
                    "strategy": arm,
                    "dataset": "digits",
                    "mlflow.parentRunId": parent,
                },
            ).info.run_id
            ms = []
            for r, n in enumerate(LABELS):
                ms += [Metric("accuracy", _acc(arm, seed, r), ts, r), Metric("labels", n, ts, r)]
                ms += [Metric(k, v, ts, r) for k, v in _seconds(arm).items()]
                if arm == "autoal" and r < 2:
                    ms += [Metric(f"w_mean/{cand}", 0.3 + 0.1 * i + 0.05 * r, ts, r) for i, cand in enumerate(CANDS)]
                    ms += [Metric(f"share/{cand}", 1 / 3, ts, r) for cand in CANDS]
                    ms += [Metric(f"competence/{cand}", 0.5 + 0.1 * r, ts, r) for cand in CANDS]
            accs = [_acc(arm, seed, r) for r in range(3)]
            ms += [Metric("aubc", aubc(LABELS, accs), ts, 2), Metric("final_accuracy", accs[-1], ts, 2)]
            c.log_batch(rid, metrics=ms)
            for k, v in {
                "strategy.name": arm,
                "al.seed": str(seed),
                "runtime.output_dir": f"/runs/{arm}{seed}",
                "train.lr": "0.001",
            }.items():
                c.log_param(rid, k, v)
            c.log_dict(
                rid,
                {"class_counts_per_round": [[10, 10], [14, 16], [20, 20]], "classes": ["cat", "dog"]},
                "labeled.json",
            )
            c.set_terminated(rid, "FINISHED")
    # noise: a failed trial of s1 (kept in the long table, not in the statistics) and another sweep
    bad = c.create_run(
        exp,
        tags={
            "sweep_id": "s1",
            "autoal_role": "trial",
            "arm": "margin",
            "seed": "9",
            "trial_id": "bad",
            "strategy": "margin",
        },
    ).info.run_id
    c.log_batch(bad, metrics=[Metric("accuracy", 0.1, ts, 0), Metric("labels", 20, ts, 0)])
    c.set_terminated(bad, "FAILED")
    other = c.create_run(exp, tags={"sweep_id": "s2", "autoal_role": "trial", "arm": "x", "seed": "0"}).info.run_id
    c.log_batch(other, metrics=[Metric("accuracy", 0.9, ts, 0), Metric("labels", 20, ts, 0)])
    c.set_terminated(parent, "FINISHED")
    return uri, parent


def test_report_tables_figures_and_artifacts(sweep_store, tmp_path):
    from mlflow.tracking import MlflowClient

    uri, parent = sweep_store
    rep = write_report(uri, "rep", "s1", tmp_path / "out")
    assert rep.reference == "entropy" and rep.parent_run_id == parent
    # long-form per-round table, as Parquet
    df = pd.read_parquet(rep.files["rounds"])
    assert list(df.columns[:12]) == [
        "sweep",
        "trial",
        "run_id",
        "arm",
        "seed",
        "strategy",
        "dataset",
        "setting",
        "method",
        "long_tailed",
        "status",
        "round",
    ]
    assert len(df) == 12 * 3 + 1 and set(df["sweep"]) == {"s1"}
    row = df[(df["arm"] == "margin") & (df["seed"] == 2) & (df["round"] == 1)].iloc[0]
    assert row["labels"] == 30 and row["accuracy"] == pytest.approx(_acc("margin", 2, 1))
    assert {"w_mean/kmeans", "share/margin", "seconds_search"} <= set(df.columns)
    assert set(df[df["trial"] == "bad"]["status"]) == {"FAILED"}
    # summary: mean ± std (ddof 1) over seeds, best in bold, CSV with numbers
    summ = pd.read_csv(rep.files["summary_csv"]).set_index("arm")
    for arm in ARMS:
        a = [aubc(LABELS, [_acc(arm, s, r) for r in range(3)]) for s in SEEDS]
        assert summ.loc[arm, "aubc_mean"] == pytest.approx(np.mean(a))
        assert summ.loc[arm, "aubc_std"] == pytest.approx(np.std(a, ddof=1))
        assert summ.loc[arm, "seeds"] == 4  # the failed run is not counted
        assert summ.loc[arm, "final_accuracy_mean"] == pytest.approx(np.mean([_acc(arm, s, 2) for s in SEEDS]))
    md = rep.files["summary_md"].read_text()
    best = summ["aubc_mean"].idxmax()
    best_line = next(ln for ln in md.splitlines() if ln.startswith(f"| {best} |"))
    assert best_line.count("**") == 4  # AUBC and final accuracy both bold for the best arm
    assert sum(ln.count("**") for ln in md.splitlines()) == 4
    # paired comparison against the reference, equal to scipy on the same pairs
    paired = pd.read_csv(rep.files["paired_csv"]).set_index("arm")
    assert set(paired.index) == {"margin", "autoal"}
    ref = [aubc(LABELS, [_acc("entropy", s, r) for r in range(3)]) for s in SEEDS]
    auto = [aubc(LABELS, [_acc("autoal", s, r) for r in range(3)]) for s in SEEDS]
    d = np.subtract(auto, ref)
    assert paired.loc["autoal", "mean_diff"] == pytest.approx(d.mean())
    assert paired.loc["autoal", "wins"] == int((d > 0).sum()) and paired.loc["autoal", "pairs"] == 4
    assert paired.loc["autoal", "p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert paired.loc["autoal", "p_ttest"] == pytest.approx(stats.ttest_rel(auto, ref).pvalue)
    # figures
    for key in ("learning_curves", "weights", "shares", "credit"):
        assert rep.files[key].stat().st_size > 5000, key
    # runtime split relative to Entropy (Table 2)
    rt = pd.read_csv(rep.files["runtime_csv"]).set_index("arm")
    assert rt.loc["entropy", "relative_to_entropy"] == pytest.approx(1.0)
    assert rt.loc["autoal", "search_s"] == pytest.approx(3 * 1.2)
    assert rt.loc["autoal", "candidate_scoring_s"] == pytest.approx(3 * (0.2 + 0.5))
    assert rt.loc["autoal", "selection_other_s"] == pytest.approx(3 * (2.0 - 0.5 - 1.2))
    assert rt.loc["autoal", "relative_to_entropy"] == pytest.approx((3 * 3.2) / (3 * 1.3))  # train + score + select
    text = rep.files["report"].read_text()
    assert "Paired comparison against `entropy`" in text and "weights.png" in text and "Table 2" in text
    assert "![credit](credit.png)" in text
    # everything logged on the parent run
    arts = {a.path for a in MlflowClient(uri).list_artifacts(parent, "report")}
    assert {f"report/{p.name}" for p in rep.files.values()} <= arts


def test_report_reference_override_latest_sweep_and_missing_parts(sweep_store, tmp_path):
    uri, _ = sweep_store
    rep = write_report(uri, "rep", None, tmp_path / "o2", reference="margin", log_to_parent=False)
    assert rep.sweep_id == "s1" and rep.reference == "margin"  # None = the latest sweep (parent runs)
    assert set(pd.read_csv(rep.files["paired_csv"])["arm"]) == {"entropy", "autoal"}
    # a sweep without AutoAL traces or parent: no weight figure, no Entropy → no ratio
    rep2 = write_report(uri, "rep", "s2", tmp_path / "o3")
    assert "weights" not in rep2.files and "paired_csv" not in rep2.files and rep2.parent_run_id is None
    assert "learning_curves" not in rep2.files  # its only run never finished
    rt = pd.read_csv(rep2.files["runtime_csv"]) if "runtime_csv" in rep2.files else None
    assert rt is None or rt["relative_to_entropy"].isna().all()
    with pytest.raises(TrackingError, match="no trial runs"):
        write_report(uri, "rep", "nope", tmp_path / "o4")
    with pytest.raises(TrackingError, match="no MLflow experiment 'missing'"):
        write_report(uri, "missing", "s1", tmp_path / "o5")


def test_paired_comparison_edge_cases():
    t = pd.DataFrame(
        {
            "arm": ["a", "a", "b", "b", "c"],
            "seed": [0, 1, 0, 1, 5],
            "aubc": [0.5, 0.6, 0.5, 0.6, 0.9],
            "status": ["FINISHED"] * 5,
        }
    )
    p = paired_comparison(t, "a", ["a", "b", "c"]).set_index("arm")
    assert list(p.index) == ["b"]  # c shares no seed with a
    assert p.loc["b", "ties"] == 2 and math.isnan(p.loc["b", "p_wilcoxon"]) and math.isnan(p.loc["b", "p_ttest"])
    assert markdown(["x", "y"], [[1, 2]]) == "| x | y |\n|---|---|\n| 1 | 2 |"


def test_report_pipeline_prints_and_lists(sweep_store, tmp_path, monkeypatch, capsys):
    from autoal.cli.report import main

    uri, _ = sweep_store
    monkeypatch.chdir(tmp_path)
    assert main([f"tracking.uri={uri}", "tracking.experiment=rep", "report.list=true"]) == 0
    assert "s1" in capsys.readouterr().out
    assert (
        main(
            [
                f"tracking.uri={uri}",
                "tracking.experiment=rep",
                "report.sweep_id=s1",
                f"report.out_dir={tmp_path / 'cli'}",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| autoal |" in out and "paired against entropy" in out and (tmp_path / "cli" / "rounds.parquet").exists()


def test_weights_figure_draws_both_formulations(tmp_path):
    """Fig. 5 from the paper formulation's w_mean/<cand> and the lookahead formulation's
    weight/<cand>, one panel per arm, each with its own candidates."""
    import pandas as pd

    from autoal.platform.report import plot_trace

    rows = [
        {
            "arm": "autoal",
            "status": "FINISHED",
            "round": r,
            "weight/margin": 0.5 + 0.1 * r,
            "weight/kmeans": 0.5 - 0.1 * r,
        }
        for r in range(3)
    ]
    rows += [{"arm": "autoal[paper]", "status": "FINISHED", "round": r, "w_mean/entropy": 0.4} for r in range(3)]
    rows += [{"arm": "margin", "status": "FINISHED", "round": r} for r in range(3)]
    path = plot_trace(
        pd.DataFrame(rows), tmp_path / "weights.png", ["margin", "autoal", "autoal[paper]"], ("w_mean/", "weight/")
    )
    assert path is not None and path.stat().st_size > 1000
    assert plot_trace(pd.DataFrame(rows[-3:]), tmp_path / "none.png", ["margin"], ("w_mean/", "weight/")) is None


def test_report_figures_caution_and_any_set_of_runs(sweep_store, tmp_path):
    """Plots where they beat tables (AUBC per swept key, stacked runtime bars, win/loss matrix,
    class histograms), a caution instead of "significant" below 5 pairs, and reports of a list of
    run ids or of a whole experiment, with progress while the histories are fetched."""
    from mlflow.tracking import MlflowClient

    from autoal.platform.report import plot_win_loss, trial_table, verdict, win_loss_matrix

    uri, _ = sweep_store
    seen = []
    rep = write_report(
        uri, "rep", "s1", tmp_path / "out", log_to_parent=False, progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (13, 13) and [d for d, _ in seen] == list(range(1, 14))  # 12 trials + the failed one
    for key in ("hyperparameters", "runtime", "win_loss", "class_histograms"):
        assert rep.files[key].stat().st_size > 5000, key
    from autoal.platform.report import varied_keys

    assert varied_keys(pd.read_parquet(rep.files["rounds"]), None) == ["strategy.name"]  # not seeds, paths, lr
    text = rep.files["report"].read_text()
    assert "**Caution:**" in text and "fewer than 5 paired seeds" in text  # 4 seeds per arm
    paired_md = rep.files["paired_md"].read_text()
    assert "too few pairs (n < 5): no claim" in paired_md and "**significant**" not in paired_md
    assert verdict(6, 0.01).startswith("**significant**") and verdict(6, 0.2) == "not significant"
    assert verdict(4, 0.001).startswith("too few pairs")
    # win/loss matrix against the per-seed AUBCs computed here
    trials = trial_table(pd.read_parquet(rep.files["rounds"]))
    wins, pairs = win_loss_matrix(trials, ARMS)
    au = {a: [aubc(LABELS, [_acc(a, s, r) for r in range(3)]) for s in SEEDS] for a in ARMS}
    for i, a in enumerate(ARMS):
        for j, b in enumerate(ARMS):
            if i != j:
                assert pairs[i, j] == 4 and wins[i, j] == sum(x > y for x, y in zip(au[a], au[b]))
    assert plot_win_loss(trials[trials["arm"] == "margin"], tmp_path / "x.png", ["margin"]) is None
    # a list of run ids (here: two margin trials) and the whole experiment
    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name("rep").experiment_id
    margin = [
        r.info.run_id
        for r in client.search_runs([exp_id], "tags.arm = 'margin' and tags.sweep_id = 's1'")
        if r.info.status == "FINISHED"
    ][:2]
    by_ids = write_report(uri, "rep", None, tmp_path / "ids", run_ids=margin)
    assert by_ids.sweep_id.startswith("runs-") and by_ids.parent_run_id is None
    assert len(pd.read_csv(by_ids.files["trials"])) == 2 and by_ids.files["report"].read_text().startswith("# Runs")
    every = write_report(uri, "rep", None, tmp_path / "all", all_runs=True)
    assert every.sweep_id == "experiment-rep" and len(pd.read_csv(every.files["trials"])) == 14  # not the parent
    with pytest.raises(TrackingError, match="report.run_ids: no run 'nope'"):
        write_report(uri, "rep", None, tmp_path / "bad", run_ids=["nope"])


def test_report_of_several_sweeps_together(sweep_store, tmp_path):
    """report.sweep_id as a list (two partial sweeps of one matrix): one report over both sweeps' trials."""
    import pandas as pd

    from autoal.platform.report import report_id_for

    uri, _ = sweep_store
    rep = write_report(uri, "rep", ["s1", "s2"], tmp_path / "both", log_to_parent=False)
    assert rep.sweep_id == report_id_for(["s1", "s2"], None, "rep") and rep.sweep_id.startswith("sweeps-")
    df = pd.read_parquet(rep.files["rounds"])
    assert set(df["sweep"]) == {"s1", "s2"} and "x" in set(df["arm"])
    assert rep.parent_run_id is None  # no single parent to log onto
    one = write_report(uri, "rep", ["s1"], tmp_path / "one", log_to_parent=False)
    assert one.sweep_id == "s1" and "x" not in set(pd.read_parquet(one.files["rounds"])["arm"])
