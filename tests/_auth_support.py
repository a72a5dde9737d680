"""Helpers for the tests/test_auth_*.py and workshop tests: authenticated apps, accounts, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from radpacs.app import create_app
from radpacs.auth.passwords import hash_password
from radpacs.auth.roles import Role
from radpacs.services import AuthServices
from radpacs.settings import load_settings

PASSWORD = "correct horse battery"
ROLES = [Role.READER, Role.UPLOADER, Role.SERVICE, Role.ADMIN]
_HASH = hash_password(PASSWORD)  # once: Argon2 costs ~0.1-0.3 s per hash on purpose


@contextmanager
def auth_client(data_dir: Path, **overrides: Any) -> Iterator[TestClient]:
    """An in-process server with auth ON and one account per role (named after the role); its
    DICOM listener is off unless asked (a module-scoped client starts before the per-test
    environment that turns it off, and the default port may be taken)."""
    overrides.setdefault("dimse_enabled", False)
    settings = load_settings(data_dir=data_dir, auth_enabled=True, **overrides)
    with TestClient(create_app(settings)) as client:
        accounts = services(client).accounts
        for role in ROLES:
            if accounts.get(role.value) is None:
                accounts.add(role.value, role, password_hash=_HASH)
        yield client


def services(client: TestClient) -> AuthServices:
    found: AuthServices = client.app.state.services.auth  # type: ignore[attr-defined]
    return found


def token(client: TestClient, role: Role | str) -> str:
    """A fresh token for the account named after ``role`` (signed directly: no Argon2 cost)."""
    role = Role(role)
    return services(client).issuer.issue(role.value, [role]).token


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}
