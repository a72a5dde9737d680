"""End to end in headless Chromium with auth ON: log in through the page's form as an
uploader, upload a CT series, see it in the list (delete disabled for that role), log out,
log in as an administrator, open the study in OHIF (authenticated by the session cookie
alone), check that the viewport draws the uploaded CT (a screenshot of the viewport,
cropped to a white frame burnt into the uploaded pixels, correlates with radpacs's own
``/rendered`` image of that instance in the same stored window), delete it through the dialog.

Needs Debian's chromium (``apt-get install -y chromium``), the playwright package (test extra;
its own browsers are never downloaded) and OHIF (``radpacs viewer install``): a missing one
fails the test in CI (tests/_ci_peers.py) rather than skipping it. Screenshots go to
test-artifacts/web/.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from PIL import Image
from typer.testing import CliRunner

from _ci_peers import in_ci
from conftest import LiveServer, make_ct, to_bytes
from radpacs.cli import app as cli_app
from radpacs.settings import load_settings
from radpacs.web.ohif import installed_version
from radpacs.web.viewer import viewer_dir

pytestmark = pytest.mark.peer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_viewer_and_browser() -> None:
    """Fail (not skip) when the OHIF build or Debian's Chromium is missing: scripts/test
    installs both, so their absence is a broken set-up, not an optional peer."""
    if installed_version(viewer_dir(load_settings())) is None:
        pytest.fail(
            "OHIF is not installed: run `radpacs viewer install` (needs npm) before this test"
        )
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")


def playwright_api() -> Any:
    """``playwright.sync_api``; when the package is missing the test fails in CI (where
    scripts/test installs it) and skips elsewhere."""
    try:
        return importlib.import_module("playwright.sync_api")
    except ImportError as exc:
        if in_ci():
            pytest.fail(f"the playwright package (test extra) is missing: {exc}")
        pytest.skip(f"playwright is not installed: {exc}")


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
SLICES = 6
PASSWORDS = {"ada": "uploader password", "root": "administrator password"}
ROLES = {"ada": "uploader", "root": "admin"}
FRAME = 3  # pixels of the white border burnt into every uploaded slice
WINDOW = (40, 400)  # the stored soft-tissue window (HU) OHIF and /rendered both apply

# Distinct grey levels in a sample of the viewport canvas (1 for a blank or uniform canvas).
_CANVAS_LEVELS = """() => {
  const canvas = document.querySelector('canvas.cornerstone-canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const levels = new Set();
  for (let i = 0; i < data.length; i += 4 * 31) levels.add(data[i]);
  return levels.size;
}"""


@pytest.fixture
def ct_files(tmp_path: Path) -> list[Path]:
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    folder = tmp_path / "ct"
    folder.mkdir()
    paths = []
    for number in range(1, SLICES + 1):
        ds = make_ct(
            study,
            series,
            PatientName="Browser^Test",
            PatientID="E2E-1",
            AccessionNumber="ACC-E2E",
            StudyDescription="CT through the web UI",
            InstanceNumber=number,
        )
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * number]
        ds.WindowCenter, ds.WindowWidth = WINDOW
        pixels = ds.pixel_array.copy()  # the marker: a white frame at the image's edge
        pixels[:FRAME, :] = pixels[-FRAME:, :] = pixels[:, :FRAME] = pixels[:, -FRAME:] = 2000
        ds.PixelData = pixels.tobytes()
        ds.SliceLocation = 5.0 * number
        path = folder / f"slice{number}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return paths


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    require_viewer_and_browser()
    data = tmp_path / "data"
    for name, role in ROLES.items():  # as an administrator would: radpacs user add
        result = CliRunner().invoke(
            cli_app,
            ["user", "add", name, "--role", role, "--password-stdin", "--data-dir", str(data)],
            input=PASSWORDS[name] + "\n",
        )
        assert result.exit_code == 0, result.output
    live = LiveServer(data, ["--auth"]).start()
    yield live
    live.stop()


def _grey(png: bytes) -> npt.NDArray[np.float64]:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)


def _framed(grey: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The part of a viewport screenshot inside the white frame: the rows and columns where
    white pixels run along most of the frame's length (corner texts are short)."""
    white = grey > 200
    rows = np.nonzero(white.sum(axis=1) >= 0.6 * white.sum(axis=1).max())[0]
    cols = np.nonzero(white.sum(axis=0) >= 0.6 * white.sum(axis=0).max())[0]
    assert rows.size >= 2 and cols.size >= 2, "no white frame in the viewport"
    return grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _correlation(shown: npt.NDArray[np.float64], rendered: npt.NDArray[np.float64]) -> float:
    """Pearson correlation of the framed screenshot and the rendered image resized to it."""
    height, width = shown.shape
    resized = Image.fromarray(rendered.astype(np.uint8)).resize((width, height), Image.BILINEAR)
    return float(np.corrcoef(shown.ravel(), np.asarray(resized, dtype=np.float64).ravel())[0, 1])


def _log_in(page: Any, sync_api: Any, name: str, password: str | None = None) -> None:
    dialog = page.locator("dialog#login")
    sync_api.expect(dialog).to_be_visible(timeout=15_000)
    page.fill("#login-username", name)
    page.fill("#login-password", PASSWORDS[name] if password is None else password)
    page.click("#login-button")
    if password is None:
        sync_api.expect(dialog).to_be_hidden(timeout=15_000)
        sync_api.expect(page.locator("#who")).to_have_text(f"{name} ({ROLES[name]})")


def test_upload_view_delete_in_chromium(server: LiveServer, ct_files: list[Path]) -> None:
    sync_api = playwright_api()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url + "/")
            sync_api.expect(page.locator("dialog#login")).to_be_visible(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "login.png"))
            _log_in(page, sync_api, "ada", password="not the password")
            sync_api.expect(page.locator("#login-error")).to_have_text(
                "Wrong user name or password."
            )
            page.screenshot(path=str(ARTIFACTS / "login-refused.png"))
            _log_in(page, sync_api, "ada")
            assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts never see it

            page.set_input_files("#file-input", [str(path) for path in ct_files])
            row = page.locator("#study-table tbody tr", has_text="E2E-1")
            row.wait_for(timeout=30_000)
            summary = page.locator(".upload-summary").first
            sync_api.expect(summary).to_have_text(f"{SLICES} instances stored.", timeout=30_000)
            assert row.locator("td").nth(7).inner_text() == str(SLICES)
            sync_api.expect(row.locator("button.delete")).to_be_disabled()  # uploader
            page.screenshot(path=str(ARTIFACTS / "study-list-uploader.png"))
            page.locator("#dropzone").screenshot(path=str(ARTIFACTS / "upload.png"))
            page.locator("#upload").screenshot(path=str(ARTIFACTS / "upload-progress.png"))

            page.click("#logout")
            _log_in(page, sync_api, "root")
            sync_api.expect(row.locator("button.delete")).to_be_enabled(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "study-list.png"))

            refused: list[str] = []
            page.context.on(
                "response",
                lambda r: refused.append(r.url) if r.status in (401, 403) else None,
            )
            with page.context.expect_page() as opened:
                row.locator("a.open").click()
            viewer = opened.value
            viewer.set_viewport_size({"width": 1280, "height": 800})
            viewer.wait_for_selector("canvas.cornerstone-canvas", timeout=60_000)
            viewer.wait_for_function(f"({_CANVAS_LEVELS})() > 20", timeout=60_000)
            skip = viewer.get_by_text("Skip all")
            if skip.count():
                skip.first.click()
            assert viewer.evaluate(_CANVAS_LEVELS) > 20
            viewer.screenshot(path=str(ARTIFACTS / "viewer.png"))
            # the drawn image IS the uploaded CT: every slice has the same pixels, so whichever
            # OHIF shows matches radpacs's /rendered of the first (fetched with the cookie)
            first = pydicom.dcmread(ct_files[0])
            rendered = viewer.request.get(
                f"{server.url}/dicom-web/studies/{first.StudyInstanceUID}/series/"
                f"{first.SeriesInstanceUID}/instances/{first.SOPInstanceUID}/rendered",
                headers={"Accept": "image/png"},
            )
            assert rendered.status == 200, rendered.text()
            shown = _framed(_grey(viewer.locator('[data-cy="viewport-pane"]').first.screenshot()))
            Image.fromarray(shown.astype(np.uint8)).save(ARTIFACTS / "viewer-framed.png")
            correlation = _correlation(shown, _grey(rendered.body()))
            # measured r = 0.99; frames served upside down give 0.28
            assert correlation > 0.9, f"the viewport is not the uploaded CT: r={correlation:.2f}"
            viewer.close()
            assert refused == []  # every OHIF request was authenticated by the cookie

            row.locator("button.delete").click()
            dialog = page.locator("dialog#confirm-delete")
            sync_api.expect(dialog).to_be_visible()
            assert "Browser" in dialog.inner_text()
            page.screenshot(path=str(ARTIFACTS / "delete-dialog.png"))
            page.locator("#confirm-delete-button").click()
            sync_api.expect(row).to_have_count(0, timeout=15_000)
            sync_api.expect(page.locator("#list-status")).to_have_text("Study deleted.")
            assert page.locator("#study-table tbody tr").count() == 0
        finally:
            browser.close()
