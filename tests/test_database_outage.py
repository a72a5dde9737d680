"""A database outage under a running server: QIDO, DELETE and STOW answer 503 with a clear
message (never a 500 with a traceback), and the server serves again once the database is back.

The outage is real: a PostgreSQL database of the test's own stops accepting connections
(``ALLOW_CONNECTIONS false``) and its open connections are terminated, as a database that
went down would drop them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from conftest import POSTGRES_URL, LiveServer, make_ct, multipart, to_bytes

pytestmark = pytest.mark.postgres


def _admin() -> Engine:
    return create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture
def database() -> Iterator[tuple[str, Engine]]:
    """A fresh PostgreSQL database (its URL) and an admin engine on the test database."""
    try:
        admin = _admin()
        with admin.connect():
            pass
    except Exception:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    name = f"outage_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, admin
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"))
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _stop(admin: Engine, name: str) -> None:
    """Refuse new connections to ``name`` and end the open ones."""
    with admin.connect() as connection:
        connection.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"))
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )


def _start(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"))


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert detail.startswith("the index refused the ")
    assert "Traceback" not in response.text


def test_outage_answers_503_for_qido_delete_and_stow(
    database: tuple[str, Engine], tmp_path: Path
) -> None:
    url, admin = database
    name = make_url(url).database
    assert name is not None
    server = LiveServer(tmp_path / "live", ["--database-url", url]).start()
    try:
        dataset = make_ct()
        study = str(dataset.StudyInstanceUID)
        body, content_type = multipart([to_bytes(dataset)])
        stow_headers = {"Content-Type": content_type}
        with httpx.Client(base_url=server.url, timeout=60) as client:
            stored = client.post("/dicom-web/studies", content=body, headers=stow_headers)
            assert stored.status_code == 200, stored.text
            assert client.get("/dicom-web/studies").status_code == 200

            _stop(admin, name)
            _assert_unavailable(client.get("/dicom-web/studies"))
            _assert_unavailable(client.get(f"/dicom-web/studies/{study}/series"))
            _assert_unavailable(client.delete(f"/dicom-web/studies/{study}"))
            other = make_ct()
            other_body, other_type = multipart([to_bytes(other)])
            _assert_unavailable(
                client.post(
                    "/dicom-web/studies", content=other_body, headers={"Content-Type": other_type}
                )
            )

            _start(admin, name)  # back: nothing was lost, and the refused store left no row
            found = client.get("/dicom-web/studies")
            assert found.status_code == 200, found.text
            assert [match["0020000D"]["Value"] for match in found.json()] == [[study]]
            assert client.delete(f"/dicom-web/studies/{study}").status_code == 204
    finally:
        server.stop()


def test_outage_answers_503_when_a_token_is_checked(
    database: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With auth on (the default), the token check reads the accounts first: 503 too, not a
    500 from the access-control middleware."""
    url, admin = database
    name = make_url(url).database
    assert name is not None
    monkeypatch.setenv("RADPACS_ADMIN_USER", "root")
    monkeypatch.setenv("RADPACS_ADMIN_PASSWORD", "a long enough password")
    server = LiveServer(tmp_path / "live", ["--database-url", url, "--auth"]).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            login = client.post(
                "/api/auth", json={"username": "root", "password": "a long enough password"}
            )
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            assert client.get("/dicom-web/studies", headers=headers).status_code == 200

            _stop(admin, name)
            _assert_unavailable(client.get("/dicom-web/studies", headers=headers))

            _start(admin, name)
            assert client.get("/dicom-web/studies", headers=headers).status_code == 200
    finally:
        server.stop()
