"""A sweep against a real `mlflow server` on loopback (issue 4 item 4): a 2x2 smoke sweep with
tracking.uri=http://127.0.0.1:<port>, read back over the server's REST API: one parent run, one
child per trial with the sweep's tags, and the AL round as the MLflow step."""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlflow_server_util import mlflow_server as start_mlflow_server  # noqa: E402

pytestmark = [pytest.mark.slow]


def _get(base: str, endpoint: str, **params) -> dict:
    url = f"{base}{endpoint}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - loopback test server
        return json.loads(r.read())


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        f"{base}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback test server
        return json.loads(r.read())


@pytest.fixture
def mlflow_server(tmp_path):
    with start_mlflow_server(tmp_path) as base:
        yield base


@pytest.mark.timeout(600)
def test_smoke_sweep_against_a_tracking_server(mlflow_server, ray_local, tmp_path, monkeypatch):
    from autoal.platform.sweep import SweepSpec, run_sweep

    monkeypatch.chdir(tmp_path)
    base = {
        "al": {"initial_size": 20, "query_size": 10, "rounds": 2, "mc_samples": 2},
        "train": {"epochs": 3, "batch_size": 32},
        "strategy": {"name": "margin", "params": {}},
        "tracking": {"uri": mlflow_server, "experiment": "srv"},
        "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 1},
    }
    spec = SweepSpec.from_dict(
        {
            "name": "srv",
            "space": {"strategy": ["random", "margin"]},
            "seeds": [0, 1],
            "storage_path": str(tmp_path / "rr"),
            "progress_interval_s": 1000,
            "report": True,
        }
    )
    res = run_sweep(spec, base, out=lambda s: None)
    assert res.complete and len(res.trials) == 4 and res.tracking_uri == mlflow_server

    exp = _get(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="srv")["experiment"]
    runs = _post(
        mlflow_server,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [exp["experiment_id"]], "filter": f"tags.sweep_id = '{res.sweep_id}'", "max_results": 100},
    )["runs"]
    tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs}
    parents = [rid for rid, t in tags.items() if t.get("autoal_role") == "sweep"]
    kids = [rid for rid, t in tags.items() if t.get("autoal_role") == "trial"]
    assert parents == [res.parent_run_id] and len(kids) == 4
    status = {r["info"]["run_id"]: r["info"]["status"] for r in runs}
    assert all(status[k] == "FINISHED" for k in kids) and status[res.parent_run_id] == "FINISHED"
    for k in kids:
        t = tags[k]
        assert t["mlflow.parentRunId"] == res.parent_run_id and t["sweep_id"] == res.sweep_id
        assert t["dataset"] == "digits" and t["git_sha"] and t["autoal_version"] and t["ablation"] == "none"
        hist = _get(mlflow_server, "/api/2.0/mlflow/metrics/get-history", run_id=k, metric_key="accuracy")["metrics"]
        assert sorted(m["step"] for m in hist) == [0, 1, 2]
        arts = _get(mlflow_server, "/api/2.0/mlflow/artifacts/list", run_id=k).get("files", [])
        assert "rounds" in {a["path"] for a in arts}
    assert {(tags[k]["arm"], tags[k]["seed"]) for k in kids} == {(a, s) for a in ("random", "margin") for s in "01"}
    # the report read the runs back through the server and logged its files on the parent run
    arts = _get(mlflow_server, "/api/2.0/mlflow/artifacts/list", run_id=res.parent_run_id, path="report").get(
        "files", []
    )
    assert {"report/summary.md", "report/rounds.parquet"} <= {a["path"] for a in arts}
