"""The one job store and queue: migration of AI jobs, atomic claim, run once however often
enqueued, re-enqueue at worker start, recovery of a job whose worker died, retry back-off.

The worker is ``radpacs worker`` in a subprocess, as a user starts it; the test kinds come
from tests/_job_kinds.py through the ``job_kinds`` setting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text, update

from radpacs.ai.service import AiJob
from radpacs.archive import Archive
from radpacs.archive.database import _MIGRATIONS, create_index_engine
from radpacs.archive.jobs import Job, JobRow, JobState, JobStore
from radpacs.jobs import Jobs
from radpacs.jobs.worker import requeue_stale, run_attempt
from radpacs.settings import Settings, load_settings

TESTS = Path(__file__).parent
KINDS = {"test.record": "_job_kinds:record", "test.fail": "_job_kinds:fail"}


# ------------------------------------------------------------------ migration 0005


def test_migration_keeps_ai_jobs_as_jobs_of_kind_ai(settings: Settings) -> None:
    engine = create_index_engine(settings.resolved_database_url)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    row = {
        "id": "6f1c3a52-0000-4000-8000-000000000001",
        "model": "classical-segmenter",
        "study_uid": "1.2.3",
        "series_uid": "1.2.3.4",
        "parameters_json": '{"lower": 90}',
        "trigger": "arrival",
        "state": "succeeded",
        "progress": 1.0,
        "attempts": 2,
        "max_attempts": 3,
        "cancel_requested": False,
        "error": "",
        "result_series_json": '[{"series": "9.8", "modality": "SEG"}]',
        "result_json": '{"results": []}',
        "timings_json": '{"load": 0.5}',
        "created_at": datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        "finished_at": datetime(2026, 11, 30, 8, 1, tzinfo=UTC),
    }
    with engine.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO ai_job ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"
            ),
            row,
        )
    engine.dispose()
    archive = Archive.from_settings(settings)  # migrates to head
    try:
        store = JobStore(archive.engine)
        [job] = store.find()
        assert (job.kind, job.study_uid, job.label) == ("ai", "1.2.3", "classical-segmenter")
        view = AiJob(job).to_json()
        assert view["model"] == "classical-segmenter" and view["series"] == "1.2.3.4"
        assert view["parameters"] == {"lower": 90} and view["trigger"] == "arrival"
        assert (view["state"], view["progress"], view["attempts"]) == ("succeeded", 1.0, 2)
        assert view["result_series"] == [{"series": "9.8", "modality": "SEG"}]
        assert view["timings"] == {"load": 0.5}
        assert view["finished_at"] == "2026-11-30T08:01:00+00:00"
        assert store.output(job.id, "ai") == '{"results": []}'
        with archive.engine.connect() as connection:
            tables = {
                name
                for (name,) in connection.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type='table'"
                        if archive.engine.dialect.name == "sqlite"
                        else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    )
                )
            }
        assert "ai_job" not in tables and "job" in tables
    finally:
        archive.close()


# ------------------------------------------------------------------ the store


def test_a_queued_job_is_claimed_once_by_concurrent_workers(archive: Archive) -> None:
    store = JobStore(archive.engine)
    job, created = store.submit("test.record", {"log": "x"}, key="k")
    again, created_again = store.submit("test.record", {"log": "y"}, key="k")
    assert created and not created_again and again.id == job.id  # the pending one
    claims: list[object] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait()
        claims.append(store.claim(job.id))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [c for c in claims if c is not None]
    assert len(claims) == 6 and len(won) == 1
    current = store.get(job.id)
    assert current.state is JobState.RUNNING and current.attempts == 1
    assert store.claim(job.id) is None


def test_a_job_waiting_for_its_back_off_is_not_claimed_early(archive: Archive) -> None:
    """An early copy of the id (the queue had it twice) must not skip the retry delay."""
    store = JobStore(archive.engine)
    job, _ = store.submit("test.record", {}, max_attempts=3)
    assert store.claim(job.id) is not None
    assert store.fail(job.id, "first attempt failed", retry_in=3600).state is JobState.QUEUED
    assert store.claim(job.id) is None
    assert store.fail(job.id, "x", retry_in=None).state is JobState.FAILED
    again, _ = store.submit("test.record", {"n": 2}, max_attempts=3)
    store.claim(again.id)
    store.fail(again.id, "first attempt failed", retry_in=0.0)
    claimed = store.claim(again.id)
    assert claimed is not None and claimed.attempts == 2


def test_progress_and_result_are_seen_by_another_process_s_store(archive: Archive) -> None:
    store = JobStore(archive.engine)
    job, _ = store.submit("test.record", {}, study_uid="1.2", total=4)
    store.claim(job.id)
    store.progress(job.id, 3)
    other = create_index_engine(archive.engine.url.render_as_string(hide_password=False))
    try:
        seen = JobStore(other).get(job.id)
        assert (seen.state, seen.done, seen.total, seen.progress) == ("running", 3, 4, 0.75)
        store.succeed(job.id, {"n": 1}, "big")
        seen = JobStore(other).get(job.id)
        assert (seen.state, seen.done, seen.result) == ("succeeded", 4, {"n": 1})
        assert JobStore(other).output(job.id) == "big"
    finally:
        other.dispose()


# ------------------------------------------------------------------ a real worker


@pytest.fixture
def job_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings shared by the test and its ``radpacs worker`` subprocesses (through env)."""
    path = os.pathsep.join(p for p in [str(TESTS), os.environ.get("PYTHONPATH", "")] if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("RADPACS_JOB_KINDS", json.dumps(KINDS))
    monkeypatch.setenv("RADPACS_AI_EMBEDDED_WORKER", "false")
    monkeypatch.setenv("RADPACS_AI_HEARTBEAT_SECONDS", "0.2")
    monkeypatch.setenv("RADPACS_AI_RETRY_DELAY", "4")
    settings = load_settings(data_dir=tmp_path / "data")
    Archive.from_settings(settings).close()
    return settings


class Worker:
    """``radpacs worker`` in its own process group (so a kill reaches its job processes)."""

    def __init__(self, settings: Settings, threads: int = 2) -> None:
        command = [sys.executable, "-m", "radpacs", "worker", "--data-dir"]
        self.process = subprocess.Popen(
            [*command, str(settings.data_dir), "--jobs", str(threads)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=20)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill(signal.SIGTERM)


def _wait(store: JobStore, job_id: str, states: set[str], timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job.state.value in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still {store.get(job_id).state}")


def _runs(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_a_job_enqueued_many_times_runs_once(
    job_settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    archive = Archive.from_settings(job_settings)
    jobs = Jobs(job_settings, archive)
    try:
        log = tmp_path / "runs.log"
        job, _ = jobs.submit("test.record", {"log": str(log), "seconds": 0.5})
        for _ in range(9):
            jobs.queue.enqueue(job.id)
        assert jobs.queue.pending_count() == 10
        workers.append(Worker(job_settings, threads=4))
        done = _wait(jobs.store, job.id, {"succeeded", "failed"})
        assert done.state == "succeeded", done.error
        deadline = time.monotonic() + 20
        while jobs.queue.pending_count() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the other nine copies are taken, claimed in vain, dropped
        assert jobs.queue.pending_count() == 0
        assert len(_runs(log)) == 1
        assert jobs.get(job.id).result == {"runs": 1}
    finally:
        archive.close()


def test_a_worker_at_start_enqueues_the_queued_jobs_the_queue_lost(
    job_settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    archive = Archive.from_settings(job_settings)
    jobs = Jobs(job_settings, archive)
    try:
        log = tmp_path / "runs.log"
        first, _ = jobs.submit("test.record", {"log": str(log)})
        second, _ = jobs.submit("test.record", {"log": str(log)})
        jobs.queue.huey.flush()  # the queue lost everything (a new Redis, a deleted file)
        assert jobs.queue.pending_count() == 0
        workers.append(Worker(job_settings))
        for job in (first, second):
            assert _wait(jobs.store, job.id, {"succeeded", "failed"}).state == "succeeded"
        assert sorted(run[1] for run in _runs(log)) == sorted([first.id, second.id])
    finally:
        archive.close()


def test_a_running_job_whose_worker_died_runs_again(
    job_settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    archive = Archive.from_settings(job_settings)
    jobs = Jobs(job_settings, archive)
    try:
        log = tmp_path / "runs.log"
        job, _ = jobs.submit("test.record", {"log": str(log), "seconds": 600, "slow_once": True})
        workers.append(Worker(job_settings))
        deadline = time.monotonic() + 60
        while not _runs(log) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert jobs.get(job.id).state is JobState.RUNNING
        workers[0].kill()  # the worker and its job process die; the row says running
        assert jobs.get(job.id).state is JobState.RUNNING
        workers.append(Worker(job_settings))  # its start finds the stale heartbeat
        done = _wait(jobs.store, job.id, {"succeeded", "failed"})
        assert (done.state, done.attempts) == ("succeeded", 2)
        assert [run[2] for run in _runs(log)] == ["1", "2"]
    finally:
        archive.close()


def test_a_running_worker_takes_over_a_job_whose_heartbeat_stopped(
    job_settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    workers.append(Worker(job_settings))
    archive = Archive.from_settings(job_settings)
    jobs = Jobs(job_settings, archive)
    try:
        log = tmp_path / "runs.log"
        probe, _ = jobs.submit("test.record", {"log": str(tmp_path / "probe.log")})
        # the probe ran: the worker is past its start, so only its sweeper can find the job
        assert _wait(jobs.store, probe.id, {"succeeded", "failed"}).state == "succeeded"
        job, _ = jobs.store.submit("test.record", {"log": str(log)})
        jobs.store.claim(job.id)  # another worker took it, then died without a trace
        with archive.engine.begin() as connection:
            connection.execute(
                update(JobRow)
                .where(JobRow.id == job.id)
                .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        done = _wait(jobs.store, job.id, {"succeeded", "failed"})
        assert (done.state, done.attempts) == ("succeeded", 2), _runs(log)
        assert len(_runs(log)) == 1
    finally:
        archive.close()


def test_failed_attempts_are_retried_after_a_doubling_delay(
    job_settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    archive = Archive.from_settings(job_settings)
    jobs = Jobs(job_settings, archive)
    try:
        log = tmp_path / "runs.log"
        job, _ = jobs.submit("test.fail", {"log": str(log)}, max_attempts=3)
        workers.append(Worker(job_settings))
        done = _wait(jobs.store, job.id, {"succeeded", "failed"})
        assert (done.state, done.attempts) == ("failed", 3)
        assert "this kind always fails" in done.error
        times = [float(run[0]) for run in _runs(log)]
        assert len(times) == 3
        # ai_retry_delay is 4 s: the second attempt waits >= 4 s, the third >= 8 s (a
        # constant delay gives 4 s plus the start of a job process, well under 8 s)
        assert times[1] - times[0] >= 4.0
        assert times[2] - times[1] >= 8.0
    finally:
        archive.close()


# ------------------------------------------------------------------ a job never runs twice


def test_an_old_attempts_heartbeat_and_progress_do_not_keep_a_new_attempt_alive(
    archive: Archive,
) -> None:
    store = JobStore(archive.engine)
    job, _ = store.submit("test.record", {"log": "x"})
    assert store.claim(job.id) is not None  # attempt 1, whose worker then stalls
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with archive.engine.begin() as connection:
        connection.execute(update(JobRow).where(JobRow.id == job.id).values(heartbeat_at=long_ago))
    assert store.requeue_stale(job.id, timedelta(minutes=1))
    second = store.claim(job.id)
    assert second is not None and second.attempts == 2
    with archive.engine.begin() as connection:
        connection.execute(update(JobRow).where(JobRow.id == job.id).values(heartbeat_at=long_ago))
    assert store.heartbeat(job.id, 1) is None  # attempt 1 learns it lost the job
    store.progress(job.id, 1, 2, attempt=1)
    after = store.get(job.id)
    assert after.heartbeat_at is not None and after.heartbeat_at < long_ago + timedelta(seconds=1)
    assert after.done == 0  # attempt 1's progress does not count either
    assert store.heartbeat(job.id, 2) is False  # the owner's beat counts: no cancel
    assert store.get(job.id).heartbeat_at > long_ago + timedelta(minutes=59)  # type: ignore[operator]


def test_a_sweeper_leaves_alone_a_job_its_own_process_runs(
    job_settings: Settings, tmp_path: Path
) -> None:
    # a rare heartbeat (30 s): the row's heartbeat stays as old as the test sets it, as when
    # a busy database or a starved machine delays it; the worker knows the job is alive
    settings = job_settings.model_copy(update={"ai_heartbeat_seconds": 30.0})
    archive = Archive.from_settings(settings)
    jobs = Jobs(settings, archive)
    try:
        log = tmp_path / "runs.log"
        job, _ = jobs.store.submit("test.record", {"log": str(log), "seconds": 8})
        runner = threading.Thread(
            target=run_attempt, args=(settings, jobs.queue, jobs.store, job.id), daemon=True
        )
        runner.start()
        deadline = time.monotonic() + 60
        while jobs.store.get(job.id).done < 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # past its first progress report, now in its 8 s of work
        assert jobs.store.get(job.id).done == 1, "the job never started"
        with archive.engine.begin() as connection:
            connection.execute(
                update(JobRow)
                .where(JobRow.id == job.id)
                .values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
            )
        assert requeue_stale(settings, jobs.store, jobs.queue) == []
        assert jobs.store.get(job.id).state is JobState.RUNNING
        runner.join(120)
        done = jobs.store.get(job.id)
        assert (done.state, done.attempts, len(_runs(log))) == ("succeeded", 1, 1)
    finally:
        archive.close()


def test_an_attempt_whose_job_was_taken_over_is_stopped(
    job_settings: Settings, tmp_path: Path
) -> None:
    archive = Archive.from_settings(job_settings)
    jobs = Jobs(job_settings, archive)
    try:
        log = tmp_path / "runs.log"
        job, _ = jobs.store.submit("test.record", {"log": str(log), "seconds": 600})
        states: list[object] = []
        runner = threading.Thread(
            target=lambda: states.append(run_attempt(job_settings, jobs.queue, jobs.store, job.id)),
            daemon=True,
        )
        runner.start()
        deadline = time.monotonic() + 60
        while not _runs(log) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _runs(log), "the job never started"
        # another worker's sweeper judged attempt 1 dead and a worker claimed attempt 2
        assert jobs.store.requeue_stale(job.id, timedelta(seconds=-60))
        assert jobs.store.claim(job.id) is not None
        runner.join(60)  # attempt 1 (600 s long) is stopped instead of running on
        assert not runner.is_alive() and states == [JobState.RUNNING]
        assert jobs.store.get(job.id).attempts == 2
    finally:
        archive.close()


def test_a_heartbeat_a_few_periods_late_is_not_a_dead_worker(
    job_settings: Settings, archive: Archive
) -> None:
    store = JobStore(archive.engine)
    queue = Jobs(job_settings, archive).queue
    job, _ = store.submit("test.record", {"log": "x"})
    store.claim(job.id)  # run by another worker, whose beats are late under load
    late = datetime.now(UTC) - timedelta(seconds=6)  # 30 periods of 0.2 s, under 10 s
    with archive.engine.begin() as connection:
        connection.execute(update(JobRow).where(JobRow.id == job.id).values(heartbeat_at=late))
    assert requeue_stale(job_settings, store, queue) == []
    dead = datetime.now(UTC) - timedelta(seconds=11)  # past max(10 s, 10 periods): it died
    with archive.engine.begin() as connection:
        connection.execute(update(JobRow).where(JobRow.id == job.id).values(heartbeat_at=dead))
    assert requeue_stale(job_settings, store, queue) == [job.id]
