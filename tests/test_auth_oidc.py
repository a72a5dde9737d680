"""OIDC provider tokens checked against a JWKS served by a local HTTP server.

The key pair and the JWKS are made here; the server is http.server on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from _auth_support import auth_client, bearer
from radpacs.auth.oidc import roles_from_claims
from radpacs.auth.roles import Role

ISSUER = "http://127.0.0.1/realms/hospital"
AUDIENCE = "radpacs"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[rsa.RSAPrivateKey, str]]:
    """A signing key and the URL of a JWKS that publishes its public half as kid 'k1'."""
    key = _key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield key, f"http://127.0.0.1:{server.server_port}/certs"
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(provider: tuple[rsa.RSAPrivateKey, str], tmp_path: Path) -> Iterator[TestClient]:
    _, url = provider
    with auth_client(
        tmp_path,
        jwt_validate=True,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_jwks_url=url,
        jwt_roles_claim="realm_access.roles",
        jwt_role_map={"pacs-readers": "reader", "pacs-admins": "admin"},
    ) as test_client:
        yield test_client


def _token(key: Any, kid: str = "k1", algorithm: str = "RS256", **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "f3a1-subject",
        "preferred_username": "dr.house",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["pacs-readers", "offline_access"]},
    }
    claims.update(changes)
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def test_valid_provider_token_maps_claims_to_roles(
    client: TestClient, provider: tuple[rsa.RSAPrivateKey, str]
) -> None:
    key, _ = provider
    value = _token(key)
    me = client.get("/api/auth/me", headers=bearer(value)).json()
    assert me["username"] == "dr.house" and me["roles"] == ["reader"] and me["source"] == "oidc"
    assert client.get("/dicom-web/studies", headers=bearer(value)).status_code == 200
    assert client.get("/api/users", headers=bearer(value)).status_code == 403
    admin = _token(key, realm_access={"roles": ["pacs-admins"]})
    assert client.get("/api/users", headers=bearer(admin)).status_code == 200
    nobody = _token(key, realm_access={"roles": ["offline_access"]})
    assert client.get("/dicom-web/studies", headers=bearer(nobody)).status_code == 403


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"aud": "another-app"}, "audience"),
        ({"iss": "http://evil.example/realms/hospital"}, "issuer"),
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 600}, "expired"),
    ],
)
def test_wrong_audience_issuer_or_expiry_is_refused(
    client: TestClient, provider: tuple[rsa.RSAPrivateKey, str], change: dict[str, Any], reason: str
) -> None:
    key, _ = provider
    response = client.get("/dicom-web/studies", headers=bearer(_token(key, **change)))
    assert response.status_code == 401
    assert reason in response.json()["detail"].lower()


def test_key_not_in_the_jwks_is_refused(client: TestClient) -> None:
    stranger = _key()
    # the published kid with another key; an unknown kid
    for kid, reason in (("k1", "signature verification failed"), ("unknown-kid", "no key")):
        response = client.get("/dicom-web/studies", headers=bearer(_token(stranger, kid=kid)))
        assert response.status_code == 401, kid
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert reason in response.json()["detail"].lower(), response.json()


def test_public_key_used_as_hmac_secret_is_refused(
    client: TestClient, provider: tuple[rsa.RSAPrivateKey, str]
) -> None:
    """Algorithm confusion: HS256 keyed with the provider's public PEM is a radpacs-token
    path, and radpacs's own secret does not verify it."""
    key, _ = provider
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "jti": "j", "iat": int(time.time()),
              "exp": int(time.time()) + 60, "realm_access": {"roles": ["pacs-admins"]}}  # fmt: skip
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(signature)}"
    assert client.get("/api/users", headers=bearer(forged)).status_code == 401


def test_roles_from_claims_shapes() -> None:
    mapping = {"radiologist": "reader"}
    assert roles_from_claims({"roles": ["radiologist", "x"]}, "roles", mapping) == {Role.READER}
    assert roles_from_claims({"scope": "openid admin"}, "scope", {}) == {Role.ADMIN}
    assert roles_from_claims({"a": {"b": ["service"]}}, "a.b", {}) == {Role.SERVICE}
    assert roles_from_claims({"roles": "nothing"}, "missing.path", {}) == frozenset()
