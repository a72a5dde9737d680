"""The client commands: through typer's CliRunner and as the installed `radpacs` script."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom
import pytest
import typer
from typer.testing import CliRunner

from _client_support import USER, isolate_user_config, radpacs_with_account
from _deid_support import RT_WORKSHOP
from conftest import LiveServer, make_ct, to_bytes
from radpacs.cli import dvh as dvh_cli
from radpacs.cli.client import register
from radpacs.client.config import read_config, resolve

RADPACS = Path(sys.executable).with_name("radpacs")


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of the test's own; no server or token from the environment."""
    return isolate_user_config(tmp_path, monkeypatch)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """radpacs (test)"""

    register(app)
    dvh_cli.register(app)
    return app


def _invoke(cli: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _folder(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "scans"
    (folder / "a").mkdir(parents=True)
    study = pydicom.uid.generate_uid()
    for number in range(4):
        data = to_bytes(make_ct(study, PatientID="CLI-1", InstanceNumber=number))
        (folder / "a" / f"{number}.dcm").write_bytes(data)
    shutil.copy(RT_WORKSHOP / "README.md", folder / "README.md")
    return folder, study


def test_upload_query_retrieve_delete(cli: typer.Typer, live_server: LiveServer, tmp_path: Path):
    folder, study = _folder(tmp_path)
    url = ["--url", live_server.url]
    code, out, err = _invoke(cli, "upload", str(folder), *url)
    assert code == 1  # README.md was not stored
    report = json.loads(out)  # not a terminal: JSON on stdout
    assert report["counts"] == {"stored": 4, "already stored": 0, "failed": 0, "not DICOM": 1}
    assert "not stored: " in err and "README.md: not a DICOM file: no DICM prefix" in err

    code, out, _ = _invoke(cli, "upload", str(folder), "--ignore-non-dicom", *url)
    assert code == 0 and json.loads(out)["counts"]["already stored"] == 4

    code, out, _ = _invoke(cli, "query", "studies", "PatientID=CLI-*", *url)
    [found] = json.loads(out)
    assert code == 0 and found["StudyInstanceUID"] == study
    assert found["NumberOfStudyRelatedInstances"] == 4
    code, out, _ = _invoke(cli, "query", "instances", "--study", study, "--limit", "3", *url)
    assert len(json.loads(out)) == 3
    code, _, err = _invoke(cli, "query", "studies", "NoSuchKeyword=1", *url)
    assert code == 2 and "HTTP 400" in err

    code, out, _ = _invoke(cli, "download", study, "--out", str(tmp_path / "down"), *url)
    files = [Path(name) for name in json.loads(out)["files"]]
    assert code == 0 and len(files) == 4 and all(path.is_file() for path in files)

    code, out, _ = _invoke(cli, "status", *url)
    assert code == 0 and json.loads(out)["counts"]["instances"] == 4

    code, _, err = _invoke(cli, "delete", study, *url)
    assert code == 2 and "--yes" in err  # no confirmation possible off a terminal
    code, _, err = _invoke(cli, "delete", study, "--yes", *url)
    assert code == 0 and "deleted study" in err
    code, _, err = _invoke(cli, "delete", study, "--yes", *url)
    assert code == 2 and "HTTP 404" in err


def test_upload_failures_give_reasons_and_exit_1(
    cli: typer.Typer, live_server: LiveServer, tmp_path: Path
) -> None:
    folder, _ = _folder(tmp_path)
    (folder / "bad.dcm").write_bytes(b"\x08\x00" + b"\x00" * 300)
    code, out, _ = _invoke(cli, "upload", str(folder), "--url", live_server.url)
    report = json.loads(out)
    assert code == 1
    assert report["counts"]["failed"] == 1 and report["counts"]["stored"] == 4
    [failed] = [item for item in report["items"] if item["outcome"] == "failed"]
    assert failed["source"].endswith("bad.dcm") and failed["reason"]


def test_unreachable_server_is_a_clear_error(cli: typer.Typer, tmp_path: Path) -> None:
    dead = LiveServer(tmp_path / "dead").url
    code, _, err = _invoke(cli, "status", "--url", dead)
    assert code == 2 and "GET /api/health: no response" in err


def test_login_writes_a_private_config(cli: typer.Typer, user_config: Path, tmp_path: Path):
    """Against the real POST /api/auth with an account the test creates."""
    with radpacs_with_account(tmp_path / "data") as url:
        user, password = USER
        code, _, err = _invoke(cli, "login", "--url", url, "-u", user, "--password", "nope")
        assert code == 2 and "HTTP 401" in err and "wrong user name or password" in err
        assert not (user_config / "config.toml").exists()
        code, _, err = _invoke(cli, "login", "--url", url, "-u", user, "--password", password)
        assert code == 0, err
        path = user_config / "config.toml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = read_config(path)["token"]
        assert read_config(path) == {"url": url, "token": token}
        assert token.count(".") == 2  # a signed JWT from the real POST /api/auth
        assert resolve().token == token
        assert resolve(url="http://elsewhere:8080").token is None  # not sent to another server

        code, out, _ = _invoke(cli, "status")  # URL from the config file
        assert code == 0 and json.loads(out)["status"] == "ok"


def test_dvh_command(cli: typer.Typer, tmp_path: Path) -> None:
    """Against the real POST /api/dvh and /api/dvh/plot."""
    plot = tmp_path / "sphere.png"
    with radpacs_with_account(tmp_path / "data") as url:
        code, out, err = _invoke(
            cli,
            "dvh",
            str(RT_WORKSHOP / "rtstruct-sphere.dcm"),
            str(RT_WORKSHOP / "rtdose.dcm"),
            "--plot",
            str(plot),
            "--url",
            url,
        )
        assert code == 0, err
        report = json.loads(out)
        assert "Sphere_02_0" in [row["name"] for row in report["statistics"]]
        assert report["plot"] == str(plot) and plot.read_bytes().startswith(b"\x89PNG")
        # --roi reaches the server: an unknown name is refused with the ROIs listed
        code, out, err = _invoke(
            cli,
            "dvh",
            str(RT_WORKSHOP / "rtstruct-sphere.dcm"),
            str(RT_WORKSHOP / "rtdose.dcm"),
            "--no-plot",
            "--roi",
            "NOPE",
            "--url",
            url,
        )
        assert code != 0 and "Sphere_02_0" in err, (code, out, err)
        code, out, err = _invoke(
            cli,
            "dvh",
            str(RT_WORKSHOP / "rtstruct-sphere.dcm"),
            str(RT_WORKSHOP / "rtdose.dcm"),
            "--no-plot",
            "--roi",
            "2",
            "--url",
            url,
        )
        assert code == 0, err
        assert [row["name"] for row in json.loads(out)["statistics"]] == ["Sphere_02_0"]


def _script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RADPACS), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_installed_script(live_server: LiveServer, tmp_path: Path, user_config: Path) -> None:
    assert RADPACS.is_file(), "the radpacs console script is not installed in this environment"
    folder, study = _folder(tmp_path)
    zipped = tmp_path / "scans.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in sorted(folder.rglob("*.dcm")):
            archive.write(path, path.relative_to(folder))
    env = {**os.environ, "RADPACS_URL": live_server.url, "RADPACS_CONFIG_DIR": str(user_config)}

    done = _script("upload", str(zipped), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["stored"] == 4
    assert done.stderr == ""  # no progress bar off a terminal

    done = _script("query", "series", f"StudyInstanceUID={study}", env=env)
    assert done.returncode == 0 and len(json.loads(done.stdout)) == 4  # a series each

    done = _script("retrieve", study, "--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 0 and len(json.loads(done.stdout)["files"]) == 4

    done = _script("upload", str(tmp_path / "missing"), env=env)
    assert done.returncode == 2 and "Invalid value" in done.stderr
