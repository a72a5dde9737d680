"""In headless Chromium with auth ON, what a new user meets first: a viewer link opened
without a session goes to the login form and back to the same link (no OHIF "studies are
not available"), the viewer opens without OHIF's onboarding tour, and an upload names each
file that was not stored with the reason in words.

Same set-up as test_web_e2e (Debian's chromium, playwright without its browsers, OHIF).
Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from conftest import LiveServer, make_ct, to_bytes
from radpacs.cli import app as cli_app
from radpacs.client import RadpacsClient
from test_web_e2e import (
    _CANVAS_LEVELS,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    require_viewer_and_browser,
)

pytestmark = pytest.mark.peer

USER, PASSWORD = "root", "administrator password"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    require_viewer_and_browser()
    data = tmp_path / "data"
    result = CliRunner().invoke(
        cli_app,
        ["user", "add", USER, "--role", "admin", "--password-stdin", "--data-dir", str(data)],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    live = LiveServer(data, ["--auth"]).start()
    yield live
    live.stop()


def _series(folder: Path, count: int) -> tuple[str, list[Path]]:
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    folder.mkdir()
    paths = []
    for number in range(1, count + 1):
        ds = make_ct(study, series, PatientName="Link^Test", PatientID="LINK-1")
        ds.InstanceNumber = number
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * number]
        path = folder / f"slice{number}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return study, paths


def test_viewer_link_login_and_back_then_upload_failures_named(
    server: LiveServer, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    study, paths = _series(tmp_path / "ct", 4)
    with RadpacsClient(server.url) as client:
        client.login(USER, PASSWORD)
        assert client.store([tmp_path / "ct"]).counts()["stored"] == 4
    link = f"{server.url}/viewer/viewer?StudyInstanceUIDs={study}"

    # what the upload below sends: one new CT, a text file, an empty file, and a CT that
    # reuses a stored SOP Instance UID with other content (refused by duplicate_policy)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "new.dcm").write_bytes(to_bytes(make_ct(PatientID="LINK-2")))
    (uploads / "notes.txt").write_text("not an image\n" * 20)
    (uploads / "empty.dcm").write_bytes(b"")
    changed = pydicom.dcmread(paths[0])
    changed.PatientName = "Changed^Name"
    (uploads / "changed.dcm").write_bytes(to_bytes(changed))

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(link)
            sync_api.expect(page.locator("dialog#login")).to_be_visible(timeout=15_000)
            assert "/?next=viewer%2Fviewer" in page.url
            sync_api.expect(page.locator("#login-next")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "viewer-link-login.png"))
            page.fill("#login-username", USER)
            page.fill("#login-password", PASSWORD)
            page.click("#login-button")
            page.wait_for_url(link, timeout=15_000)  # back to the same link
            page.wait_for_selector("canvas.cornerstone-canvas", timeout=60_000)
            page.wait_for_function(f"({_CANVAS_LEVELS})() > 20", timeout=60_000)
            page.wait_for_timeout(1500)  # the tour, when on, opens right after the image
            assert page.locator(".shepherd-element").count() == 0
            assert page.get_by_text("Skip all").count() == 0
            page.screenshot(path=str(ARTIFACTS / "viewer-link-opened.png"))

            page.goto(server.url + "/")
            sync_api.expect(page.locator("#who")).to_have_text(f"{USER} (admin)", timeout=15_000)
            page.set_input_files(
                "#file-input",
                [
                    str(uploads / name)
                    for name in ("new.dcm", "notes.txt", "empty.dcm", "changed.dcm")
                ],
            )
            summary = page.locator(".upload-summary").first
            sync_api.expect(summary).to_have_text("1 instance stored, 3 failed:", timeout=30_000)
            failures = page.locator(".failures li").all_inner_texts()
            page.locator("#upload").screenshot(path=str(ARTIFACTS / "upload-failures.png"))
        finally:
            browser.close()
    by_file = {text.split(": ", 1)[0]: text.split(": ", 1)[1] for text in failures}
    assert by_file.keys() == {"notes.txt", "empty.dcm", "changed.dcm"}, failures
    assert by_file["notes.txt"] == "not a DICOM file: no DICM prefix at byte 128"
    assert by_file["empty.dcm"] == "empty file"
    assert not by_file["changed.dcm"].startswith(changed.SOPInstanceUID)  # named by file
    assert "SOP Instance" in by_file["changed.dcm"], failures
