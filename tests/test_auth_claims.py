"""Promises of docs/auth.md that had no test: the account's current role counts, not the
token's; the generated auth secret (mode 0600) is shared by every server on a data folder;
one audit row per study of a multi-study STOW-RS; the JWKS cache, key rotation and an
identity provider that is down; a token issued by one ``radpacs serve --workers 2`` process is
accepted by the other."""

from __future__ import annotations

import json
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from argon2 import extract_parameters
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from _auth_support import auth_client, bearer, services, token
from conftest import LiveServer, make_ct, multipart, to_bytes
from radpacs.auth import passwords
from radpacs.auth.roles import Role
from radpacs.cli import app as cli_app


def test_the_account_s_current_role_counts_not_the_token_s(tmp_path: Path) -> None:
    with auth_client(tmp_path / "data") as client:
        issuer = services(client).issuer
        # a token that claims admin for the reader account: the account's role decides
        claims_admin = bearer(issuer.issue("reader", [Role.ADMIN]).token)
        assert client.get("/api/users", headers=claims_admin).status_code == 403
        assert client.get("/dicom-web/studies", headers=claims_admin).status_code == 200
        # a token that claims reader for the admin account: the admin may manage
        claims_reader = bearer(issuer.issue("admin", [Role.READER]).token)
        assert client.get("/api/users", headers=claims_reader).status_code == 200


