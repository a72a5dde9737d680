"""The follow-up pages in headless Chromium (Debian's, through Playwright): the patient list,
the tracking page's table and charts, a merge correction changing the table, the CSV
download. Screenshots go to test-artifacts/followup/ (docs/img/ holds copies)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from _followup_support import PATIENT_ID, VISITS, visit_seg, wait_for_patient
from conftest import LiveServer, multipart, to_bytes

pytestmark = pytest.mark.peer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "followup"

# Distinct colours in a sample of a canvas: 1 for a blank one, many once a chart is drawn.
_CANVAS_COLOURS = """(id) => {
  const canvas = document.querySelector(id);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 13) {
    seen.add([data[i], data[i + 1], data[i + 2], data[i + 3]].join(','));
  }
  return seen.size;
}"""


def test_tracking_page_in_chromium(live_server: LiveServer) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    for index in range(len(VISITS)):
        datasets, seg, _ = visit_seg(index)
        body, content_type = multipart([to_bytes(ds) for ds in [*datasets, seg]])
        answer = httpx.post(
            f"{live_server.url}/dicom-web/studies",
            content=body,
            headers={"Content-Type": content_type},
            timeout=120,
        )
        assert answer.status_code == 200
    wait_for_patient(live_server.url, PATIENT_ID, timepoints=4, sources=4)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            page.goto(f"{live_server.url}/followup")
            row = page.locator("#patient-table tbody tr", has_text=PATIENT_ID)
            sync_api.expect(row).to_contain_text("PD")
            page.screenshot(path=str(ARTIFACTS / "patients.png"))
            row.get_by_role("link").click()
            page.wait_for_selector("body[data-ready=true]")
            rows = page.locator("#tracking-table tbody tr")
            sync_api.expect(rows).to_have_count(4)
            sync_api.expect(page.locator("#tracking-table tfoot")).to_contain_text("PR")
            for chart in ("#chart-sum", "#chart-diameter", "#chart-volume"):
                assert page.evaluate(_CANVAS_COLOURS, chart) > 20, chart
            points = page.evaluate(
                "Chart.getChart(document.querySelector('#chart-sum')).data.datasets[0].data"
            )
            assert len(points) == 4 and points[0] == pytest.approx(56, abs=3)
            page.screenshot(path=str(ARTIFACTS / "tracking.png"), full_page=True)
            # merge L1 with L2: one row fewer, the correction listed
            page.select_option("#merge-into", index=0)
            page.select_option("#merge-other", index=1)
            page.click("#merge-button")
            sync_api.expect(rows).to_have_count(3)
            sync_api.expect(page.locator("#corrections")).to_contain_text("merge by local")
            page.screenshot(path=str(ARTIFACTS / "tracking-merged.png"), full_page=True)
            with page.expect_download() as download_info:
                page.click("#export-csv")
            download = download_info.value
            assert download.suggested_filename == f"followup-{PATIENT_ID}.csv"
            table = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
            assert len(table) == 3 * 4
            assert {r["tracking_id"] for r in table} == {"L1", "L2", "L3"}
        finally:
            browser.close()
