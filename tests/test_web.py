"""The web UI shell, the OHIF mount and the zip upload route (no browser: see test_web_e2e)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient

from conftest import make_ct, to_bytes
from radpacs.app import create_app
from radpacs.settings import load_settings
from radpacs.web.ohif import _relocate


def test_home_page_and_static_files(sqlite_client: TestClient) -> None:
    page = sqlite_client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="study-table"' in page.text and 'id="confirm-delete"' in page.text
    assert 'src="static/radpacs.js' in page.text  # relative: works behind a proxy prefix
    assert sqlite_client.get("/static/radpacs.js").status_code == 200
    assert sqlite_client.get("/static/radpacs.css").status_code == 200
    assert 'rel="icon" href="static/favicon.svg' in page.text
    assert sqlite_client.get("/static/favicon.svg").status_code == 200
    icon = sqlite_client.get("/favicon.ico")  # browsers ask for it on every origin
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/vnd.microsoft.icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header


def _fake_ohif(folder: Path) -> None:
    """A stand-in for OHIF's dist/: the same index.html shape, no real bundles."""
    folder.mkdir()
    (folder / "index.html").write_text(
        '<html><head><script>window.PUBLIC_URL="/"</script>'
        '<script src="/app-config.js"></script><link href="/app.bundle.css" rel="stylesheet">'
        '<script defer src="/app.bundle.abc.js"></script></head><body></body></html>'
    )
    (folder / "app.bundle.abc.js").write_text('__webpack_require__.p = "/"; start();')
    (folder / "app.bundle.css").write_text("@font-face{src:url(/a.woff2)}")
    (folder / ".radpacs-ohif.json").write_text('{"version": "test"}')


@pytest.fixture
def viewer_client(tmp_path: Path) -> Iterator[TestClient]:
    folder = tmp_path / "ohif"
    _fake_ohif(folder)
    _relocate(folder)
    settings = load_settings(data_dir=tmp_path / "data", viewer_dir=folder)
    with TestClient(create_app(settings)) as client:
        yield client


def test_viewer_index_config_files_and_spa_routes(viewer_client: TestClient) -> None:
    index = viewer_client.get("/viewer/")
    assert 'window.PUBLIC_URL="/viewer/"' in index.text
    assert 'src="/viewer/app-config.js"' in index.text
    # OHIF's own routes fall back to index.html.
    routed = viewer_client.get("/viewer/viewer", params={"StudyInstanceUIDs": "1.2.3"})
    assert routed.status_code == 200 and routed.text == index.text
    config = viewer_client.get("/viewer/app-config.js")
    assert config.headers["content-type"].startswith("text/javascript")
    assert 'window.location.origin + "/dicom-web"' in config.text
    assert '"routerBasename": "/viewer"' in config.text
    assert '"thumbnailRendering": "thumbnail"' in config.text
    assert '"ohif.tours": {\n        "$set": []' in config.text  # the onboarding tour is off
    bundle = viewer_client.get("/viewer/app.bundle.abc.js")
    assert (
        "document.currentScript" in bundle.text and "immutable" in bundle.headers["cache-control"]
    )
    assert "url(./a.woff2)" in viewer_client.get("/viewer/app.bundle.css").text
    assert viewer_client.get("/viewer/missing.js").status_code == 404
    assert viewer_client.get("/viewer/../pyproject.toml").status_code == 404


def test_viewer_link_without_a_session_goes_to_login_and_back(tmp_path: Path) -> None:
    folder = tmp_path / "ohif"
    _fake_ohif(folder)
    _relocate(folder)
    settings = load_settings(
        data_dir=tmp_path / "data",
        viewer_dir=folder,
        auth_enabled=True,
        admin_user="root",
        admin_password="root password",
        trusted_proxies=["testclient"],  # TestClient's address, for the proxy headers below
    )
    link = "/viewer/viewer?StudyInstanceUIDs=1.2.3"
    with TestClient(create_app(settings), follow_redirects=False) as client:
        response = client.get(link)
        assert response.status_code == 303
        assert response.headers["location"] == "/?next=viewer%2Fviewer%3FStudyInstanceUIDs%3D1.2.3"
        assert client.get("/viewer/").headers["location"] == "/?next=viewer%2F"
        # behind a proxy prefix the study list is under the prefix
        proxied = client.get(
            link, headers={"X-Forwarded-Host": "pacs.example", "X-Forwarded-Prefix": "/pacs"}
        )
        assert proxied.headers["location"].startswith("/pacs/?next=viewer%2Fviewer")
        # the viewer's files and config need no session (they hold no patient data)
        assert client.get("/viewer/app-config.js").status_code == 200
        assert client.get("/viewer/app.bundle.abc.js").status_code == 200
        client.cookies.set("radpacs_session", "not a token")
        assert client.get(link).status_code == 303
        client.cookies.clear()
        login = client.post("/api/session", data={"username": "root", "password": "root password"})
        assert login.status_code == 200
        opened = client.get(link)
        assert opened.status_code == 200 and 'window.PUBLIC_URL="/viewer/"' in opened.text


def test_viewer_behind_a_proxy_prefix(
    viewer_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = viewer_client.app.state.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(settings, "trusted_proxies", ["testclient"])  # TestClient's address
    headers = {"X-Forwarded-Host": "pacs.example", "X-Forwarded-Prefix": "/radpacs"}
    index = viewer_client.get("/viewer/", headers=headers)
    assert 'window.PUBLIC_URL="/radpacs/viewer/"' in index.text
    config = viewer_client.get("/viewer/app-config.js", headers=headers)
    assert '"/radpacs/dicom-web"' in config.text


def test_viewer_not_installed_says_how_to_install(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", viewer_dir=tmp_path / "none")
    with TestClient(create_app(settings)) as client:
        response = client.get("/viewer/")
        assert response.status_code == 503 and "radpacs viewer install" in response.text
        assert "radpacs viewer install" in client.get("/").text


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_upload_zip_stores_dicom_and_reports_the_rest(client: TestClient) -> None:
    study = pydicom.uid.generate_uid()
    body = _zip(
        {
            "scan/1.dcm": to_bytes(make_ct(study)),
            "scan/2.dcm": to_bytes(make_ct(study)),
            "scan/readme.txt": b"not dicom",
            "__MACOSX/scan/._1.dcm": b"resource fork",
            "DICOMDIR": b"skipped",
        }
    )
    response = client.post(
        "/api/upload-zip", content=body, headers={"Content-Type": "application/zip"}
    )
    assert response.status_code == 202
    answer = response.json()
    assert answer["stored"] == 2 and answer["studies"] == [study]
    assert [failure["file"] for failure in answer["failed"]] == ["scan/readme.txt"]
    assert answer["failed"][0]["reason"]
    again = client.post(
        "/api/upload-zip", content=body, headers={"Content-Type": "application/zip"}
    )
    assert again.json()["already_stored"] == 2
    found = client.get("/dicom-web/studies", params={"StudyInstanceUID": study}).json()
    assert found[0]["00201208"]["Value"] == [2]


def test_upload_zip_rejects_what_is_not_a_zip(sqlite_client: TestClient) -> None:
    response = sqlite_client.post("/api/upload-zip", content=b"PK nonsense")
    assert response.status_code == 400 and "not a zip" in response.json()["detail"]
