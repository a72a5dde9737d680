"""Instances arriving over DIMSE fire the AI arrival rules in every layout: C-STORE by DCMTK's
storescu to `radpacs serve` (one process; and the parent of `--workers 2` with Redis), and a
C-GET job retrieving from Orthanc (its job process records the arrivals in Redis)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from pydicom import Dataset

from _ai_support import make_series
from _dimse_support import LOOPBACK, Orthanc, dcmtk, free_port
from conftest import LiveServer, to_bytes

pytestmark = [pytest.mark.peer]

REDIS_URL = os.environ.get("RADPACS_TEST_DIMSEARR_REDIS_URL", "redis://127.0.0.1:6379/13")
STABLE = 1.0
RULE = {"model": "classical-segmenter", "modality": "CT", "stable_seconds": STABLE}


def _ct_series(description: str) -> list[Dataset]:
    return make_series(np.zeros((3, 16, 16), dtype=np.int16), description=description)


def _write(folder: Path, datasets: list[Dataset]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, ds in enumerate(datasets):
        path = folder / f"{number}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(str(path))
    return paths


def _store_scu(port: int, paths: list[str]) -> None:
    result = dcmtk("storescu", "-aet", "SCU", "-aec", "RADPACS", LOOPBACK, str(port), *paths)
    assert result.returncode == 0, result.stderr


def _arrival_jobs(server: LiveServer, study: str) -> list[dict[str, object]]:
    response = httpx.get(f"{server.url}/api/ai/jobs", params={"study": study}, timeout=30)
    assert response.status_code == 200, response.text
    return [job for job in response.json()["jobs"] if job["trigger"] == "arrival"]


def _fired_once(server: LiveServer, series: Dataset) -> None:
    """The rule submits exactly one arrival job for ``series``, and no second one later."""
    study, uid = series.StudyInstanceUID, series.SeriesInstanceUID
    deadline = time.monotonic() + 90
    while not (jobs := _arrival_jobs(server, study)) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert [job["series"] for job in jobs] == [uid], server.stderr_path.read_text()[-3000:]
    time.sleep(3 * STABLE + 1)  # more polls of the watcher (of every process) trigger nothing
    assert [job["id"] for job in _arrival_jobs(server, study)] == [jobs[0]["id"]]


def _retrieve_fires_once(server: LiveServer, orthanc: Orthanc) -> None:
    """A C-GET job of ``server`` retrieves a CT series from Orthanc; the rule fires once."""
    retrieved = _ct_series("c-get arrival")
    for ds in retrieved:
        assert orthanc.http.post("/instances", content=to_bytes(ds)).status_code == 200
    study = retrieved[0].StudyInstanceUID
    job = httpx.post(
        f"{server.url}/api/dimse/nodes/orthanc/retrieve",
        json={"study": study, "method": "get"},
        timeout=30,
    )
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 90
    while (state := httpx.get(f"{server.url}/api/dimse/jobs/{job.json()['id']}").json())[
        "state"
    ] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert (state["state"], state["done"]) == ("succeeded", 3), state
    _fired_once(server, retrieved[0])


def test_c_store_and_a_c_get_job_of_one_process_fire_the_rule_once(tmp_path: Path) -> None:
    """One process without Redis: the node shares the app's archive; the C-GET job's result
    names the series it stored, which the server's watcher reads."""
    dimse_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", dimse_port)
    server = LiveServer(
        tmp_path / "live",
        env={
            "RADPACS_DIMSE_ENABLED": "true",
            "RADPACS_DIMSE_PORT": str(dimse_port),
            "RADPACS_DIMSE_ALLOW_UNKNOWN": "true",  # storescu calls as SCU
            "RADPACS_AI_RULES": json.dumps([RULE]),
            "RADPACS_DIMSE_NODES": json.dumps({"orthanc": orthanc.node}),
            "RADPACS_WORKERS": "1",
        },
    )
    try:
        server.start()
        ct = _ct_series("dimse arrival")
        _store_scu(dimse_port, _write(tmp_path / "ct", ct))
        _fired_once(server, ct[0])
        _retrieve_fires_once(server, orthanc)
    finally:
        server.stop()
        orthanc.stop()


@pytest.fixture
def shared_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    return client


def test_c_store_to_several_workers_and_a_c_get_job_fire_the_rule_once(
    tmp_path: Path, shared_redis: redis.Redis
) -> None:
    """`--workers 2` with Redis: the DICOM node runs in the parent; a C-GET job runs in a job
    process. Each series is triggered once, by whichever process leads."""
    dimse_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", dimse_port)
    server = LiveServer(
        tmp_path / "live",
        extra=["--workers", "2"],
        env={
            "RADPACS_DIMSE_ENABLED": "true",
            "RADPACS_DIMSE_PORT": str(dimse_port),
            "RADPACS_DIMSE_ALLOW_UNKNOWN": "true",  # storescu calls as SCU
            "RADPACS_DIMSE_NODES": json.dumps({"orthanc": orthanc.node}),
            "RADPACS_REDIS_URL": REDIS_URL,
            "RADPACS_AI_RULES": json.dumps([RULE]),
        },
    )
    try:
        server.start()
        stored = _ct_series("dimse arrival, workers")
        _store_scu(dimse_port, _write(tmp_path / "ct", stored))
        _fired_once(server, stored[0])

        _retrieve_fires_once(server, orthanc)
    finally:
        server.stop()
        orthanc.stop()
        shared_redis.flushdb()
