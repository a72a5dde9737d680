"""Crash injection (issue 14): SIGKILL a real server while clients store, restart it, and check
that every acknowledged instance is there and `radpacs check` finds no indexed file missing."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from conftest import LiveServer, make_ct, multipart, to_bytes

BATCH = 4
ACKNOWLEDGED_BEFORE_KILL = 24


def _store_until_refused(url: str, acknowledged: list[str], enough: threading.Event) -> None:
    """Post batches until the server goes away; record the SOP UIDs of every 200 answer."""
    with httpx.Client(timeout=30) as client:
        while True:
            datasets = [make_ct(generate_uid(), PatientID="CRASH") for _ in range(BATCH)]
            body, content_type = multipart([to_bytes(dataset) for dataset in datasets])
            try:
                response = client.post(
                    f"{url}/dicom-web/studies", content=body, headers={"Content-Type": content_type}
                )
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                acknowledged.extend(dataset.SOPInstanceUID for dataset in datasets)
                if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                    enough.set()


def _check(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radpacs", "check", "--data-dir", str(data_dir), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sigkill_during_stow_loses_no_acknowledged_instance(tmp_path: Path) -> None:
    data_dir = tmp_path / "crash"
    server = LiveServer(data_dir).start()
    acknowledged: list[str] = []
    enough = threading.Event()
    clients = [
        threading.Thread(target=_store_until_refused, args=(server.url, acknowledged, enough))
        for _ in range(2)
    ]
    for client in clients:
        client.start()
    try:
        assert enough.wait(timeout=300), "the server acknowledged too few stores"
    finally:
        assert server.process is not None
        server.process.kill()  # SIGKILL, with stores in flight
        server.process.wait()
        for client in clients:
            client.join(timeout=60)
    saved = list(acknowledged)
    report = _check(data_dir)
    assert report.returncode == 0, report.stdout + report.stderr  # no indexed file missing
    assert "0 indexed instances without a file" in report.stdout
    again = LiveServer(data_dir).start()
    try:
        found = httpx.get(
            f"{again.url}/dicom-web/instances",
            params={"PatientID": "CRASH", "limit": 1000, "includefield": "00080018"},
            timeout=60,
        ).json()
        stored = {item["00080018"]["Value"][0] for item in found}
        assert set(saved) <= stored
        for sop in saved[:: max(1, len(saved) // 5)]:
            response = httpx.get(f"{again.url}/dicom-web/instances?SOPInstanceUID={sop}")
            assert response.status_code == 200
    finally:
        again.stop()
    cleaned = _check(data_dir, "--clean")
    assert cleaned.returncode == 0
    final = _check(data_dir)
    assert "0 orphan files" in final.stdout, final.stdout
