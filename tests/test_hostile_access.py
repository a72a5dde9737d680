"""Credentials and client addresses under attack (issue 14 H, I, J, K): tokens never reach the
audit or a log however their parameter name is encoded, forwarded headers and Host count only
from configured proxies, and logins are limited per account and per address."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from _auth_support import PASSWORD, auth_client, bearer, token
from conftest import make_ct, to_bytes
from radpacs.auth.credentials import query_without_token, redact_tokens
from radpacs.auth.roles import Role
from radpacs.logs import logging_config
from radpacs.settings import load_settings

STOW = "/dicom-web/studies"


@pytest.mark.parametrize(
    "query", ["token=SECRET", "%74oken=SECRET", "%74%6F%6B%65%6E=SECRET", "a=1&t%6Fken=SECRET"]
)
def test_token_parameters_are_removed_and_redacted_however_encoded(query: str) -> None:
    assert "SECRET" not in query_without_token(query)
    assert "SECRET" not in redact_tokens(f'"GET /dicom-web/studies?{query} HTTP/1.1" 200')
    assert redact_tokens("/x?tokens=1&atoken=2") == "/x?tokens=1&atoken=2"
    assert "eyJ" not in redact_tokens("Authorization: Bearer eyJhbGciOi.eyJzdWIiOiJ.sig-nature")


def test_a_percent_encoded_token_authenticates_but_is_not_audited(tmp_path: Path) -> None:
    with auth_client(tmp_path / "data") as client:
        reader = token(client, Role.READER)
        response = client.get(f"/dicom-web/studies?%74oken={reader}&limit=5")
        assert response.status_code == 200  # the name is decoded as the reader decodes it
        admin = bearer(token(client, Role.ADMIN))
        events = client.get("/api/audit", params={"limit": 1000}, headers=admin).json()
        text = str(events)
        assert reader not in text and reader[:20] not in text
        assert any("limit=5" in str(event.get("detail")) for event in events["events"])


def test_the_log_file_never_holds_a_token(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    logging.config.dictConfig(logging_config(settings))
    try:
        access = logging.getLogger("uvicorn.access")
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/dicom-web/studies?%74oken=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            "1.1",
            200,
        )
        logging.getLogger("radpacs.test").warning("retry with ?token=live-token-value&x=1")
        for handler in logging.getLogger("uvicorn.access").handlers:
            handler.flush()
        for handler in logging.getLogger("radpacs").handlers:
            handler.flush()
        text = (settings.data_dir / "logs" / "radpacs.log").read_text()
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert "/dicom-web/studies?%74oken=[redacted]" in text
    assert "eyJ" not in text and "live-token-value" not in text


def test_forwarded_headers_and_host_count_only_from_trusted_proxies(tmp_path: Path) -> None:
    headers = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    body = to_bytes(make_ct())
    from radpacs.app import create_app

    untrusted = load_settings(data_dir=tmp_path / "a")
    with TestClient(create_app(untrusted)) as client:
        response = client.post(
            STOW,
            content=body,
            headers={**headers, "Host": "forged.example", "Content-Type": "application/dicom"},
        )
        url = response.json()["00081190"]["Value"][0]
        assert url.startswith("http://testserver/dicom-web/studies/"), url
    trusted = load_settings(data_dir=tmp_path / "b", trusted_proxies=["testclient"])
    with TestClient(create_app(trusted)) as client:
        response = client.post(
            STOW, content=body, headers={**headers, "Content-Type": "application/dicom"}
        )
        assert response.json()["00081190"]["Value"][0].startswith("https://evil.example/")


def test_uvicorn_trusts_x_forwarded_for_only_from_trusted_proxies() -> None:
    from radpacs.cli.serve import proxy_options

    assert proxy_options(load_settings()) == {"proxy_headers": False}
    options = proxy_options(load_settings(trusted_proxies=["10.0.0.0/8"]))
    assert options == {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.0/8"]}


def _login(client, name: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/api/auth", json={"username": name, "password": password})


def test_login_is_limited_per_account_and_per_address(tmp_path: Path) -> None:
    with auth_client(tmp_path / "data", login_max_failures=2, login_window_seconds=60) as client:
        for forged in ("10.0.0.1", "10.0.0.2"):  # X-Forwarded-For changes nothing here
            response = client.post(
                "/api/auth",
                json={"username": "reader", "password": "wrong"},
                headers={"X-Forwarded-For": forged},
            )
            assert response.status_code == 401
        assert _login(client, "reader", PASSWORD).status_code == 429  # the account is locked
        for name in ("a1", "a2", "a3", "a4", "a5", "a6"):  # 4 x 2 failures per address
            assert _login(client, name, "wrong").status_code == 401
        assert _login(client, "uploader", PASSWORD).status_code == 429  # the address is locked


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/dicom-web/studies", "GET, HEAD, POST"),
        ("PATCH", "/dicom-web/studies/1.2/series/3.4/instances/5.6", "DELETE, GET, HEAD"),
        ("GET", "/api/dvh", "POST"),
    ],
)
def test_405_lists_every_method_of_the_path(
    sqlite_client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = sqlite_client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert f"{method} is not allowed here" in response.json()["detail"]


def test_openapi_describes_the_refusals_of_every_operation(sqlite_client: TestClient) -> None:
    document = sqlite_client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "4XX" in operation["responses"], (method, path)
