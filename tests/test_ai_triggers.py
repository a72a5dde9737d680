"""On-arrival rules and batch submission: on a real archive (no worker: jobs stay queued),
and through a live server with its real watcher thread and worker."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom import Dataset

from _ai_support import ball, make_series
from conftest import LiveServer, multipart, to_bytes
from radpacs.ai.service import AiService
from radpacs.ai.triggers import ArrivalRule, ArrivalWatcher, JobSeriesFeed
from radpacs.archive import Archive
from radpacs.archive.jobs import JobStore
from radpacs.jobs import Jobs
from radpacs.settings import load_settings


def test_a_stable_matching_series_triggers_one_job_and_batch_covers_a_query(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", ai_embedded_worker=False)
    archive = Archive.from_settings(settings)
    try:
        job_service = Jobs(settings, archive)
        service = AiService(settings, archive, job_service)
        rule = ArrivalRule("classical-segmenter", modality="CT", stable_seconds=5)
        watcher = ArrivalWatcher(service, [rule])
        archive.add_listener(watcher.on_stored)
        ct = make_series(np.zeros((4, 16, 16), dtype=np.int16), description="abdomen")
        mr = make_series(np.zeros((4, 16, 16), dtype=np.int16), modality="MR")
        archive.store_many([to_bytes(ds) for ds in ct + mr])
        watcher.check(time.monotonic())  # not stable yet
        assert service.jobs.find() == []
        watcher.check(time.monotonic() + 6)
        watcher.check(time.monotonic() + 7)  # once only
        [job] = service.jobs.find()
        assert (job.series_uid, job.trigger) == (ct[0].SeriesInstanceUID, "arrival")
        jobs, skipped = service.batch("classical-segmenter", [("Modality", "MR")])
        assert [j.series_uid for j in jobs] == [mr[0].SeriesInstanceUID]
        assert skipped == []
        job_service.close()
    finally:
        archive.close()


def test_a_rule_runs_a_model_on_a_series_stored_through_a_live_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STOW-RS in two parts: one job, for the matching series only, created no sooner than
    ``stable_seconds`` after the last part arrived, run by the worker, its results stored."""
    stable = 3.0
    rule = {"model": "classical-segmenter", "modality": "CT", "stable_seconds": stable}
    monkeypatch.setenv("RADPACS_AI_RULES", json.dumps([rule]))
    shape = (12, 48, 48)
    lesion = ball(shape, (6, 22, 26), 8.0, (1.0, 1.0, 2.0))
    noise = np.random.default_rng(1).normal(0, 10, shape)
    array = (np.where(lesion, 180, 0) + noise).astype(np.int16)
    ct = make_series(array, spacing=(1.0, 1.0, 2.0))
    mr = make_series(np.zeros((2, 16, 16), dtype=np.int16), modality="MR")
    for ds in mr:
        ds.StudyInstanceUID = ct[0].StudyInstanceUID
    server = LiveServer(tmp_path / "live").start()
    try:
        study = ct[0].StudyInstanceUID

        def stow(datasets: list[Dataset]) -> None:
            body, content_type = multipart([to_bytes(ds) for ds in datasets])
            response = httpx.post(
                f"{server.url}/dicom-web/studies",
                content=body,
                headers={"Content-Type": content_type},
                timeout=60,
            )
            assert response.status_code == 200, response.text

        stow(ct[:4] + mr)
        time.sleep(1.0)
        last_part = time.time()
        stow(ct[4:])
        deadline = time.monotonic() + 120
        jobs: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            jobs = httpx.get(f"{server.url}/api/ai/jobs", params={"study": study}).json()["jobs"]
            if jobs and jobs[0]["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.3)
        [job] = jobs
        assert (job["trigger"], job["series"]) == ("arrival", ct[0].SeriesInstanceUID)
        assert job["state"] == "succeeded", job["error"]
        created = datetime.fromisoformat(str(job["created_at"])).timestamp()
        assert created >= last_part + stable
        # what the worker stored is in the study (what the model finds is its own test's)
        series = httpx.get(f"{server.url}/dicom-web/studies/{study}/series").json()
        stored = {s["0020000E"]["Value"][0] for s in series}
        results = job["result_series"]
        assert isinstance(results, list)
        assert {r["series"] for r in results} <= stored
        assert len(stored) == 2 + len(results)
        time.sleep(2 * stable)
        again = httpx.get(f"{server.url}/api/ai/jobs", params={"study": study}).json()["jobs"]
        assert [j["id"] for j in again] == [job["id"]]  # once, and nothing for the MR series
    finally:
        server.stop()


def test_the_job_series_feed_names_each_newly_succeeded_job_s_series_once(
    tmp_path: Path,
) -> None:
    """How a server without Redis hears what its C-GET jobs stored: jobs finished before the
    feed was made are not news; a new one's series are given once; other kinds are not."""
    settings = load_settings(data_dir=tmp_path / "data", ai_embedded_worker=False)
    with Archive.from_settings(settings) as archive:
        store = JobStore(archive.engine)

        def finish(kind: str, series: list[list[str]]) -> None:
            job, _ = store.submit(kind)
            assert store.claim(job.id) is not None
            store.succeed(job.id, {"series": series})

        finish("dimse.get", [["1.1", "1.1.1"]])
        feed = JobSeriesFeed(store, "dimse.get")
        assert feed() == []
        finish("dimse.get", [["1.2", "1.2.2"], ["1.2", "1.2.1"]])
        finish("dimse.send", [["1.3", "1.3.1"]])
        assert feed() == [("1.2", "1.2.1"), ("1.2", "1.2.2")]
        assert feed() == []
