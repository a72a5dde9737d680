"""Callback apps end to end: the example app (examples/threshold_app) as a separate real
process, registered with a live ``radpacs serve --auth``, triggered on the arrival of a CT
series and on demand (asking for a SEG). Its JSON results become SR series in the study, its
SEG is stored over STOW-RS with the request's scoped token, both are found by QIDO-RS, the
workitems are COMPLETED, and OHIF (headless Chromium, logged in) draws the regions SR.

Needs the OHIF peers of tests/test_web_overlays.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from _apps_support import BLOB_SLICES, ExampleApp, blob_series
from _dciodvfy import dciodvfy_errors
from conftest import LiveServer, multipart, to_bytes
from radpacs.client import RadpacsClient
from test_apps_ohif import open_sr_in_ohif
from test_web_e2e import CHROMIUM, CHROMIUM_ARGS, playwright_api, require_viewer_and_browser
from test_web_overlays import ARTIFACTS, _box, _coloured

pytestmark = pytest.mark.peer

PASSWORD = "appsr-admin-pw-1"
WAIT = 120.0  # a loaded machine starts the job worker slowly


def wait_for(probe: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: nothing after {timeout:g} s")


@pytest.fixture
def pacs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RADPACS_ADMIN_USER", "root")
    monkeypatch.setenv("RADPACS_ADMIN_PASSWORD", PASSWORD)
    live = LiveServer(tmp_path / "data", ["--auth"]).start()
    yield live
    live.stop()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ExampleApp]:
    running = ExampleApp(tmp_path).start()
    yield running
    running.stop()


def _completed(http: httpx.Client, uid: str) -> dict[str, Any]:
    last: list[dict[str, Any]] = [{}]

    def probe() -> dict[str, Any] | None:
        last[0] = http.get(f"/api/apps/analyses/{uid}").json()
        assert last[0]["state"] != "CANCELED", last[0]
        return last[0] if last[0]["state"] == "COMPLETED" else None

    try:
        found: dict[str, Any] = wait_for(probe, f"analysis {uid} COMPLETED")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the analysis: {last[0]}") from None
    return found


def test_the_example_app_on_arrival_and_on_demand_with_sr_seg_and_ohif(
    pacs: LiveServer, app: ExampleApp, tmp_path: Path
) -> None:
    login = httpx.post(f"{pacs.url}/api/auth", data={"username": "root", "password": PASSWORD})
    token = str(login.json()["token"])
    http = httpx.Client(base_url=pacs.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    registered = http.post(
        "/api/apps",
        json={
            "name": "threshold",
            "url": app.url + "/",
            "modalities": ["CT"],
            "trigger": "on-arrival",
            "stable_seconds": 0.5,
        },
    )
    assert registered.status_code == 201, registered.text

    # on arrival: storing the CT series runs the app
    series = blob_series()
    study, series_uid = str(series[0].StudyInstanceUID), str(series[0].SeriesInstanceUID)
    body, content_type = multipart([to_bytes(ds) for ds in series])
    stored = http.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text

    def arrival() -> str | None:
        found = http.get("/api/apps/analyses", params={"app": "threshold"}).json()["analyses"]
        return str(found[0]["workitem"]) if found else None

    on_arrival = _completed(http, wait_for(arrival, "an analysis on arrival"))
    assert on_arrival["trigger"] == "on-arrival" and on_arrival["series"] == [series_uid]
    result = on_arrival["result"]
    blob_images = {str(series[k].SOPInstanceUID) for k in BLOB_SLICES}
    outlines = [r for r in result["regions"] if r["graphic_type"] == "POLYGON"]
    assert {r["image"]["sop_instance_uid"] for r in outlines} == blob_images
    assert result["display_text"].startswith("2 bright blob(s)")
    assert len(on_arrival["result_series"]) == 2  # the regions SR and the findings SR

    # on demand, asking for a SEG too
    demanded = http.post(
        "/api/apps/threshold/analyses",
        json={"study": study, "series": series_uid, "parameters": {"seg": True}},
    )
    assert demanded.status_code == 202, demanded.text
    on_demand = _completed(http, str(demanded.json()["workitem"]))
    assert on_demand["result"]["regions"] == result["regions"]

    for uid in (on_arrival["workitem"], on_demand["workitem"]):
        item = http.get(f"/dicom-web/workitems/{uid}")
        assert item.status_code == 200 and item.json()[0]["00741000"]["Value"] == ["COMPLETED"]

    found = http.get(f"/dicom-web/studies/{study}/series").json()
    modalities = sorted(s["00080060"]["Value"][0] for s in found)
    assert modalities == ["CT", "SEG", "SR", "SR", "SR", "SR"], modalities
    seg_series = next(s for s in found if s["00080060"]["Value"][0] == "SEG")
    with RadpacsClient(pacs.url, token) as client:
        [seg_path] = client.retrieve(study, tmp_path / "seg", seg_series["0020000E"]["Value"][0])
        sr_paths = [
            path
            for uid in on_arrival["result_series"]
            for path in client.retrieve(study, tmp_path / "sr", uid)
        ]
    seg = pydicom.dcmread(seg_path)
    assert dciodvfy_errors(seg) == []
    assert seg.SegmentSequence[0].SegmentLabel == "bright blob"
    for path in sr_paths:
        assert dciodvfy_errors(pydicom.dcmread(path)) == []

    # OHIF draws the regions SR over the CT
    sync_api = playwright_api()
    require_viewer_and_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(pacs.url + "/")
            sync_api.expect(page.locator("dialog#login")).to_be_visible(timeout=15_000)
            page.fill("#login-username", "root")
            page.fill("#login-password", PASSWORD)
            page.click("#login-button")
            sync_api.expect(page.locator("dialog#login")).to_be_hidden(timeout=15_000)
            failures: list[str] = []
            url = f"{pacs.url}/viewer/viewer?StudyInstanceUIDs={study}"
            before, after = open_sr_in_ohif(page, sync_api, url, failures, "threshold regions")
            page.screenshot(path=str(ARTIFACTS / "app-e2e-ohif.png"))
        finally:
            browser.close()
    assert [f for f in failures if pacs.url in f] == []
    new = _coloured(after) & ~_coloured(before)
    assert new.sum() >= 100, f"{new.sum()} new coloured pixels"
    disc = _box(after.min(axis=2) > 150)  # the ball's light grey disc, on the SR's slice
    drawn = _box(new)
    assert drawn[0] <= disc[0] + 8 and drawn[1] >= disc[1] - 8, (disc, drawn)
    assert drawn[2] <= disc[2] + 8 and drawn[3] >= disc[3] - 8, (disc, drawn)
