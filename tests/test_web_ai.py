"""AI from the web UI in headless Chromium: upload a CT series, "Analyze" it with the
classical segmenter, watch the progress, see the lesion listed with its volume, and open the
study in OHIF with the SEG, RTSTRUCT and SR series beside the CT.

Same peers as test_web_e2e (Debian's chromium, playwright without its browsers, OHIF).
Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from _ai_support import body_phantom, make_series
from conftest import LiveServer, to_bytes
from test_web_e2e import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_viewer_and_browser

pytestmark = pytest.mark.peer

SPACING_KJI = (2.0, 1.0, 1.0)
# Sampled pixels of any canvas in the viewport whose red, green and blue differ (a coloured
# overlay over the grey CT).
_COLOURED = """() => {
  let count = 0;
  for (const canvas of document.querySelectorAll('canvas')) {
    if (!canvas.width) continue;
    const context = canvas.getContext('2d');
    if (!context) continue;
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4 * 7) {
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 40) count += 1;
    }
  }
  return count;
}"""
RADIUS = 7.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    require_viewer_and_browser()
    live = LiveServer(tmp_path / "data", ["--no-auth"]).start()
    yield live
    live.stop()


@pytest.fixture
def ct_files(tmp_path: Path) -> tuple[list[Path], float]:
    """A 20-slice CT: body at 40 HU, one lesion at 160 HU of 7 mm radius, noise 10 HU."""
    array, [truth] = body_phantom(
        (20, 80, 80), SPACING_KJI, 40, 10, [((20.0, 40.0, 40.0), RADIUS, 160.0)]
    )
    datasets = make_series(array, spacing=(1.0, 1.0, 2.0), description="Analyze me")
    folder = tmp_path / "ct"
    folder.mkdir()
    paths = []
    for number, ds in enumerate(datasets):
        ds.PatientName, ds.PatientID = "Analyze^Test", "AI-WEB-1"
        path = folder / f"slice{number:02d}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return paths, truth


def test_analyze_a_study_from_the_list_and_open_the_result_in_ohif(
    server: LiveServer, ct_files: tuple[list[Path], float]
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    paths, truth = ct_files
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "/")
            page.set_input_files("#file-input", [str(p) for p in paths])
            row = page.locator("#study-table tbody tr", has_text="AI-WEB-1")
            row.wait_for(timeout=30_000)

            row.locator("button.analyze").click()
            dialog = page.locator("dialog#analyze")
            sync_api.expect(dialog).to_be_visible()
            sync_api.expect(page.locator("#analyze-run")).to_be_enabled(timeout=30_000)
            options = page.locator("#analyze-model option").all_inner_texts()
            assert any(o.startswith("classical-segmenter") for o in options)
            assert not any(o.startswith("xray-exposure") for o in options)  # CT: not accepted
            page.select_option("#analyze-model", "classical-segmenter")
            page.fill("#analyze-parameters", "{not json")
            page.click("#analyze-run")
            sync_api.expect(page.locator("#analyze-status")).to_contain_text("not valid JSON")
            page.fill("#analyze-parameters", '{"polarity": "bright"}')
            page.click("#analyze-run")
            sync_api.expect(page.locator("#analyze-progress")).to_be_visible()
            sync_api.expect(page.locator("#analyze-status")).to_contain_text("Job")
            sync_api.expect(page.locator("#analyze-status")).to_have_text(
                "Job succeeded", timeout=120_000
            )
            assert page.locator("#analyze-progress").evaluate("p => p.value") == 1
            [label] = page.locator("#analyze-results li.result-label").all_inner_texts()
            match = re.match(r"region 1: (\d+) mm³", label)
            assert match is not None, label
            assert int(match.group(1)) == pytest.approx(truth, rel=0.1)
            stored = page.locator("#analyze-results li", has_text="Stored:").inner_text()
            assert all(m in stored for m in ("SEG", "RTSTRUCT", "SR"))
            dialog.screenshot(path=str(ARTIFACTS / "analyze.png"))

            with page.context.expect_page() as opened:
                page.locator("a.open-results").click()
            viewer = opened.value
            viewer.set_viewport_size({"width": 1280, "height": 800})
            viewer.wait_for_selector("canvas.cornerstone-canvas", timeout=60_000)
            for modality in ("SEG", "RTSTRUCT", "SR"):
                sync_api.expect(viewer.get_by_text(modality, exact=True).first).to_be_visible(
                    timeout=60_000
                )
            skip = viewer.get_by_text("Skip all")
            if skip.count():
                skip.first.click()
            # load the SEG into the viewport: its segment is drawn in colour over the CT
            viewer.get_by_text("SEG", exact=True).first.dblclick()
            yes = viewer.get_by_role("button", name=re.compile("^Yes$"))
            with contextlib.suppress(sync_api.TimeoutError):  # some versions do not ask
                yes.first.click(timeout=10_000)
            viewer.wait_for_function(f"({_COLOURED})() > 20", timeout=60_000)
            viewer.screenshot(path=str(ARTIFACTS / "analyze-ohif.png"))
            viewer.close()

            # a bad request is said in words
            page.fill("#analyze-parameters", '{"lower": 500, "upper": 100}')
            page.click("#analyze-run")
            sync_api.expect(page.locator("#analyze-status")).to_contain_text(
                "upper", timeout=120_000
            )
        finally:
            browser.close()
