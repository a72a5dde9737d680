"""Shared fixtures: DICOM factories, archives on SQLite and PostgreSQL, live servers."""

from __future__ import annotations

import copy
import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import create_engine, text

from _ci_peers import pytest_runtest_makereport  # noqa: F401 - the hook: CI fails on skips
from radpacs.app import create_app
from radpacs.archive import Archive
from radpacs.settings import Settings, load_settings

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
POSTGRES_URL = os.environ.get(
    "RADPACS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def shipped_test_files() -> list[Path]:
    """Every file pydicom ships (its own folder: get_testdata_files would try to download more)."""
    return sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file() and p.suffix != ".py")


def to_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


_CT = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")


def make_ct(
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    **attributes: object,
) -> Dataset:
    """CT_small.dcm with new (or given) UIDs and any attributes overridden."""
    dataset = copy.deepcopy(_CT)
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = series_uid or generate_uid()
    dataset.SOPInstanceUID = sop_uid or generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


def multipart(
    payloads: list[bytes], boundary: str = "radpacs-test", part_type: str = "application/dicom"
) -> tuple[bytes, str]:
    """A STOW-RS body and its Content-Type."""
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + payload + b"\r\n"
        for payload in payloads
    )
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def split_multipart(response: httpx.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part of a multipart/related response."""
    from radpacs.dicom.mediatypes import parse_media_type
    from radpacs.dicom.multipart import MultipartParser

    boundary = parse_media_type(response.headers["content-type"]).param("boundary")
    parser = MultipartParser(boundary.encode())
    parser.feed(response.content)
    return [(part.content_type, part.read()) for part in parser.close()]


# No test's server listens for DICOM on the default port unless the test asks (a DIMSE test
# passes --dimse/--dimse-port or dimse_enabled=True): two servers would clash on 11112, and
# module-scoped servers start before any autouse fixture runs.
os.environ.setdefault("RADPACS_DIMSE_ENABLED", "false")


@pytest.fixture(autouse=True)
def _auth_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run with auth off (env, inherited by LiveServer) unless they pass auth_enabled
    or --auth; the auth tests build their own authenticated apps and servers. The DICOM
    listener is off too (its default port would clash between servers); the DIMSE tests
    turn it on with a free port."""
    monkeypatch.setenv("RADPACS_AUTH_ENABLED", "false")
    monkeypatch.setenv("RADPACS_DIMSE_ENABLED", "false")


def _postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh archive on SQLite, and again on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield load_settings(data_dir=tmp_path / "data")
        return
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        yield load_settings(data_dir=tmp_path / "data", database_url=url)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def archive(settings: Settings) -> Iterator[Archive]:
    opened = Archive.from_settings(settings)
    yield opened
    opened.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    """An in-process server on SQLite only, for protocol edge cases independent of the database."""
    with TestClient(create_app(load_settings(data_dir=tmp_path / "data"))) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate ``process`` if it still runs; kill it if it has not ended after ``timeout`` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LiveServer:
    """`radpacs serve` in a subprocess, as a user starts it."""

    def __init__(
        self, data_dir: Path, extra: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.extra = extra or []
        self.env = env or {}  # added to (and winning over) the test's environment
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr_path = data_dir.parent / f"serve-{self.port}.stderr"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        command = [
            sys.executable,
            "-m",
            "radpacs",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        # The DICOM listener's default port would clash between servers: off unless the test's
        # environment turns it on (module-scoped servers start before the autouse fixture).
        env = {"RADPACS_DIMSE_ENABLED": "false", **os.environ, **self.env}
        # stderr goes to a file: a pipe nobody reads fills up and blocks the server's logging.
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=stderr, env=env
            )
        deadline = time.monotonic() + 120  # a loaded machine (shared CI) starts slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.stderr_path.read_text(errors="replace")
                raise RuntimeError(f"radpacs serve exited: {error}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()  # the fixture never reaches its own stop(): do not leave the server behind
        raise RuntimeError("radpacs serve did not become ready in 120 s")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "live").start()
    yield server
    server.stop()


@pytest.fixture
def ct_factory() -> Callable[..., Dataset]:
    return make_ct
