"""The command line as a new user meets it, through the installed ``radpacs`` script (a real
pipe, not a terminal) against live servers: login with the URL defaulted and the password
piped on stdin, 401 messages that say ``radpacs login``, upload exit codes, help without
``<bool>``, and tables that never break a UID over lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import typer
from typer.testing import CliRunner

from _client_support import USER, isolate_user_config, radpacs_with_account
from conftest import LiveServer, make_ct, to_bytes
from radpacs.cli import _console
from radpacs.cli import app as cli_app
from radpacs.client import config as client_config
from radpacs.client.config import read_config

RADPACS = Path(sys.executable).with_name("radpacs")


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of the test's own; no server or token from the environment."""
    return isolate_user_config(tmp_path, monkeypatch)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with radpacs_with_account(tmp_path / "data") as url:
        yield url


def _script(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert RADPACS.is_file(), "the radpacs console script is not installed in this environment"
    return subprocess.run(
        [str(RADPACS), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_login_reads_a_piped_password_and_asks_no_url(server: str, user_config: Path) -> None:
    user, password = USER
    done = _script("login", "--url", server, "-u", user, stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert f"logged in to {server}" in done.stderr
    token = read_config(user_config / "config.toml")["token"]
    # no --url: the URL the last login saved; the password again from the pipe
    done = _script("login", "-u", user, stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    assert f"logged in to {server}" in done.stderr and "Server URL" not in done.stderr
    assert read_config(user_config / "config.toml")["token"] != token  # a new login
    done = _script("login", "-u", user, stdin="not the password\n")
    assert done.returncode == 2
    assert "refused the login: wrong user name or password" in done.stderr
    done = _script("login", "-u", user, stdin="")
    assert done.returncode == 2 and "standard input holds no password" in done.stderr
    done = _script("login", stdin=password + "\n")
    assert done.returncode == 2 and "give --username" in done.stderr


def test_login_defaults_to_the_documented_url(
    server: str, monkeypatch: pytest.MonkeyPatch, user_config: Path
) -> None:
    """No --url, no RADPACS_URL, no config file: the documented default, here pointed at the
    test server (the real default, port 8080, may be taken on a shared machine)."""
    assert client_config.DEFAULT_URL == "http://127.0.0.1:8080"
    monkeypatch.setattr(client_config, "DEFAULT_URL", server)
    user, password = USER
    result = CliRunner().invoke(cli_app, ["login", "-u", user], input=password + "\n")
    assert result.exit_code == 0, result.output
    assert read_config(user_config / "config.toml")["url"] == server


def test_a_401_says_to_run_radpacs_login(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["--auth"]).start()
    try:
        done = _script("query", "studies", "--url", live.url)
        assert done.returncode == 2
        assert "GET /dicom-web/studies: HTTP 401: this route needs a token" in done.stderr
        assert "run `radpacs login`" in done.stderr
        assert '{"detail"' not in done.stderr  # the server's words, not its JSON
    finally:
        live.stop()


def test_upload_exit_codes_and_the_files_not_stored(live_server: LiveServer, tmp_path: Path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for number in range(2):
        (folder / f"{number}.dcm").write_bytes(to_bytes(make_ct(PatientID="EXIT-1")))
    (folder / "notes.txt").write_text("a note\n" * 30)
    (folder / "empty.dcm").write_bytes(b"")
    url = ["--url", live_server.url]
    done = _script("upload", str(folder), *url)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["counts"]["stored"] == 2
    lines = sorted(line for line in done.stderr.splitlines() if line.startswith("not stored"))
    assert lines == [
        f"not stored: {folder / 'empty.dcm'}: empty file",
        f"not stored: {folder / 'notes.txt'}: not a DICOM file: no DICM prefix at byte 128",
    ]
    done = _script("upload", str(folder), "--ignore-non-dicom", *url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["already stored"] == 2
    (folder / "notes.txt").unlink()
    (folder / "empty.dcm").unlink()
    assert _script("upload", str(folder), *url).returncode == 0


def _commands(group: typer.Typer) -> list[list[str]]:
    """Every command path of the app (typer builds click-like groups with ``commands``)."""
    found: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            found.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(group), [])
    return found


def test_help_shows_no_bool_placeholder() -> None:
    commands = _commands(cli_app)
    assert ["upload"] in commands and ["user", "add"] in commands and ["demo"] in commands
    for path in commands:
        result = CliRunner().invoke(cli_app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
    upload = CliRunner().invoke(cli_app, ["upload", "--help"]).output
    assert "--ignore-non-dicom" in upload


def test_query_table_keeps_uids_on_one_line(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = make_ct(
        PatientID="TABLE-1",
        PatientName="Table^Test",
        StudyDescription="a description long enough to fold over several lines of the table",
    )
    _script_upload = tmp_path / "one.dcm"
    _script_upload.write_bytes(to_bytes(dataset))
    assert _script("upload", str(_script_upload), "--url", live_server.url).returncode == 0
    monkeypatch.setattr(_console, "interactive", lambda: True)  # a table, as on a terminal
    for columns in ("80", "140"):
        monkeypatch.setenv("COLUMNS", columns)
        result = CliRunner().invoke(
            cli_app, ["query", "instances", "PatientID=TABLE-1", "--url", live_server.url]
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        for uid in (dataset.SOPInstanceUID, dataset.SOPClassUID, dataset.SeriesInstanceUID):
            assert any(uid in line for line in lines), (uid, result.output)
    assert pydicom.uid.UID(dataset.SOPInstanceUID).is_valid
