"""Tokens: log in, wrong / expired / tampered / foreign / revoked tokens, ?token=, rate limit."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from _auth_support import PASSWORD, auth_client, bearer, services, token
from radpacs.auth.ratelimit import LoginLimiter
from radpacs.auth.roles import Role
from radpacs.errors import TooManyAttempts

STUDIES = "/dicom-web/studies"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with auth_client(tmp_path / "data") as test_client:
        yield test_client


def _login(client: TestClient, name: str, password: str, as_json: bool = False) -> TestClient:
    fields = {"username": name, "password": password}
    return (
        client.post("/api/auth", json=fields) if as_json else client.post("/api/auth", data=fields)
    )  # type: ignore[return-value]


def test_login_by_form_and_json_gives_a_working_token(client: TestClient) -> None:
    for as_json in (False, True):
        response = _login(client, "reader", PASSWORD, as_json)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["role"] == "reader" and body["token_type"] == "bearer"
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["sub"] == "reader" and claims["exp"] > time.time() and claims["jti"]
        assert client.get(STUDIES, headers=bearer(body["token"])).status_code == 200
        me = client.get("/api/auth/me", params={"token": body["token"]}).json()
        assert me["username"] == "reader" and me["roles"] == ["reader"]


def test_no_token_and_wrong_password_are_401_with_www_authenticate(client: TestClient) -> None:
    response = client.get(STUDIES)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="radpacs"'
    for name, password in (("reader", "wrong password"), ("nobody", PASSWORD)):
        failed = _login(client, name, password)
        assert failed.status_code == 401
        assert failed.json()["detail"] == "unknown account or wrong password"
    assert client.post("/api/auth", data={}).status_code == 400


def test_garbage_and_none_algorithm_tokens_are_refused(client: TestClient) -> None:
    unsigned = jwt.encode(
        {"iss": "radpacs", "aud": "radpacs", "sub": "admin", "jti": "x", "iat": 0,
         "exp": time.time() + 60},
        key=None,
        algorithm="none",
    )  # fmt: skip
    for value in ("not-a-jwt", "a.b.c", unsigned):
        assert client.get(STUDIES, headers=bearer(value)).status_code == 401


def test_expired_token_is_refused(client: TestClient) -> None:
    issuer = services(client).issuer
    old = issuer.issue(
        "reader", [Role.READER], now=time.time() - issuer.lifetime.total_seconds() - 5
    )
    response = client.get(STUDIES, headers=bearer(old.token))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_tampered_token_is_refused(client: TestClient) -> None:
    """A reader who edits the payload to say admin breaks the signature."""
    header, payload, signature = token(client, Role.READER).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"], claims["roles"] = "admin", ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = client.get("/api/users", headers=bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]


def test_tokens_signed_with_a_foreign_key_are_refused(client: TestClient) -> None:
    claims = {
        "iss": "radpacs", "aud": "radpacs", "sub": "admin", "roles": ["admin"],
        "jti": "f" * 32, "iat": int(time.time()), "exp": int(time.time()) + 600,
    }  # fmt: skip
    other_secret = jwt.encode(claims, "another installation's secret, 32+ bytes", "HS256")
    assert client.get(STUDIES, headers=bearer(other_secret)).status_code == 401
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_token = jwt.encode(claims, private, algorithm="RS256")
    response = client.get(STUDIES, headers=bearer(rsa_token))
    assert response.status_code == 401
    assert "jwt_validate is off" in response.json()["detail"]


def test_token_in_query_parameter(client: TestClient) -> None:
    value = token(client, Role.READER)
    assert client.get(STUDIES, params={"token": value}).status_code == 200
    assert client.get(STUDIES, params={"token": "wrong"}).status_code == 401


def test_revoke_own_token_and_admin_revokes_by_id(client: TestClient) -> None:
    mine = _login(client, "reader", PASSWORD).json()
    assert client.post("/api/auth/revoke", headers=bearer(mine["token"])).status_code == 204
    refused = client.get(STUDIES, headers=bearer(mine["token"]))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]

    other = services(client).issuer.issue("uploader", [Role.UPLOADER])
    assert client.get(STUDIES, headers=bearer(other.token)).status_code == 200
    by_reader = client.delete(
        f"/api/tokens/{other.token_id}", headers=bearer(token(client, "reader"))
    )
    assert by_reader.status_code == 403
    admin = bearer(token(client, Role.ADMIN))
    assert client.delete(f"/api/tokens/{other.token_id}", headers=admin).status_code == 204
    assert client.get(STUDIES, headers=bearer(other.token)).status_code == 401


def test_removed_account_loses_its_tokens_and_last_admin_stays(client: TestClient) -> None:
    admin = bearer(token(client, Role.ADMIN))
    created = client.post(
        "/api/users",
        json={"username": "temp", "role": "reader", "password": PASSWORD},
        headers=admin,
    )
    assert created.status_code == 201 and created.json()["role"] == "reader"
    assert "password" not in json.dumps(client.get("/api/users", headers=admin).json())
    again = client.post(
        "/api/users",
        json={"username": "temp", "role": "reader", "password": PASSWORD},
        headers=admin,
    )
    assert again.status_code == 409
    short = client.post(
        "/api/users", json={"username": "x2", "role": "reader", "password": "short"}, headers=admin
    )
    assert short.status_code == 400
    temp = _login(client, "temp", PASSWORD).json()["token"]
    assert client.delete("/api/users/temp", headers=admin).status_code == 204
    assert client.get(STUDIES, headers=bearer(temp)).status_code == 401
    assert client.delete("/api/users/admin", headers=admin).status_code == 409


def test_login_attempts_are_rate_limited(tmp_path: Path) -> None:
    with auth_client(tmp_path, login_max_failures=3, login_window_seconds=60) as client:
        for _ in range(3):
            assert _login(client, "reader", "wrong password").status_code == 401
        locked = _login(client, "reader", PASSWORD)
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        # another account from the same address is not locked out
        assert _login(client, "uploader", PASSWORD).status_code == 200


def test_limiter_window_and_success_reset() -> None:
    now = [1000.0]
    limiter = LoginLimiter(max_failures=2, window_seconds=10, clock=lambda: now[0])
    key = ("ana", "10.0.0.1")
    limiter.failed(key)
    limiter.failed(key)
    with pytest.raises(TooManyAttempts) as caught:
        limiter.check(key)
    assert caught.value.retry_after == 10
    now[0] += 10.5
    limiter.check(key)  # window passed
    limiter.failed(key)
    limiter.succeeded(key)
    limiter.failed(key)
    limiter.check(key)  # the success cleared the earlier failure


def test_no_auth_mode_needs_no_token(tmp_path: Path) -> None:
    from radpacs.app import create_app
    from radpacs.settings import load_settings

    with TestClient(create_app(load_settings(data_dir=tmp_path, auth_enabled=False))) as client:
        assert client.get(STUDIES).status_code == 200
        assert client.get("/api/audit").status_code == 200
        assert client.get("/api/auth/me").json()["username"] == "local"
