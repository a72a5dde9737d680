"""OHIF draws the regions of an app's result: the SR that radpacs.apps.to_dicom writes.

A 5-slice CT with a bright square and the regions SR of a JSON result outlining that square
(a 16-corner POLYGON), with a CIRCLE, an ELLIPSE, a 2-point POLYLINE and a POINT inside, are
stored by STOW-RS on a live ``radpacs serve`` (auth off). Headless Chromium opens the study
in OHIF, double-clicks the SR display set, and checks on viewport screenshots that coloured
annotation pixels appeared around the square, and that no radpacs request answered 4xx/5xx.

Same peers as tests/test_web_overlays.py. Screenshots go to test-artifacts/web/app-sr*.png.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from pydicom import Dataset

from _ai_support import make_series
from conftest import LiveServer, multipart, to_bytes
from radpacs.apps.to_dicom import result_datasets
from radpacs.client.apps import AnalysisResult, GraphicType, ImageRef, Region, ResultStatus
from test_web_e2e import CHROMIUM, CHROMIUM_ARGS, playwright_api, require_viewer_and_browser
from test_web_overlays import ARTIFACTS, _box, _coloured, _pixels

pytestmark = pytest.mark.peer

SHAPE = (5, 64, 64)
SQUARE = (20, 44)  # rows and columns of the bright square, [start, stop)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    require_viewer_and_browser()
    live = LiveServer(tmp_path / "data").start()  # auth off: conftest sets the env
    yield live
    live.stop()


def sr_study() -> tuple[str, list[Dataset], Dataset]:
    """A CT series (a 600 HU square on a ramp, mid-grey in its window) and the regions SR of
    a result outlining the square on the middle slice."""
    low, high = SQUARE
    array = np.tile(np.indices(SHAPE[1:])[1] * 2, (SHAPE[0], 1, 1))
    array[:, low:high, low:high] = 600
    datasets = make_series(array.astype(np.int16), spacing=(1.0, 1.0, 3.0), shuffle=False)
    for ds in datasets:
        ds.WindowCenter, ds.WindowWidth = 300, 1200
    middle = sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))[2]
    image = ImageRef(sop_instance_uid=str(middle.SOPInstanceUID))
    centre, radius = (low + high) / 2, (high - low) / 2
    outline = [
        (centre + radius * math.cos(k * math.pi / 8), centre + radius * math.sin(k * math.pi / 8))
        for k in range(16)
    ]  # a 16-gon touching the square's sides
    regions = [
        (GraphicType.POLYGON, outline),
        (GraphicType.CIRCLE, [(centre, centre), (centre, centre + 6)]),
        (
            GraphicType.ELLIPSE,
            [(centre - 8, centre), (centre + 8, centre), (centre, 29), (centre, 35)],
        ),
        (GraphicType.POLYLINE, [(centre - 4, centre - 4), (centre + 4, centre + 4)]),
        (GraphicType.POINT, [(centre, centre)]),
    ]
    result = AnalysisResult(
        status=ResultStatus.COMPLETED,
        regions=[
            Region(label=kind.value.lower(), graphic_type=kind, image=image, points=points)
            for kind, points in regions
        ],
    )
    [sr] = result_datasets(result, datasets, app_name="ohif-test", workitem_uid="2.25.99")
    return str(middle.StudyInstanceUID), datasets, sr


def open_sr_in_ohif(
    page: Any, sync_api: Any, url: str, failures: list[str], description: str
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Open the study in OHIF on ``page`` and load the SR display set whose thumbnail shows
    ``description``; the viewport pixels before (the CT) and after (the SR drawn over it).
    Responses with 4xx/5xx are added to ``failures``."""
    page.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
        ),
    )
    page.goto(url)
    page.wait_for_selector("canvas.cornerstone-canvas", timeout=60_000)
    pane = page.locator('[data-cy="viewport-pane"]').first
    deadline = time.monotonic() + 60
    while (_pixels(pane.screenshot()).max(axis=2) > 50).sum() < 5000:  # the CT is drawn
        assert time.monotonic() < deadline, "OHIF did not draw the CT series"
        time.sleep(0.3)
    tour = page.get_by_text("Skip all")
    if tour.count():
        tour.first.click()
    before = _pixels(pane.screenshot())
    thumbnail = page.locator('[data-cy="study-browser-thumbnail-no-image"]', has_text=description)
    sync_api.expect(thumbnail.first).to_be_visible(timeout=30_000)
    thumbnail.first.dblclick()
    accept = page.get_by_role("button", name="Yes")  # some versions ask to track
    with contextlib.suppress(sync_api.TimeoutError):
        accept.first.click(timeout=5_000)
    deadline = time.monotonic() + 45
    after = _pixels(pane.screenshot())
    while _coloured(after).sum() - _coloured(before).sum() < 100 and time.monotonic() < deadline:
        time.sleep(0.3)
        after = _pixels(pane.screenshot())
    return before, after


def test_ohif_draws_the_regions_of_an_app_result(server: LiveServer) -> None:
    sync_api = playwright_api()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    study, datasets, sr = sr_study()
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    body, content_type = multipart([*(to_bytes(ds) for ds in datasets), buffer.getvalue()])
    stored = httpx.post(
        f"{server.url}/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert stored.status_code == 200, stored.text
    url = f"{server.url}/viewer/viewer?StudyInstanceUIDs={study}"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            failures: list[str] = []
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            before, after = open_sr_in_ohif(page, sync_api, url, failures, "ohif-test regions")
            page.screenshot(path=str(ARTIFACTS / "app-sr.png"))
            new = _coloured(after) & ~_coloured(before)
            radpacs_errors = [f for f in failures if server.url in f]
            assert radpacs_errors == [], radpacs_errors
            assert new.sum() >= 100, f"{new.sum()} new coloured pixels; {failures}"
            # the outline lies on the square's edge: the drawing's box holds the square's
            square = _box(before.min(axis=2) > 150)
            drawn = _box(new)
            assert drawn[0] <= square[0] + 8 and drawn[1] >= square[1] - 8, (square, drawn)
            assert drawn[2] <= square[2] + 8 and drawn[3] >= square[3] - 8, (square, drawn)
        finally:
            browser.close()
