"""`radpacs serve` listens for DICOM beside HTTP (one process or several), `radpacs dimse`
alone, and the `radpacs dimse` SCU commands go through a running server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _dimse_support import LOOPBACK, dcmtk, free_port
from conftest import LiveServer, make_ct, to_bytes


def _nodes(port: int) -> str:
    return json.dumps(
        {
            "scu": {"ae_title": "SCU", "host": LOOPBACK, "port": 1},
            "self": {"ae_title": "RADPACS", "host": LOOPBACK, "port": port},
        }
    )


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        with socket.socket() as sock:
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_stores_over_dimse_and_serves_over_dicomweb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    port = free_port()
    monkeypatch.setenv("RADPACS_DIMSE_NODES", _nodes(port))
    server = LiveServer(
        tmp_path / "live",
        ["--dimse", "--dimse-port", str(port), "--workers", str(workers)],
    ).start()
    try:
        _wait_for_port(port, server.process)  # type: ignore[arg-type]
        ct = make_ct(PatientName="Serve^Dimse")
        path = tmp_path / "ct.dcm"
        path.write_bytes(to_bytes(ct))
        stored = dcmtk("storescu", "-aet", "SCU", "-aec", "RADPACS", LOOPBACK, str(port), str(path))
        assert stored.returncode == 0, stored.stderr
        found = httpx.get(f"{server.url}/dicom-web/studies", params={"PatientName": "serve*"})
        assert found.json()[0]["0020000D"]["Value"] == [ct.StudyInstanceUID]
        if workers == 1:  # the CLI's SCU commands, through the server, to radpacs itself
            env = {**os.environ, "RADPACS_URL": server.url}
            run = [sys.executable, "-m", "radpacs", "dimse"]
            echo = subprocess.run([*run, "echo", "self"], env=env, capture_output=True, text=True)
            assert echo.returncode == 0 and "echo succeeded" in echo.stdout, echo.stderr
            query = subprocess.run(
                [*run, "query", "self", "-k", "PatientName=Serve*", "--json"],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            assert json.loads(query.stdout)[0]["0020000D"]["Value"] == [ct.StudyInstanceUID]
            missing = subprocess.run(
                [*run, "echo", "absent"], env=env, capture_output=True, text=True
            )
            assert missing.returncode == 2 and "no DICOM node 'absent'" in missing.stderr
    finally:
        server.stop()


def test_dimse_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("RADPACS_DIMSE_NODES", _nodes(port))
    process = subprocess.Popen(
        [sys.executable, "-m", "radpacs", "dimse", "--data-dir", str(tmp_path / "d"),
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for_port(port, process)
        echo = dcmtk("echoscu", "-aet", "SCU", "-aec", "RADPACS", LOOPBACK, str(port))
        assert echo.returncode == 0, echo.stderr
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_serve_refuses_to_start_when_the_dicom_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="cannot listen for DICOM"):
            LiveServer(tmp_path / "live", ["--dimse", "--dimse-port", str(port)]).start()


def test_cli_retrieves_and_sends_as_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydicom.uid import generate_uid

    from _dimse_support import Orthanc

    port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", port)
    try:
        study = generate_uid()
        for number in (1, 2):
            ct = make_ct(study_uid=study, PatientID="CLI", InstanceNumber=number)
            assert orthanc.http.post("/instances", content=to_bytes(ct)).status_code == 200
        monkeypatch.setenv("RADPACS_DIMSE_NODES", json.dumps({"orthanc": orthanc.node}))
        server = LiveServer(tmp_path / "live", ["--dimse", "--dimse-port", str(port)]).start()
        try:
            env = {**os.environ, "RADPACS_URL": server.url}
            run = [sys.executable, "-m", "radpacs", "dimse"]
            moved = subprocess.run(
                [*run, "retrieve", "orthanc", study, "--wait"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert moved.returncode == 0, moved.stdout + moved.stderr
            assert "succeeded: 2 completed, 0 failed" in moved.stdout
            listed = httpx.get(f"{server.url}/dicom-web/studies/{study}/instances").json()
            assert len(listed) == 2
            sent = subprocess.run(
                [*run, "send", "orthanc", study, "--wait", "--json"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert json.loads(sent.stdout)["completed"] == 2
        finally:
            server.stop()
    finally:
        orthanc.stop()
