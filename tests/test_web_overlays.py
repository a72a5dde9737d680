"""OHIF 3.13 served by radpacs shows a SEG and an RTSTRUCT stored in a study as overlays.

A 10-slice CT with a bright ball, a binary SEG and an RT Structure Set of that ball made by
radpacs's own writers (``radpacs.ai.results``) are stored by one STOW request into one study
on a live ``radpacs serve`` (auth off). Headless Chromium opens the study in OHIF; for each
of the SEG and the RTSTRUCT, on a fresh page, the test double-clicks its display set in the
study panel, accepts OHIF's "open this Segmentation?" prompt, and checks on screenshots of
the viewport that pixels of the label's colour appeared where the ball is drawn, and that no
radpacs request answered 4xx/5xx.

Needs Debian's chromium, the playwright package and OHIF (``radpacs viewer install``), like
tests/test_web_e2e.py, and fails in CI rather than skipping when one is missing. Screenshots
go to test-artifacts/web/overlay-*.png.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from _ai_support import ball, make_series
from conftest import LiveServer, multipart, to_bytes
from radpacs.ai.geometry import volume_from_datasets
from radpacs.ai.provenance import Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.rtstruct import build_rtstruct
from radpacs.ai.results.seg import build_seg
from test_web_e2e import CHROMIUM, CHROMIUM_ARGS, playwright_api, require_viewer_and_browser

pytestmark = pytest.mark.peer

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
SHAPE = (10, 64, 64)  # slices, rows, columns
SPACING = (1.0, 1.0, 3.0)  # column, row, slice (mm)
COLOUR = (40, 200, 60)  # the label's display colour: green, unlike OHIF's default palette
MARGIN = 30  # a pixel is coloured when |R-G| or |G-B| exceeds this
PROVENANCE = Provenance("overlay-test", "1.0", "ab" * 32)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    require_viewer_and_browser()
    live = LiveServer(tmp_path / "data").start()  # auth off: conftest sets the env
    yield live
    live.stop()


def _payloads() -> tuple[str, list[bytes]]:
    """The study UID and the files: CT slices (a ball of 600 HU on a ramp), SEG, RTSTRUCT."""
    mask = ball(SHAPE, (4.5, 32, 32), 20.0, SPACING)  # on every slice
    ramp = np.indices(SHAPE)[2] * 2
    array = np.where(mask, 600, ramp).astype(np.int16)
    datasets = make_series(array, spacing=SPACING, description="CT with a ball")
    for ds in datasets:  # the ball mid-grey, so that a contour line on its edge stands out
        ds.WindowCenter, ds.WindowWidth = 300, 1200
    volume = volume_from_datasets(datasets)
    label_map = (volume.array > 300).astype(np.uint8)
    labels = {1: Label("ball", COLOUR)}
    results = [
        build_seg(volume, label_map, labels, PROVENANCE),
        build_rtstruct(volume, label_map, labels, PROVENANCE),
    ]
    files = [to_bytes(ds) for ds in datasets]
    for ds in results:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return str(datasets[0].StudyInstanceUID), files


def _pixels(png: bytes) -> npt.NDArray[np.int16]:
    """RGB pixels of the image area of a viewport screenshot (the action bar, the prompt and
    the corner overlays, the frame and the scroll bar left out)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    height, width = rgb.shape[:2]
    return rgb[int(0.15 * height) : int(0.9 * height), int(0.02 * width) : int(0.96 * width)]


def _coloured(rgb: npt.NDArray[np.int16]) -> npt.NDArray[np.bool_]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.asarray((np.abs(r - g) > MARGIN) | (np.abs(g - b) > MARGIN))


def _box(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def _open_overlay(
    browser: Any, sync_api: Any, url: str, modality: str, failures: list[str]
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16], Any]:
    """Open the study on a fresh page, load the ``modality`` display set into the viewport;
    the viewport pixels before and after, and the page."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
        ),
    )
    page.on(
        "console",
        lambda m: failures.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.goto(url)
    page.wait_for_selector("canvas.cornerstone-canvas", timeout=60_000)
    pane = page.locator('[data-cy="viewport-pane"]').first
    # the CT is drawn when the ball (light grey) is on screen
    deadline = time.monotonic() + 60
    while (_pixels(pane.screenshot()).min(axis=2) > 150).sum() < 1000:
        assert time.monotonic() < deadline, "OHIF did not draw the CT series"
        time.sleep(0.3)
    tour = page.get_by_text("Skip all")  # OHIF's first-visit guided tour covers the page
    if tour.count():
        tour.first.click()
    before = _pixels(pane.screenshot())

    thumbnail = page.locator('[data-cy="study-browser-thumbnail-no-image"]', has_text=modality)
    sync_api.expect(thumbnail).to_have_count(1, timeout=30_000)
    thumbnail.dblclick()
    accept = page.get_by_role("button", name="Yes")  # "Do you want to open this Segmentation?"
    accept.wait_for(timeout=30_000)
    accept.click()
    sync_api.expect(accept).to_have_count(0, timeout=15_000)
    deadline = time.monotonic() + 30
    after = _pixels(pane.screenshot())
    while _coloured(after).sum() - _coloured(before).sum() < 300 and time.monotonic() < deadline:
        time.sleep(0.3)
        after = _pixels(pane.screenshot())
    return before, after, page


def test_ohif_shows_seg_and_rtstruct_overlays(server: LiveServer) -> None:
    sync_api = playwright_api()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    study, files = _payloads()
    body, content_type = multipart(files)
    stored = httpx.post(
        f"{server.url}/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert stored.status_code == 200, stored.text
    assert len(stored.json()["00081199"]["Value"]) == len(files)  # ReferencedSOPSequence
    url = f"{server.url}/viewer/viewer?StudyInstanceUIDs={study}"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for modality, least in (("SEG", 5000), ("RTSTRUCT", 300)):
                failures: list[str] = []
                before, after, page = _open_overlay(browser, sync_api, url, modality, failures)
                name = modality.lower()
                page.screenshot(path=str(ARTIFACTS / f"overlay-{name}.png"))
                page.close()
                new = _coloured(after) & ~_coloured(before)
                radpacs_errors = [f for f in failures if f[0].isdigit() and server.url in f]
                assert radpacs_errors == [], radpacs_errors
                assert _coloured(before).sum() < 50, f"{modality}: colour before loading"
                assert new.sum() >= least, (
                    f"{modality}: {new.sum()} new coloured pixels; {failures}"
                )
                # in the label's colour (green dominant), not OHIF's default palette
                hue = after[new].mean(axis=0)
                assert hue[1] > hue[0] + MARGIN and hue[1] > hue[2] + MARGIN, (modality, hue)
                # where the ball is: the overlay's box matches the bright disc's box
                disc = _box(before.min(axis=2) > 150)
                overlay = _box(new)
                assert all(abs(a - b) <= 8 for a, b in zip(disc, overlay, strict=True)), (
                    modality,
                    disc,
                    overlay,
                )
        finally:
            browser.close()
