"""UPS-RS events of the state changes a job worker makes (radpacs's own AI jobs): a real
``radpacs serve`` with its embedded worker (another process), a real WebSocket subscriber."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session
from websockets.sync.client import ClientConnection, connect

from conftest import LiveServer, make_ct, multipart, to_bytes
from radpacs.archive import Archive
from radpacs.archive.workitems import WorkitemStore, job_workitem_uid, mirror_job

TESTS = Path(__file__).parent
GLOBAL = "1.2.840.10008.5.1.4.34.5"
REDIS_URL = os.environ.get("RADPACS_TEST_EVENTS_REDIS_URL", "redis://127.0.0.1:6379/13")


def _plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test models (a quick one, a crashing one) for the servers and workers started."""
    path = os.pathsep.join(p for p in [str(TESTS), os.environ.get("PYTHONPATH", "")] if p)
    monkeypatch.setenv("PYTHONPATH", path)
    plugins = [f"_ai_test_plugins:{m}" for m in ("CrashModel", "EmptyModel")]
    monkeypatch.setenv("RADPACS_AI_PLUGINS", json.dumps(plugins))
    monkeypatch.setenv("RADPACS_AI_JOB_TIMEOUT", "300")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    _plugins(monkeypatch)
    live = LiveServer(tmp_path / "live").start()
    yield live
    live.stop()


def _states(channel: ClientConnection, uids: set[str], count: int) -> dict[str, list[str]]:
    """The Procedure Step States the State Reports of ``uids`` announce, in order, by UID."""
    seen: dict[str, list[str]] = {uid: [] for uid in uids}
    while sum(len(states) for states in seen.values()) < count:
        event: dict[str, Any] = json.loads(channel.recv(timeout=120))
        uid = event["00001000"]["Value"][0]
        if uid in seen and event["00001002"]["Value"] == [1]:
            assert event["00000002"]["Value"] == ["1.2.840.10008.5.1.4.34.6.1"]
            seen[uid].append(event["00741000"]["Value"][0])
    return seen


def test_a_subscriber_hears_an_ai_job_run_by_the_worker(server: LiveServer) -> None:
    _watch_one_job(server)


def _watch_one_job(server: LiveServer) -> None:
    """Subscribe globally, run a quick job and a crashing one, hear each up to its end."""
    ws_url = server.url.replace("http://", "ws://") + "/dicom-web/subscribers/WATCHER"
    with httpx.Client(base_url=server.url, timeout=60) as http, connect(ws_url) as channel:
        study = str(generate_uid())
        body, content_type = multipart([to_bytes(make_ct(study_uid=study))])
        stored = http.post(
            "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
        )
        assert stored.status_code == 200, stored.text
        subscribed = http.post(f"/dicom-web/workitems/{GLOBAL}/subscribers/WATCHER")
        assert subscribed.status_code == 201

        done = http.post("/api/ai/jobs", json={"model": "test-empty", "study": study}).json()
        crash = {"model": "test-crash", "study": study, "max_attempts": 1}
        failed = http.post("/api/ai/jobs", json=crash).json()
        uids = {job_workitem_uid(done["id"]), job_workitem_uid(failed["id"])}
        seen = _states(channel, uids, 6)

    assert seen[job_workitem_uid(done["id"])] == ["SCHEDULED", "IN PROGRESS", "COMPLETED"]
    assert seen[job_workitem_uid(failed["id"])] == ["SCHEDULED", "IN PROGRESS", "CANCELED"]


def test_a_subscriber_hears_a_job_of_a_separate_worker_with_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API processes sharing ``redis_url`` and the AI queue in Redis, ``radpacs worker``
    apart: the subscriber, on whichever process, hears the worker's changes."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip(f"Redis is not running at {REDIS_URL}")
    _plugins(monkeypatch)
    monkeypatch.setenv("RADPACS_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("RADPACS_AI_QUEUE", "redis")
    monkeypatch.setenv("RADPACS_AI_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("RADPACS_AI_QUEUE_NAME", f"radpacs-events-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("RADPACS_AI_EMBEDDED_WORKER", "false")
    data = tmp_path / "live"
    live = LiveServer(data, ["--workers", "2"]).start()
    log = (tmp_path / "worker.stderr").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "radpacs", "worker", "--data-dir", str(data)], stderr=log
    )
    try:
        _watch_one_job(live)
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
        live.stop()


def test_a_failed_app_delivery_records_its_canceled_report(archive: Archive) -> None:
    """The job mirror records what the relay sends: here an app delivery failed for good,
    then the record is read from a position and pruned."""
    store = WorkitemStore(archive.engine)
    start = store.last_event()
    uid, _ = store.create({"00741000": {"vr": "CS", "Value": ["SCHEDULED"]}})
    job = SimpleNamespace(
        kind="app-delivery",
        state="failed",
        params_json=json.dumps({"workitem": uid}),
        error="HTTP 418",
        finished_at=None,
    )
    with Session(archive.engine) as session, session.begin():
        mirror_job(session, job)
    position, recorded = store.events_after(start)
    assert [(e.uid, e.type_id, e.info["00741000"]["Value"]) for e in recorded] == [
        (uid, 1, ["CANCELED"])
    ]
    assert recorded[0].info["00404041"]["Value"] == ["READY"]
    assert store.events_after(position) == (position, [])
    store.prune_events(timedelta(0))
    assert store.events_after(start) == (start, [])
