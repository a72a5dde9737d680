"""Browser sessions: POST /api/session sets an HttpOnly SameSite=Strict cookie that DICOMweb
accepts in place of a bearer token; DELETE /api/session revokes it and clears it."""

from __future__ import annotations

from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from _auth_support import PASSWORD, auth_client, bearer, token
from conftest import make_ct, multipart, to_bytes
from radpacs.auth.credentials import SESSION_COOKIE
from radpacs.auth.roles import Role


def _set_cookie(response_headers: list[str]) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response_headers:
        jar.load(header)
    return jar


def _log_in(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/session", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    found: dict[str, str] = response.json()
    return found


@pytest.fixture
def web(tmp_path: Path) -> TestClient:
    with auth_client(tmp_path / "data", login_max_failures=3) as client:
        yield client  # type: ignore[misc]


def test_login_sets_an_httponly_strict_cookie_without_showing_the_token(web: TestClient) -> None:
    response = web.post("/api/session", json={"username": "uploader", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "uploader" and body["role"] == "uploader"
    assert "token" not in body
    assert response.headers["cache-control"] == "no-store"
    morsel = _set_cookie(response.headers.get_list("set-cookie"))[SESSION_COOKIE]
    assert morsel.value.count(".") == 2  # a JWT
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/"
    assert morsel["max-age"] == str(480 * 60)
    assert not morsel["secure"]  # plain http, no https public_base_url
    me = web.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "uploader"


def test_dicomweb_with_only_the_cookie(web: TestClient) -> None:
    dataset = make_ct(PatientID="COOKIE-1")
    body, content_type = multipart([to_bytes(dataset)])
    anonymous = web.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})
    assert anonymous.status_code == 401  # no cookie yet
    assert web.get("/dicom-web/studies").status_code == 401

    _log_in(web, "uploader")
    stored = web.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text
    found = web.get("/dicom-web/studies", params={"PatientID": "COOKIE-1"})
    assert found.status_code == 200 and len(found.json()) == 1
    study = f"/dicom-web/studies/{dataset.StudyInstanceUID}"
    frames = web.get(
        f"{study}/series/{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert frames.status_code == 200
    refused = web.delete(study)  # an uploader may not delete: 403, not 401
    assert refused.status_code == 403 and "uploader" in refused.json()["detail"]

    _log_in(web, "admin")  # the new cookie replaces the old one
    assert web.get("/api/auth/me").json()["roles"] == ["admin"]
    assert web.delete(study).status_code in (200, 204)
    web.cookies.clear()
    assert web.get("/dicom-web/studies").status_code == 401


def test_bearer_header_wins_over_the_cookie(web: TestClient) -> None:
    _log_in(web, "reader")
    me = web.get("/api/auth/me", headers=bearer(token(web, Role.ADMIN)))
    assert me.json()["username"] == "admin"


def test_wrong_password_is_401_and_shares_the_login_rate_limit(web: TestClient) -> None:
    wrong = web.post("/api/session", data={"username": "reader", "password": "not it at all"})
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers
    assert web.post("/api/session", data={"username": ""}).status_code == 400
    # the same limiter as POST /api/auth: three failures in all lock the name out
    bad = {"username": "reader", "password": "nope"}
    assert web.post("/api/auth", data=bad).status_code == 401
    assert web.post("/api/session", json=bad).status_code == 401
    locked = web.post("/api/session", data={"username": "reader", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert web.get("/api/auth/me").status_code == 401


def test_logout_revokes_and_clears_the_cookie(web: TestClient) -> None:
    _log_in(web, "reader")
    issued = web.cookies[SESSION_COOKIE]
    response = web.delete("/api/session")
    assert response.status_code == 204
    morsel = _set_cookie(response.headers.get_list("set-cookie"))[SESSION_COOKIE]
    assert morsel.value == "" and morsel["max-age"] == "0"
    assert morsel["httponly"] is True and morsel["samesite"].lower() == "strict"
    assert SESSION_COOKIE not in web.cookies
    assert web.get("/api/auth/me").status_code == 401
    # the token itself is revoked, not only forgotten by the browser
    assert web.get("/api/auth/me", headers=bearer(issued)).status_code == 401
    assert web.delete("/api/session").status_code == 401


def test_login_and_logout_are_audited(web: TestClient) -> None:
    _log_in(web, "reader")
    web.delete("/api/session")
    web.post("/api/session", data={"username": "reader", "password": "wrong password"})
    audit = web.get("/api/audit", headers=bearer(token(web, Role.ADMIN))).json()["events"]
    seen = [(e["action"], e["path"], e["username"], e["status"]) for e in audit]
    assert ("login", "/api/session", "reader", 200) in seen
    assert ("logout", "/api/session", "reader", 204) in seen
    assert ("login", "/api/session", "reader", 401) in seen


@pytest.mark.parametrize(
    ("overrides", "base_url"),
    [
        ({"public_base_url": "https://pacs.example.org"}, "http://testserver"),
        ({}, "https://testserver"),
    ],
    ids=["public-base-url", "https-request"],
)
def test_cookie_is_secure_over_https(
    tmp_path: Path, overrides: dict[str, str], base_url: str
) -> None:
    with auth_client(tmp_path / "data", **overrides) as client:
        client.base_url = base_url  # type: ignore[assignment]
        response = client.post("/api/session", data={"username": "reader", "password": PASSWORD})
        assert response.status_code == 200
        morsel = _set_cookie(response.headers.get_list("set-cookie"))[SESSION_COOKIE]
        assert morsel["secure"] is True
        cleared = client.delete(
            "/api/session", headers={"Cookie": f"{SESSION_COOKIE}={morsel.value}"}
        )
        assert cleared.status_code == 204
        assert "secure" in cleared.headers["set-cookie"].lower()


def test_session_routes_with_auth_off(tmp_path: Path) -> None:
    from radpacs.app import create_app
    from radpacs.settings import load_settings

    with TestClient(create_app(load_settings(data_dir=tmp_path / "data"))) as client:
        assert client.get("/api/auth/me").json()["source"] == "no-auth"
        assert client.delete("/api/session").status_code == 204
