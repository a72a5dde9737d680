"""AI jobs end to end against live servers: segmentation and X-ray flows, crash, hang,
cancel, restart with queued jobs, on the SQLite queue and on Redis."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest

from _ai_support import ball, dice, make_series
from conftest import LiveServer, multipart, split_multipart, to_bytes
from radpacs.ai.geometry import volume_from_datasets
from radpacs.ai.results.seg import seg_to_label_map

TESTS = Path(__file__).parent


@pytest.fixture
def ai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.pathsep.join(p for p in [str(TESTS), os.environ.get("PYTHONPATH", "")] if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv(
        "RADPACS_AI_PLUGINS",
        json.dumps([f"_ai_test_plugins:{m}" for m in ("CrashModel", "HangModel", "EmptyModel")]),
    )
    monkeypatch.setenv("RADPACS_AI_RETRY_DELAY", "0.2")
    # Generous: a job's time includes its process start and imports, many seconds on a busy
    # machine; a short timeout failed (and re-ran) normal jobs. The hang test sets its own.
    monkeypatch.setenv("RADPACS_AI_JOB_TIMEOUT", "300")


@pytest.fixture
def server(tmp_path: Path, ai_env: None) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "live").start()
    yield live
    live.stop()


def _store(url: str, datasets: list[pydicom.Dataset]) -> None:
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    response = httpx.post(
        f"{url}/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text


def _wait(url: str, job_id: str, states: set[str], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{url}/api/ai/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} is still {job['state']}: {job}")


def _ct_series(study_uid: str | None = None) -> tuple[list[pydicom.Dataset], np.ndarray]:
    shape = (12, 48, 48)
    lesion = ball(shape, (6, 22, 26), 8.0, (1.0, 1.0, 2.0))
    noise = np.random.default_rng(1).normal(0, 10, shape)
    array = (np.where(lesion, 180, 0) + noise).astype(np.int16)
    return make_series(array, "axial", (1.0, 1.0, 2.0), study_uid=study_uid), lesion


SEGMENT = {"model": "classical-segmenter", "parameters": {"lower": 90, "min_size_mm3": 50}}


def test_segmentation_flow_stores_seg_rtstruct_and_measurements(server: LiveServer) -> None:
    datasets, lesion = _ct_series()
    _store(server.url, datasets)
    study = datasets[0].StudyInstanceUID
    request = {**SEGMENT, "study": study, "series": datasets[0].SeriesInstanceUID}
    first = httpx.post(f"{server.url}/api/ai/jobs", json=request)
    assert first.status_code == 202
    again = httpx.post(f"{server.url}/api/ai/jobs", json=request)
    assert again.json()["id"] == first.json()["id"]  # the pending job, not a new one
    job = _wait(server.url, first.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    assert set(job["timings"]) == {"load", "infer", "write"}
    modalities = {entry["modality"]: entry for entry in job["result_series"]}
    assert set(modalities) == {"SEG", "RTSTRUCT", "SR"}
    series = httpx.get(f"{server.url}/dicom-web/studies/{study}/series").json()
    assert {s["00080060"]["Value"][0] for s in series} == {"CT", "SEG", "RTSTRUCT", "SR"}
    seg_entry = modalities["SEG"]
    response = httpx.get(
        f"{server.url}/dicom-web/studies/{study}/series/{seg_entry['series']}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    [(_, payload)] = split_multipart(response)
    seg = pydicom.dcmread(io.BytesIO(payload))
    volume = volume_from_datasets(datasets)
    assert dice(seg_to_label_map(seg, volume) == 1, lesion) > 0.9
    ui = httpx.get(f"{server.url}/api/ai/jobs/{job['id']}/result").json()
    [result] = ui["results"]
    assert result["labels"][0]["measurements"]["volume_mm3"] > 0
    assert result["slices"] and result["slices"][0]["polygons"]


def test_xray_flow_one_sr_per_radiograph(server: LiveServer) -> None:
    images = _radiographs()
    study = images[0].StudyInstanceUID
    _store(server.url, images)
    response = httpx.post(
        f"{server.url}/api/ai/jobs", json={"model": "xray-exposure", "study": study}
    )
    assert response.status_code == 202
    job = _wait(server.url, response.json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded", job["error"]
    srs = httpx.get(
        f"{server.url}/dicom-web/studies/{study}/instances", params={"Modality": "SR"}
    ).json()
    assert len(srs) == 3
    ui = httpx.get(f"{server.url}/api/ai/jobs/{job['id']}/result").json()
    findings = sorted(i["finding"] for r in ui["results"] for i in r["images"])
    assert findings == sorted(
        ["Underexposed radiograph", "Adequately exposed radiograph", "Overexposed radiograph"]
    )


def test_a_crashing_job_is_retried_then_fails_and_a_hanging_one_times_out(
    tmp_path: Path, ai_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADPACS_AI_JOB_TIMEOUT", "12")
    server = LiveServer(tmp_path / "live").start()
    try:
        _crash_and_hang(server)
    finally:
        server.stop()


def _crash_and_hang(server: LiveServer) -> None:
    datasets, _ = _ct_series()
    _store(server.url, datasets)
    study = datasets[0].StudyInstanceUID
    crash = httpx.post(
        f"{server.url}/api/ai/jobs", json={"model": "test-crash", "study": study, "max_attempts": 2}
    ).json()
    hang = httpx.post(
        f"{server.url}/api/ai/jobs", json={"model": "test-hang", "study": study, "max_attempts": 1}
    ).json()
    crashed = _wait(server.url, crash["id"], {"failed", "succeeded"})
    assert crashed["state"] == "failed" and crashed["attempts"] == 2
    assert "exit code 3" in crashed["error"]
    hung = _wait(server.url, hang["id"], {"failed", "succeeded"})
    assert hung["state"] == "failed" and "timed out" in hung["error"]
    # the worker survived both: a normal job still runs (one that needs no 12 s on a busy machine)
    quick = {"model": "test-empty", "study": study}
    ok = httpx.post(f"{server.url}/api/ai/jobs", json=quick).json()
    assert _wait(server.url, ok["id"], {"succeeded", "failed"})["state"] == "succeeded"


def test_cancel_a_running_job(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets, _ = _ct_series()
    _store(server.url, datasets)
    job = httpx.post(
        f"{server.url}/api/ai/jobs",
        json={"model": "test-hang", "study": datasets[0].StudyInstanceUID, "max_attempts": 1},
    ).json()
    _wait(server.url, job["id"], {"running"})
    cancelled = httpx.post(f"{server.url}/api/ai/jobs/{job['id']}/cancel").json()
    assert cancelled["cancel_requested"]
    assert _wait(server.url, job["id"], {"cancelled", "failed"})["state"] == "cancelled"
    listed = httpx.get(f"{server.url}/api/ai/jobs", params={"state": "cancelled"}).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_jobs_queued_before_a_restart_run_after_it(
    tmp_path: Path, ai_env: None, monkeypatch: pytest.MonkeyPatch, queue: str
) -> None:
    if queue == "redis":
        import redis

        try:
            redis.Redis.from_url("redis://127.0.0.1:6379/0").ping()
        except redis.RedisError:
            pytest.skip("Redis is not running on 127.0.0.1:6379")
        monkeypatch.setenv("RADPACS_AI_QUEUE", "redis")
        monkeypatch.setenv("RADPACS_AI_QUEUE_NAME", f"radpacs-test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("RADPACS_AI_EMBEDDED_WORKER", "false")
    data = tmp_path / "live"
    first = LiveServer(data).start()
    try:
        datasets, _ = _ct_series()
        _store(first.url, datasets)
        job = httpx.post(
            f"{first.url}/api/ai/jobs", json={**SEGMENT, "study": datasets[0].StudyInstanceUID}
        ).json()
        time.sleep(0.5)
        assert httpx.get(f"{first.url}/api/ai/jobs/{job['id']}").json()["state"] == "queued"
    finally:
        first.stop()
    monkeypatch.setenv("RADPACS_AI_EMBEDDED_WORKER", "true")
    second = LiveServer(data).start()
    try:
        done = _wait(second.url, job["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded", done["error"]
    finally:
        second.stop()


@pytest.mark.parametrize("kind", ["segmentation", "xray"])
def test_a_retried_attempt_stores_the_results_of_its_job_once(tmp_path: Path, kind: str) -> None:
    """Attempt 1 stores its results, then "dies" before it records success (a timeout, a
    killed worker); attempt 2 runs the whole job again: the study holds one set."""
    from radpacs.ai.execute import KIND, run_ai_job
    from radpacs.archive import Archive
    from radpacs.archive.jobs import JobStore
    from radpacs.jobs.registry import JobContext
    from radpacs.settings import load_settings

    settings = load_settings(data_dir=tmp_path / "data")
    if kind == "segmentation":
        datasets, _ = _ct_series()
        request: dict[str, Any] = dict(SEGMENT)
    else:
        datasets, request = _radiographs(), {"model": "xray-exposure"}
    study = str(datasets[0].StudyInstanceUID)
    with Archive.from_settings(settings) as archive:
        archive.store_many([to_bytes(ds) for ds in datasets])
        store = JobStore(archive.engine)
        job, _ = store.submit(KIND, {**request, "study": study}, study_uid=study)
        outcomes = []
        for attempt in (1, 2):
            claimed = store.claim(job.id)
            assert claimed is not None and claimed.attempts == attempt
            outcomes.append(run_ai_job(JobContext(claimed, settings, archive, store)))
            if attempt == 1:  # it died: the worker records a failed attempt, retried at once
                store.fail(job.id, "the job process died", retry_in=0.0, attempt=1)
        first, second = (o.result["result_series"] for o in outcomes)
        assert first == second  # the same series and instances, not a second set
        results = [f for f in archive.instance_files(study) if f.sop_uid not in _uids(datasets)]
        assert sorted(f.sop_uid for f in results) == sorted(
            uid for entry in first for uid in entry["instances"]
        )
        assert len(results) == 3  # three SRs; or a SEG, an RTSTRUCT and an SR


def _uids(datasets: list[pydicom.Dataset]) -> set[str]:
    return {str(ds.SOPInstanceUID) for ds in datasets}


def _radiographs() -> list[pydicom.Dataset]:
    """Three DX images of one study: under-, adequately and over-exposed."""
    study = pydicom.uid.generate_uid()
    images = []
    ramp = np.linspace(0.0, 1.0, 64 * 64).reshape(1, 64, 64)
    for low, high in ((100, 1500), (6000, 26000), (20000, 40000)):
        array = np.clip(low + ramp * (high - low), 0, 32767).astype(np.int16)
        [ds] = make_series(array, study_uid=study, modality="DX")
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 15, 14
        images.append(ds)
    return images
