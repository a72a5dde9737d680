"""The README's first-steps block, run as written with bash against a started server.

The block is the shell block after the ``tests/test_readme.py`` marker in README.md. It runs
in an empty folder whose ``.venv`` is this test's Python environment, against ``radpacs
serve`` started as the README's ``scripts/start`` line starts it (the same administrator
variables); only the server's address differs (a free port instead of 8080).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from conftest import LiveServer
from radpacs.archive.demo import sample_ct

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- tests/test_readme.py runs the next block -->"


def first_steps() -> str:
    """The README's shell block after the marker, exactly as written."""
    text = README.read_text(encoding="utf-8")
    assert MARKER in text, "README.md lost the marker of its tested block"
    found = re.search(r"```sh\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    assert found is not None, "no ```sh block after the marker"
    return found.group(1)


def _admin(text: str) -> tuple[str, str]:
    found = re.search(
        r"RADPACS_ADMIN_USER=(\S+) RADPACS_ADMIN_PASSWORD='([^']+)' scripts/start", text
    )
    assert found is not None, "README.md lost its scripts/start line"
    return found.group(1), found.group(2)


def _json_values(text: str) -> list[Any]:
    """The JSON values written one after the other (curl adds no newline)."""
    decoder = json.JSONDecoder()
    values, position = [], 0
    while position < len(text.rstrip()):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return values


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    user, password = _admin(README.read_text(encoding="utf-8"))
    monkeypatch.setenv("RADPACS_ADMIN_USER", user)
    monkeypatch.setenv("RADPACS_ADMIN_PASSWORD", password)
    live = LiveServer(tmp_path / "radpacs-data", ["--auth"]).start()
    yield live
    live.stop()


def test_readme_first_steps_run_as_written(server: LiveServer, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is missing: the README's examples use it")
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file():
        pytest.fail(f"tests must run from a virtualenv (scripts/test makes .venv); {venv} is not")
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / ".venv").symlink_to(venv)
    script = first_steps().replace("http://127.0.0.1:8080", server.url)
    assert script.count(server.url) >= 4  # every call goes to the started server
    # radpacs login's default URL is the README's 127.0.0.1:8080: RADPACS_URL moves it, and
    # its config file goes to a folder of the test's own
    env = {
        **os.environ,
        "RADPACS_URL": server.url,
        "RADPACS_CONFIG_DIR": str(tmp_path / "config"),
    }
    env.pop("RADPACS_TOKEN", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    sample = pydicom.dcmread(sample_ct(), stop_before_pixels=True)
    assert (folder / "CT_small.dcm").read_bytes() == sample_ct().read_bytes()
    # one JSON answer per curl (STOW, QIDO, metadata, health), then radpacs query's
    answers = _json_values(done.stdout[done.stdout.index("{") :])
    assert len(answers) == 5, done.stdout
    stow, qido, metadata, health, cli_query = answers
    stored = stow["00081199"]["Value"]
    assert [item["00081155"]["Value"] for item in stored] == [[sample.SOPInstanceUID]]
    assert "00081198" not in stow  # nothing failed
    assert [match["0020000D"]["Value"] for match in qido] == [[sample.StudyInstanceUID]]
    assert [instance["00080018"]["Value"] for instance in metadata] == [[sample.SOPInstanceUID]]
    assert health["status"] == "ok"
    assert f"logged in to {server.url}" in done.stderr
    assert [match["StudyInstanceUID"] for match in cli_query] == [sample.StudyInstanceUID]
    # the study UID the README writes is the one radpacs demo printed
    assert f"StudyInstanceUID   {sample.StudyInstanceUID}" in done.stdout
    assert sample.StudyInstanceUID in script
