"""End to end in headless Chromium with auth ON: log in through the page's form as an
uploader, upload a CT series, see it in the list (delete disabled for that role), log out,
log in as an administrator, open the study in OHIF (authenticated by the session cookie
alone), check that the viewport draws it, delete it through the dialog.

Needs Debian's chromium (``apt-get install -y chromium``), the playwright package (test extra;
its own browsers are never downloaded) and OHIF (``radpacs viewer install``). Screenshots go to
test-artifacts/web/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from typer.testing import CliRunner

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


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
SLICES = 6
PASSWORDS = {"ada": "uploader password", "root": "administrator password"}
ROLES = {"ada": "uploader", "root": "admin"}

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
    sync_api = pytest.importorskip("playwright.sync_api")
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