def test_the_generated_secret_is_private_and_shared_by_servers_on_one_folder(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with auth_client(data) as first:
        secret = data / "auth-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        value = token(first, Role.READER)
        content = secret.read_bytes()
    with auth_client(data) as second:  # another worker process on the same folder
        assert secret.read_bytes() == content
        me = second.get("/api/auth/me", headers=bearer(value))
        assert me.status_code == 200 and me.json()["username"] == "reader"
    with auth_client(tmp_path / "other") as stranger:  # another folder: another secret
        assert stranger.get("/api/auth/me", headers=bearer(value)).status_code == 401


def _answered_by(logs: Path, request: str) -> dict[str, int]:
    """Per worker log (``api-<pid>.log``), how many access lines show ``request`` answered 200."""
    return {
        path.name: sum(
            f'"{request} HTTP/1.1" 200' in line for line in path.read_text().splitlines()
        )
        for path in logs.glob("api-*.log")
    }


def test_a_token_issued_by_one_serve_worker_is_accepted_by_the_other(tmp_path: Path) -> None:
    """A real ``radpacs serve --auth --workers 2``: both processes sign with the one generated
    ``auth-secret``, so the token one process issued passes in the other. Which process
    answered is read from the per-process request logs (``api-<pid>.log``, radpacs.logs)."""
    data = tmp_path / "data"
    added = CliRunner().invoke(
        cli_app,
        ["user", "add", "alice", "--role", "reader", "--password-stdin", "--data-dir", str(data)],
        input="alice's password\n",
    )
    assert added.exit_code == 0, added.output
    live = LiveServer(data, ["--auth", "--workers", "2"]).start()
    try:
        login = httpx.post(
            f"{live.url}/api/auth", data={"username": "alice", "password": "alice's password"}
        )
        assert login.status_code == 200, login.text
        headers = {**bearer(login.json()["token"]), "Connection": "close"}
        [issuer_log] = [
            name for name, n in _answered_by(data / "logs", "POST /api/auth").items() if n
        ]
        served: dict[str, int] = {}
        for _ in range(200):  # each on a new connection, which either process may accept
            me = httpx.get(f"{live.url}/api/auth/me", headers=headers)
            assert me.status_code == 200, me.text
            assert me.json()["username"] == "alice"
            answered = _answered_by(data / "logs", "GET /api/auth/me")
            served = {name: n for name, n in answered.items() if n}  # the supervisor's stays empty
            if len(served) == 2:
                break
        assert len(served) == 2, f"the requests all landed on one process: {answered}"
        [other_log] = [name for name in served if name != issuer_log]
        assert served[other_log] > 0  # the process that did not issue the token accepted it
    finally:
        live.stop()


def test_a_stow_of_two_studies_writes_one_audit_row_per_study(tmp_path: Path) -> None:
    with auth_client(tmp_path / "data") as client:
        a, b = make_ct(), make_ct()
        a2 = make_ct(a.StudyInstanceUID)  # a second instance of the first study
        body, content_type = multipart([to_bytes(ds) for ds in (a, b, a2)])
        uploader = bearer(token(client, Role.UPLOADER))
        stored = client.post(
            "/dicom-web/studies", content=body, headers={**uploader, "Content-Type": content_type}
        )
        assert stored.status_code == 200, stored.text
        admin = bearer(token(client, Role.ADMIN))
        events = client.get("/api/audit", params={"action": "store"}, headers=admin).json()
        rows = [e for e in events["events"] if e["action"] == "store"]
        assert sorted(e["study_uid"] for e in rows) == sorted(
            [a.StudyInstanceUID, b.StudyInstanceUID]
        )
        assert all(e["username"] == "uploader" and e["status"] == 200 for e in rows)


# ------------------------------------------------------------------ JWKS cache and rotation


class _Provider:
    """A JWKS on 127.0.0.1 whose keys can change and that can go down; counts its fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        self.down = False
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                if provider.down:
                    self.send_error(503)
                    return
                body = json.dumps({"keys": [_jwk(k, kid) for kid, k in provider.keys.items()]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/certs"

    def token(self, kid: str, key: rsa.RSAPrivateKey | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": "radpacs",
            "sub": "subject-1",
            "preferred_username": "dr.house",
            "iat": now,
            "exp": now + 300,
            "roles": ["reader"],
        }
        return jwt.encode(claims, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


ISSUER = "http://127.0.0.1/realms/hospital"


def test_the_jwks_is_cached_refetched_for_a_rotated_key_and_its_outage_is_a_clear_401(
    tmp_path: Path,
) -> None:
    provider = _Provider()
    provider.keys["k1"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        with auth_client(
            tmp_path / "data",
            jwt_validate=True,
            jwt_issuer=ISSUER,
            jwt_audience="radpacs",
            jwt_jwks_url=provider.url,
        ) as client:

            def me(value: str) -> int:
                return client.get("/api/auth/me", headers=bearer(value)).status_code

            assert me(provider.token("k1")) == 200
            assert me(provider.token("k1")) == 200
            assert provider.fetches == 1  # cached
            # rotation: the provider publishes k2. Within PyJWT's 30 s refresh cooldown
            # after the last fetch a token naming k2 is refused (401, says why); after it,
            # the JWKS is fetched again and the token is accepted.
            provider.keys["k2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            early = client.get("/api/auth/me", headers=bearer(provider.token("k2")))
            assert early.status_code == 401 and "no key" in early.json()["detail"]
            time.sleep(31)
            assert me(provider.token("k2")) == 200
            assert provider.fetches == 2
            # the provider is down: cached keys still verify, an unknown key is a clear 401
            provider.down = True
            assert me(provider.token("k1")) == 200
            stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            refused = client.get("/api/auth/me", headers=bearer(provider.token("k3", stranger)))
            assert refused.status_code == 401
            assert "identity provider" in refused.json()["detail"]
    finally:
        provider.server.shutdown()
        provider.server.server_close()


def test_an_unknown_name_costs_the_same_argon2_work_as_a_wrong_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal work, not equal wall-clock time (which a test cannot assert): each login does
    one Argon2id verification with the same parameters. A spy wraps the real hasher."""
    hashes: list[str] = []
    real = passwords._HASHER

    class Spy:
        def verify(self, stored: str, password: str) -> bool:
            hashes.append(stored)
            return bool(real.verify(stored, password))

        def hash(self, password: str) -> str:
            return str(real.hash(password))

    monkeypatch.setattr(passwords, "_HASHER", Spy())
    with auth_client(tmp_path / "data") as client:
        wrong = client.post("/api/auth", data={"username": "reader", "password": "not-it-at-all"})
        unknown = client.post("/api/auth", data={"username": "nobody", "password": "not-it"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()  # the answer does not tell which was wrong
    assert len(hashes) == 2
    assert extract_parameters(hashes[0]) == extract_parameters(hashes[1])
