"""The MLflow dashboard in a real browser: a small sweep (2 trials) against a real `mlflow server`
on loopback, then headless Chromium (Debian's `chromium`, driven by Playwright) opens the UI the
server itself serves and checks what a user sees:

* the experiment's runs page lists the sweep's parent run, collapsed, with the per-arm AUBC the
  sweep logs on it (`aubc/margin`, `aubc/random` switched on in the Columns menu): the arms compare
  without expanding anything; expanded, its trial runs, with the `aubc` and `final_accuracy`
  metric columns switched on;
* a trial's run page shows the `aubc` metric with its value, and its Artifacts tab lists
  `learning_curve.png` and renders it (an <img> that loaded, at the PNG's own size);
* the compare view of the two trials opens and shows both run ids and names.

Each page is saved as a screenshot into $AUTOAL_TEST_ARTIFACTS (default: a `screenshots` folder in
the test's tmp_path). With AUTOAL_SAVE_README_SCREENSHOT=<path> the runs page (parent expanded:
the per-arm AUBC on the parent row, the trial runs below it) is also saved there (the README's picture: `AUTOAL_SAVE_README_SCREENSHOT=docs/images/mlflow_dashboard.png`).

Needs Chromium (apt: chromium; scripts/ci_system_deps.sh) and the `playwright` package (the `dev`
extra); AUTOAL_CHROMIUM=<path> picks the browser binary. Skipped without them, except under
CI=true, where it fails. Selectors follow MLflow 3.17's UI (pinned in pyproject.toml).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import struct
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlflow_server_util import mlflow_server as start_mlflow_server  # noqa: E402

pytestmark = [pytest.mark.slow]

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 60_000
CURVE = "learning_curve.png"
# Cosmetic only, so that the screenshots show the classic-ML layout without the assistant panel:
# MLflow 3.17's UI keeps these choices in localStorage (no assertion depends on them).
UI_PREFS = """try {
  localStorage.setItem("mlflow.workflowType_v1", JSON.stringify("machine_learning"));
  localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
  localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
} catch (e) {}"""


def _need(ok: bool, reason: str) -> None:
    """Skip locally, fail in CI, when the machine cannot run the browser test."""
    if ok:
        return
    if IN_CI:
        pytest.fail(
            f"{reason} (CI=true: this test must run; scripts/ci_system_deps.sh installs chromium, "
            "the dev extra installs playwright)"
        )
    pytest.skip(reason)


def _chromium() -> str | None:
    override = os.environ.get("AUTOAL_CHROMIUM", "").strip()
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium_exe() -> str:
    """Checked before anything slow starts (session scope: set up ahead of ray_local)."""
    exe = _chromium()
    _need(
        exe is not None,
        "no Chromium: `chromium` is not on PATH (apt: chromium) or AUTOAL_CHROMIUM is not an executable file",
    )
    _need(
        importlib.util.find_spec("playwright") is not None,
        "the `playwright` package is not installed (pip install -e '.[dev]')",
    )
    return exe


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a free loopback port: SQLite backend store and artifact root in
    tmp_path (an explicit --artifacts-destination; no telemetry)."""
    with start_mlflow_server(
        tmp_path,
        artifacts=tmp_path / "artifacts",
        extra_env={"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
    ) as base:
        yield base


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def _shows_number(text: str, value: float) -> bool:
    """Whether `text` shows `value` (as the UI prints a float: any rounding to >= 3 decimals)."""
    for token in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text):
        decimals = len(token.split(".")[1].split("e")[0]) if "." in token else 0
        if decimals >= 3 and math.isclose(float(token), value, rel_tol=0, abs_tol=0.6 * 10**-decimals):
            return True
    return False


def _tick_columns(page, *titles: str) -> None:
    """Toggle columns in the open Columns menu (MLflow 3.17 lists each metric by its full key,
    `aubc/margin` included, as a tree node titled with it)."""
    for title in titles:
        page.locator(f'[title="{title}"]').locator(
            "xpath=preceding-sibling::span[contains(@class, 'checkbox')]"
        ).first.click()


def _close_menu(page) -> None:
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement && document.activeElement.blur()")  # no focus ring in the shot


