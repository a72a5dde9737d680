"""``radpacs user add|list|remove``, ``load-demo``, first admin from the environment, a live
server with auth on, --no-auth, and the rotating log file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import LiveServer
from radpacs.archive.demo import default_demo_dir
from radpacs.cli import app

PASSWORD = "a long enough password"


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_user_add_list_remove(tmp_path: Path) -> None:
    data = str(tmp_path)
    code, out = _run("user", "add", "alice", "--role", "admin", "--password-stdin",
                     "--data-dir", data, stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0 and "created admin account alice" in out
    code, out = _run("user", "add", "alice", "--password-stdin", "--data-dir", data, stdin=PASSWORD)
    assert code == 1 and "already exists" in out
    code, out = _run("user", "add", "bob", "--password-stdin", "--data-dir", data, stdin="short\n")
    assert code == 2 and "at least 8" in out
    code, out = _run("user", "list", "--data-dir", data)
    assert code == 0 and "alice\tadmin" in out and "bob" not in out
    assert _run("user", "remove", "alice", "--data-dir", data)[0] == 0
    assert _run("user", "remove", "alice", "--data-dir", data)[0] == 1


@pytest.mark.skipif(default_demo_dir() is None, reason="no ../shared/data/rt-workshop")
def test_load_demo_twice(tmp_path: Path) -> None:
    for _ in range(2):
        code, out = _run("load-demo", "--data-dir", str(tmp_path))
        assert code == 0 and "loaded 4 datasets: cone, cylinder, dose, sphere" in out
    code, out = _run("load-demo", "--data-dir", str(tmp_path), "--demo-dir", str(tmp_path / "no"))
    assert code == 1


def test_live_server_with_auth_first_admin_from_env_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADPACS_ADMIN_USER", "root")
    monkeypatch.setenv("RADPACS_ADMIN_PASSWORD", PASSWORD)
    server = LiveServer(tmp_path / "data", ["--auth"]).start()
    try:
        assert httpx.get(f"{server.url}/dicom-web/studies").status_code == 401
        login = httpx.post(
            f"{server.url}/api/auth", data={"username": "root", "password": PASSWORD}
        )
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        assert httpx.get(f"{server.url}/dicom-web/studies", headers=headers).status_code == 200
        enrol = httpx.post(f"{server.url}/api/account", data={"idul": "abc"})
        assert enrol.status_code == 403  # enrolment is closed by default
    finally:
        server.stop()
    log = (tmp_path / "data" / "logs" / "radpacs.log").read_text()
    assert "root 127.0.0.1 search /dicom-web/studies" in log


def test_live_server_no_auth(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", ["--no-auth"]).start()
    try:
        assert httpx.get(f"{server.url}/dicom-web/studies").status_code == 200
    finally:
        server.stop()
