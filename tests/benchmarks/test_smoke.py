"""The benchmarks must not rot: CI runs each entry point in smoke mode (tiny sizes) and checks
that it writes complete results. Timings are not asserted (these machines are noisy)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path, timeout=600):
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_bench_entry_point_smoke_writes_every_benchmark(tmp_path):
    _run([str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)], tmp_path)
    res = json.loads((tmp_path / "smoke.json").read_text())
    assert res["machine"]["cpus"] and res["smoke"] is True
    b = res["benchmarks"]
    assert {
        "candidate_scoring",
        "candidate_scoring_32px",
        "kmeans",
        "gmm_threshold",
        "memory",
        "al_round",
        "ray_sweep",
        "ray_scoring",
        "train_throughput",
        "run_split",
        "guard_power",
    } <= set(b)
    assert b["gmm_threshold"]["speedup_vs_sklearn"] > 0 and b["gmm_threshold"]["distinct_values"] <= 8
    assert not any("error" in v for v in b.values()), {k: v.get("error") for k, v in b.items()}
    assert b["candidate_scoring"]["shared_vs_entropy"] > 0 and b["kmeans"]["inertia_ratio"] < 1.5
    for name in ("candidate_scoring", "candidate_scoring_32px"):  # the MC seed stability beside the speed
        pool = b[name]["mc_seed_stability_pool"]
        assert set(pool) == {"bald", "var_ratio", "mean_std"} and b[name]["mc_seed_overlap_pool_min"] >= 0
        assert all(0 <= v["overlap"] <= 1 and -1 <= v["spearman"] <= 1 for v in pool.values())
    digits = b["candidate_scoring"]["mc_seed_stability_digits"]
    assert digits["mc_samples"] == b["candidate_scoring"]["mc_samples"] and set(digits["overlap"]) == {"20"}
    assert 0 <= b["candidate_scoring"]["mc_seed_overlap_digits_min"] <= 1
    assert set(b["candidate_scoring_32px"]["seconds_select"]) == {
        "entropy",
        "margin",
        "least_confidence",
        "kmeans",
        "bald",
        "var_ratio",
        "mean_std",
    }
    assert b["al_round"]["autoal"]["search"] > 0 and b["ray_sweep"]["speedup"] > 0
    assert b["al_round"]["autoal"]["query_other"] >= -1e-6 and b["al_round"]["entropy"]["search"] == 0
    assert b["al_round"]["autoal_credit"]["run_total"] > b["al_round"]["autoal_credit"]["total"] > 0
    assert b["al_round"]["autoal_credit_vs_entropy"] > 0
    power = {(r["first_set"], r["ratio"]): r for r in b["guard_power"]["rows"]}
    assert set(power) == {(20, 1.0), (20, 5.0), (20, 10.0)}
    assert all(0 <= r["chi2"] <= 1 and 0 <= r["lrt"] <= 1 for r in power.values())
    tt = b["train_throughput"]
    assert {r["shape"] for r in tt["rows"]} == {"8x8x1", "28x28x1"} and len(tt["rows"]) == 4
    assert all(r["train_model_images_per_s"] > 0 and r["tight_images_per_s"] > 0 and r["ratio"] > 0 for r in tt["rows"])
    assert [r["batch"] for r in tt["rows"]] == [20, 64, 20, 64]  # min(batch size, |L|)
    split = b["run_split"]["runs"]
    assert set(split) == {"digits/margin", "digits/autoal", "mnist/margin", "mnist/autoal"}
    for name, r in split.items():
        parts = r["train"] + r["score"] + r["select"] + r["search"]
        assert r["train"] > 0 and r["score"] > 0 and r["overhead"] >= 0, name
        assert abs(parts + r["overhead"] - r["wall"]) < 1e-6 and 0 <= r["share_overhead"] <= 1, name
        assert (r["search"] > 0) == name.endswith("autoal"), name
    md = (tmp_path / "smoke.md").read_text()
    assert md.startswith("# autoal benchmarks") and "| digits/autoal |" in md


@pytest.mark.slow
def test_gpu_quality_and_strategy_benchmarks_smoke(tmp_path):
    _run([str(ROOT / "bench" / "gpu.py"), "--smoke", "--out", str(tmp_path / "gpu.json")], tmp_path)
    gpu = json.loads((tmp_path / "gpu.json").read_text())
    assert gpu["scoring_images_per_s"] > 0 and "round_total" in gpu["al_rounds"]["autoal"]
    assert gpu["kmeans"]["seconds_picks"] > 0 and gpu["kmeans"]["k"] == 20
    _run([str(ROOT / "bench" / "strategies.py"), "--smoke", "--out", str(tmp_path / "s")], tmp_path)
    rows = json.loads((tmp_path / "s" / "strategies.json").read_text())["rows"]
    assert [r["strategy"] for r in rows] == ["random", "entropy", "margin"]
    assert (tmp_path / "s" / "strategies_digits.png").stat().st_size > 1000
    _run([str(ROOT / "bench" / "gpu_quality.py"), "--smoke", "--out", str(tmp_path / "q.json")], tmp_path)
    q = json.loads((tmp_path / "q.json").read_text())
    m = q["matrix"]
    assert list(m["settings"]) == ["digits", "mnist_low", "mnist_lt"]
    assert q["methods"] == ["random", "entropy", "margin", "bald", "autoal"] and len(q["runs"]) == 3 * 5
    for r in q["runs"]:
        assert r["long_tailed"] == (r["setting"] == "mnist_lt") and len(r["labels"]) == len(r["accuracy"]) == 3
        assert m["settings"][r["setting"]]["stats"][r["method"]]["aubc_mean"] == pytest.approx(r["aubc"])
    for name, tab in m["settings"].items():
        assert set(tab["stats"]) == set(q["methods"]) and tab["ranking"][0] in tab["stats"], name
        assert [tab["stats"][x]["rank"] for x in tab["ranking"]][0] == 1
        assert tab["best_single"] in {"random", "entropy", "margin", "bald"}, name
        assert tab["paired"][tab["best_single"]]["verdict"] == "reference"
        assert tab["paired"]["autoal"]["n"] == 1 and tab["paired"]["autoal"]["verdict"] == "no claim"
    lt = m["settings"]["mnist_lt"]
    assert lt["long_tailed"] and not m["settings"]["digits"]["long_tailed"]
    margin = lt["stats"]["margin"]
    assert 0 < margin["final_balanced_accuracy_mean"] <= 1 and 0 < margin["aubc_balanced_mean"] <= 1
    md = (tmp_path / "q.md").read_text()
    assert "## Mean AUBC" in md and "Wilcoxon p" in md and "Long-tailed pool" in md and "## mnist_lt" in md
    # the runs file reads back (as `autoal report report.runs_files=[...]` reads it) into the same
    # matrix, long-tailedness from the records themselves
    from autoal.platform.matrix import build_matrix, matrix_markdown, read_jsonl_runs

    runs = read_jsonl_runs(tmp_path / "q_runs.jsonl", long_tailed=())
    again = build_matrix(runs, order=q["methods"], setting_order=list(m["settings"]))
    assert matrix_markdown(again, title=md.splitlines()[0].removeprefix("# ")) + "\n" == md
    assert (tmp_path / "q_matrix.png").stat().st_size > 1000


@pytest.mark.slow
def test_mc_dropout_and_lookahead_diagnostics_smoke(tmp_path):
    _run([str(ROOT / "bench" / "mc_dropout.py"), "--smoke", "--out", str(tmp_path / "mc.json")], tmp_path)
    mc = json.loads((tmp_path / "mc.json").read_text())
    assert set(mc["results"]) == {"old", "new_T100"}
    row = mc["results"]["new_T100"]["20"]
    assert 0 <= row["bald/overlap"] <= 1 and -1 <= row["bald/rho_entropy"] <= 1 and row["seconds_backbone"] > 0
    _run([str(ROOT / "bench" / "lookahead_check.py"), "--smoke", "--out", str(tmp_path / "la.json")], tmp_path)
    la = json.loads((tmp_path / "la.json").read_text())["settings"]["digits"]
    assert la["summary"]["points"] == 1 and set(la["points"][0]["truth"]) == set(la["points"][0]["proxy_ce"])
