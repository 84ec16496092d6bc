"""Ablations (issue 4 item 5): the paper's Fig. 3 and Fig. 4 and a user's own config deltas as
named arms with paired seeds; one real Fig. 3 ablation through autoal ablation."""

from __future__ import annotations

import pytest

from autoal.errors import ConfigError
from autoal.platform.sweep import SweepSpec, build_arms
from autoal.cli.common import compose


def _arms(overrides: list[str]):
    d = compose(overrides, "ablation")
    spec = SweepSpec.from_dict(d.pop("sweep"))
    return spec, build_arms(spec, d, lambda extra: compose(overrides + extra, "ablation"))


def test_fig3_searchnet_ablation_arms():
    spec, arms = _arms(["ablation=fig3"])
    assert spec.ablation == "fig3" and spec.reference == "both" and len(spec.seeds) >= 2
    params = {a.label: a.config["strategy"]["params"] for a in arms}
    assert [a.config["strategy"]["name"] for a in arms] == ["autoal"] * 3
    assert params["backbone_only"]["lpm"] is False
    assert params["lpm_only"]["lpm"] is True and params["lpm_only"]["lpm_only"] is True
    assert params["both"]["lpm"] is True and params["both"]["lpm_only"] is False


def test_fig4_pool_size_arms_and_the_default():
    spec, arms = _arms(["ablation=fig4"])
    assert [a.config["strategy"]["params"]["pool_size"] for a in arms] == [1, 3, 5, 7]
    assert spec.reference == "pool7"
    spec, arms = _arms([])  # the primary config's default ablation
    assert spec.ablation == "fig3"


def test_custom_deltas_from_the_file_and_the_command_line():
    spec, arms = _arms(
        [
            "ablation=custom",
            "+sweep.arms.fresh={strategy:entropy,al:{warm_start:false,rounds:3}}",
            "+sweep.arms.tau={strategy:autoal,strategy.params.tau:0.3}",
        ]
    )
    by = {a.label: a for a in arms}
    assert by["margin_warm"].config["al"]["warm_start"] is True and by["margin"].config["al"]["warm_start"] is False
    assert by["fresh"].config["strategy"]["name"] == "entropy" and by["fresh"].config["al"]["rounds"] == 3
    assert by["tau"].config["strategy"]["name"] == "autoal" and by["tau"].config["strategy"]["params"]["tau"] == 0.3
    assert by["autoal_rank"].config["strategy"]["params"]["candidate_score"] == "rank"
    # arms cross with a space: every arm x every point, labels joined
    spec, arms = _arms(["ablation=fig4", "+sweep.space.al.query_size=[5,10]"])
    assert len(arms) == 8 and arms[0].label == "pool1,query_size=5" and spec.reference == "pool7,query_size=5"
    with pytest.raises(ConfigError, match=r"sweep arm 'oops': al.warm_strat: unknown config key"):
        _arms(["ablation=custom", "+sweep.arms.oops={al.warm_strat:true}"])
    with pytest.raises(ConfigError, match=r"sweep.reference: 'margin' is not an arm"):
        _arms(["ablation=custom", "~sweep.arms", "+sweep.arms={a:{strategy:entropy}}"])


@pytest.mark.timeout(400)
def test_fig3_ablation_runs_in_one_tuner_with_paired_seeds(ray_local, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from autoal.cli.ablation import main

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(
        [
            "ablation=fig3",
            "sweep.seeds=[0,1]",
            "al.rounds=1",
            "al.mc_samples=2",
            "train.epochs=2",
            "+sweep.fixed={strategy.params.warmup_epochs:2,strategy.params.search_epochs:2}",
            f"tracking.uri={uri}",
            "tracking.experiment=abl",
            f"sweep.storage_path={tmp_path / 'rr'}",
            f"runtime.output_dir={tmp_path / 'runs'}",
            "runtime.num_threads=1",
            "sweep.progress_interval_s=1000",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "6/6 trials finished" in out and "backbone_only" in out and "MLflow UI: mlflow ui --backend-store-uri" in out
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("abl")
    runs = c.search_runs([exp.experiment_id], "tags.ablation = 'fig3'")
    kids = [r for r in runs if r.data.tags["autoal_role"] == "trial"]
    assert len(kids) == 6 and len(runs) == 7
    pairs = {(r.data.tags["arm"], r.data.tags["seed"]) for r in kids}
    assert pairs == {(a, s) for a in ("backbone_only", "lpm_only", "both") for s in ("0", "1")}
    assert {r.data.params["strategy.params.lpm"] for r in kids} == {"true", "false"}  # JSON-typed params
    report_dir = next((tmp_path / "runs" / "reports").iterdir())
    assert (report_dir / "paired.csv").exists() and (report_dir / "weights.png").exists()