def _loopback(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost")


@pytest.mark.timeout(420)
def test_dashboard_in_a_real_browser(chromium_exe, mlflow_server, ray_local, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import expect, sync_playwright

    from autoal.platform.sweep import SweepSpec, run_sweep
    from autoal.platform.sweep.driver import metric_key

    shots = Path(os.environ.get("AUTOAL_TEST_ARTIFACTS") or tmp_path / "screenshots").resolve()
    shots.mkdir(parents=True, exist_ok=True)
    readme_shot = os.environ.get("AUTOAL_SAVE_README_SCREENSHOT", "").strip()
    readme_shot = Path(readme_shot).resolve() if readme_shot else None
    monkeypatch.chdir(tmp_path)

    # ------------------------------------------------ the smallest sweep with >= 2 trial runs
    base_cfg = {
        "al": {"initial_size": 20, "query_size": 10, "rounds": 1, "mc_samples": 2},
        "train": {"epochs": 2, "batch_size": 32},
        "strategy": {"name": "margin", "params": {}},
        "tracking": {"uri": mlflow_server, "experiment": "dashboard"},
        "runtime": {"output_dir": str(tmp_path / "runs"), "quiet": True, "num_threads": 1},
    }
    spec = SweepSpec.from_dict(
        {
            "name": "dashboard",
            "space": {"strategy": ["random", "margin"]},
            "seeds": [0],
            "storage_path": str(tmp_path / "rr"),
            "progress_interval_s": 1000,
            "report": False,
        }
    )
    res = run_sweep(spec, base_cfg, out=lambda s: None)
    assert res.complete and len(res.trials) == 2 and res.tracking_uri == mlflow_server

    # what the server holds, to compare the pages against
    client = MlflowClient(tracking_uri=mlflow_server)
    exp_id = client.get_experiment_by_name("dashboard").experiment_id
    runs = client.search_runs([exp_id], filter_string=f"tags.sweep_id = '{res.sweep_id}'")
    parent = next(r for r in runs if r.info.run_id == res.parent_run_id)
    kids = sorted((r for r in runs if r.data.tags.get("autoal_role") == "trial"), key=lambda r: r.info.run_name)
    assert len(kids) == 2 and all("aubc" in k.data.metrics for k in kids)
    kid = kids[0]
    # the parent's per-arm AUBC (one seed per arm: the arm's mean is its trial's AUBC)
    arm_aubc = {f"aubc/{metric_key(k.data.tags['arm'])}": k.data.metrics["aubc"] for k in kids}
    assert sorted(arm_aubc) == ["aubc/margin", "aubc/random"], sorted(arm_aubc)
    for key, value in arm_aubc.items():
        assert parent.data.metrics.get(key) == pytest.approx(value), (key, parent.data.metrics)
    curve = Path(client.download_artifacts(kid.info.run_id, CURVE, str(tmp_path / "dl")))
    curve_size = _png_size(curve.read_bytes())

    external: list[str] = []

    def _block_external(route):
        external.append(route.request.url)
        route.abort()

    saved: list[Path] = []

    def _shot(page, name: str) -> Path:
        path = shots / f"dashboard_{name}.png"
        page.screenshot(path=str(path))
        saved.append(path)
        return path

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_exe,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            ctx = browser.new_context(viewport=VIEWPORT)
            ctx.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            ctx.add_init_script(UI_PREFS)
            ctx.route(lambda url: not _loopback(url), _block_external)  # the UI must not need the internet
            page = ctx.new_page()
            try:
                # ------------------------------------------------ experiment page: the arms, collapsed
                page.goto(f"{mlflow_server}/#/experiments/{exp_id}/runs")
                parent_row = page.locator(f'[role="row"][row-id="{parent.info.run_id}"]').first
                expect(parent_row).to_contain_text(parent.info.run_name)
                kid_rows = {k.info.run_id: page.locator(f'[role="row"][row-id="{k.info.run_id}"]').first for k in kids}
                for k in kids:  # nested runs start collapsed under the parent: nothing expanded yet
                    expect(kid_rows[k.info.run_id]).to_be_hidden()
                # Columns menu: drop three empty attribute columns, tick the parent's per-arm AUBC
                page.get_by_role("button", name="Columns").click()
                _tick_columns(page, "Dataset", "Source", "Models", *sorted(arm_aubc))
                _close_menu(page)
                for key in arm_aubc:
                    expect(page.get_by_role("columnheader", name=key, exact=True).first).to_be_visible()
                parent_cells = page.locator(f'[role="row"][row-id="{parent.info.run_id}"]')
                expect(parent_cells.filter(has_text=re.compile(r"\d\.\d{3}.*\d\.\d{3}", re.DOTALL))).to_have_count(1)
                text = " ".join(parent_cells.all_inner_texts())
                for key in arm_aubc:
                    assert _shows_number(text, parent.data.metrics[key]), (key, text)
                for k in kids:
                    expect(kid_rows[k.info.run_id]).to_be_hidden()  # seen on the collapsed parent row
                _shot(page, "arms")

                # ------------------------------------------------ expanded: the trial runs
                parent_row.locator('button[data-component-id*="runnamecellrenderer"]').click()
                for k in kids:
                    expect(kid_rows[k.info.run_id]).to_be_visible()
                    expect(kid_rows[k.info.run_id]).to_contain_text(k.info.run_name)
                # the trials' AL metrics as columns too
                page.get_by_role("button", name="Columns").click()
                _tick_columns(page, "aubc", "final_accuracy")
                _close_menu(page)
                expect(page.get_by_role("columnheader", name="aubc", exact=True).first).to_be_visible()
                text = " ".join(parent_cells.all_inner_texts())
                for key in arm_aubc:  # still on the parent row, above its trials
                    assert _shows_number(text, parent.data.metrics[key]), (key, text)
                for k in kids:
                    cells = page.locator(f'[role="row"][row-id="{k.info.run_id}"]')
                    expect(cells.filter(has_text=re.compile(r"\d\.\d{3}"))).to_have_count(1)
                    text = " ".join(cells.all_inner_texts())
                    assert _shows_number(text, k.data.metrics["aubc"]), (k.info.run_name, text)
                experiment_png = _shot(page, "experiment")

                # ------------------------------------------------ a trial's run page: the aubc metric
                page.get_by_role("link", name=kid.info.run_name, exact=True).first.click()
                expect(page.get_by_role("heading", name=kid.info.run_name)).to_be_visible()
                aubc_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="aubc", exact=True))
                expect(aubc_row).to_be_visible()
                assert _shows_number(aubc_row.inner_text(), kid.data.metrics["aubc"]), aubc_row.inner_text()
                expect(page.get_by_text(kid.info.run_id, exact=True).first).to_be_visible()
                _shot(page, "run")

                # ------------------------------------------------ its Artifacts tab: the learning curve
                page.get_by_role("tab", name="Artifacts").click()
                page.get_by_text(CURVE, exact=True).first.click()
                img = page.locator(f'img[alt="{CURVE}"]')
                expect(img).to_be_visible()
                page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
                assert tuple(img.evaluate("img => [img.naturalWidth, img.naturalHeight]")) == curve_size
                _shot(page, "artifacts")

                # ------------------------------------------------ the compare view of the two trials
                ids = [k.info.run_id for k in kids]
                page.goto(f"{mlflow_server}/#/compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([exp_id])}")
                expect(page.get_by_text("Comparing 2 Runs", exact=False).first).to_be_visible()
                for k in kids:
                    expect(page.get_by_role("link", name=k.info.run_id).first).to_be_visible()
                    expect(page.get_by_text(k.info.run_name, exact=True).first).to_be_visible()
                expect(page.get_by_text("aubc", exact=True).first).to_be_attached()
                expect(page.locator(".js-plotly-plot").first).to_be_visible()  # the lazily loaded plot
                _shot(page, "compare")
            except BaseException:
                try:
                    _shot(page, "failure")
                except Exception:  # noqa: BLE001 - the original error matters more
                    pass
                raise
        finally:
            browser.close()

    for path in saved:
        data = path.read_bytes()
        assert _png_size(data) == (VIEWPORT["width"], VIEWPORT["height"]) and len(data) > 20_000, path
    if readme_shot is not None:
        readme_shot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(experiment_png, readme_shot)
    if external:
        print(f"the dashboard asked for {len(external)} non-loopback URL(s), blocked: {sorted(set(external))[:10]}")
