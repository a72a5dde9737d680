"""Workers: take job ids from the queue and run each attempt in its own process.

:func:`run_attempt` is what a worker thread calls for a job id. It claims the job (a job
no longer queued is skipped, so an id enqueued twice runs once), starts :func:`_child` in
a fresh process (``forkserver``) that runs the kind's handler, and supervises it:
heartbeats every ``ai_heartbeat_seconds``, a kill after ``ai_job_timeout`` seconds or on
cancel. A crash, an exception or a timeout is a failed attempt: the job goes back to the
queue after ``ai_retry_delay * 2 ** (attempt - 1)`` seconds until ``max_attempts``.

A worker (:func:`run_worker`, ``radpacs worker``, or the server's embedded one) first
re-enqueues every queued job of the table, respecting its back-off, so a queue that lost
its ids loses no job. While it runs, a sweeper puts back in the queue every running job
whose heartbeat is older than ``max(10 s, 10 heartbeats)`` and that no thread of its own
process supervises: its worker died. The heartbeat is written by a thread of the worker
process (never by the job's process, whose CPU work cannot starve it) and only for the
attempt it belongs to: once the job was re-queued or claimed again, the old attempt's
heartbeat stops counting, its process is stopped and its late result is ignored.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from radpacs.archive import Archive
from radpacs.archive.jobs import Job, JobState, JobStore
from radpacs.errors import RadpacsError
from radpacs.jobs.queue import HueyQueue, JobQueue, open_queue
from radpacs.jobs.registry import JobContext, JobOutcome, handler_spec, load
from radpacs.settings import Settings

__all__ = [
    "recover",
    "requeue_stale",
    "retry_delay",
    "run_attempt",
    "run_worker",
    "stale_after",
    "start_worker_process",
]

log = logging.getLogger(__name__)


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["radpacs.jobs.worker"])
    return context


def retry_delay(settings: Settings, attempt: int) -> float:
    """Seconds before the next attempt after failed attempt number ``attempt`` (1, 2, ...)."""
    return float(settings.ai_retry_delay * 2 ** max(0, attempt - 1))


def stale_after(settings: Settings) -> timedelta:
    """How old a running job's heartbeat may get before its worker counts as dead."""
    return timedelta(seconds=max(10.0, 10 * settings.ai_heartbeat_seconds))


_supervised: set[str] = set()  # ids of the jobs this process's threads are running
_supervised_lock = threading.Lock()


def _child(settings: Settings, job_id: str, attempt: int, spec: str, errors: Connection) -> None:
    try:
        with Archive.from_settings(settings) as archive:
            store = JobStore(archive.engine)
            context = JobContext(store.get(job_id), settings, archive, store)
            outcome = load(spec)(context)
            if not isinstance(outcome, JobOutcome):
                outcome = JobOutcome(outcome or {})
            store.succeed(job_id, outcome.result, outcome.output, attempt=attempt)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, RadpacsError) else traceback.format_exc(limit=8)
        try:
            errors.send(f"{type(exc).__name__}: {message}".strip())
        finally:
            raise SystemExit(1) from None


def run_attempt(
    settings: Settings, queue: JobQueue, store: JobStore, job_id: str
) -> JobState | None:
    """Claim and run one attempt of ``job_id`` in a child process; the state it ends in
    (None when the job was not queued: done, cancelled or running elsewhere)."""
    job = store.claim(job_id)
    if job is None:
        return None
    with _supervised_lock:
        _supervised.add(job.id)
    beat = _Heartbeat(store, job.id, job.attempts, settings.ai_heartbeat_seconds)
    beat.start()  # before anything slow: the job must not look dead while its process starts
    try:
        try:
            spec = handler_spec(job.kind, settings)
        except RadpacsError as exc:
            return store.fail(job.id, str(exc), retry_in=None, attempt=job.attempts).state
        return _supervise(settings, queue, store, job, spec, beat)
    finally:
        beat.stop.set()
        beat.join()
        with _supervised_lock:
            _supervised.discard(job.id)


class _Heartbeat(threading.Thread):
    """Writes the heartbeat of one attempt every ``interval`` seconds; notes a cancel, and
    that the job no longer runs this attempt (``lost``)."""

    def __init__(self, store: JobStore, job_id: str, attempt: int, interval: float) -> None:
        super().__init__(name=f"radpacs-beat-{job_id[:8]}", daemon=True)
        self.store, self.job_id, self.attempt, self.interval = store, job_id, attempt, interval
        self.stop = threading.Event()
        self.cancel = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                cancel = self.store.heartbeat(self.job_id, self.attempt)
                if cancel is None:
                    self.lost.set()
                    return
                if cancel:
                    self.cancel.set()
            except RadpacsError as exc:  # the database is away: the next beat may pass
                log.warning("cannot record the heartbeat of job %s: %s", self.job_id, exc)


def _supervise(
    settings: Settings,
    queue: JobQueue,
    store: JobStore,
    job: Job,
    spec: str,
    beat: _Heartbeat,
) -> JobState:
    context = _context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(settings, job.id, job.attempts, spec, send),
        name=f"radpacs-job-{job.id[:8]}",
        daemon=True,
    )
    try:
        process.start()
    except (OSError, EOFError) as exc:  # no process for it: a failed attempt, retried
        receive.close()
        send.close()
        return _failed(settings, queue, store, job, f"cannot start the job process: {exc}")
    send.close()
    started = time.monotonic()
    error = ""
    while True:
        process.join(settings.ai_heartbeat_seconds)
        if not process.is_alive():
            break
        if beat.cancel.is_set():
            _stop(process)
            store.mark_cancelled(job.id)
            return JobState.CANCELLED
        if beat.lost.is_set():  # no longer running this attempt: finished, or re-queued
            _stop(process)
            receive.close()
            current = store.get(job.id)
            if current.state is not JobState.SUCCEEDED or current.attempts != job.attempts:
                log.warning(
                    "%s job %s attempt %d was superseded; stopped", job.kind, job.id, job.attempts
                )
            return current.state
        if time.monotonic() - started > settings.ai_job_timeout:
            _stop(process)
            error = f"timed out after {settings.ai_job_timeout:g} s"
            break
    if not error and process.exitcode == 0:
        current = store.get(job.id)
        if current.state is JobState.SUCCEEDED:
            receive.close()
            return JobState.SUCCEEDED
        error = "the job process ended without recording a result"
    if not error:
        try:
            error = receive.recv() if receive.poll() else ""
        except (EOFError, OSError):  # the child died before it could say why
            error = ""
        error = error or f"the job process died (exit code {process.exitcode})"
    receive.close()
    return _failed(settings, queue, store, job, error)


def _failed(settings: Settings, queue: JobQueue, store: JobStore, job: Job, error: str) -> JobState:
    delay = retry_delay(settings, job.attempts)
    after = store.fail(job.id, error, retry_in=delay, attempt=job.attempts)
    log.warning(
        "%s job %s attempt %d failed: %s", job.kind, job.id, job.attempts, error.splitlines()[0]
    )
    if after.state is JobState.QUEUED:
        queue.enqueue(job.id, delay)
    return after.state


def _stop(process: Any) -> None:
    process.terminate()
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()


def requeue_stale(settings: Settings, store: JobStore, queue: JobQueue) -> list[str]:
    """Put back in the queue every running job whose heartbeat stopped and that this
    process does not run itself; their ids."""
    older = stale_after(settings)
    requeued = []
    with _supervised_lock:
        own = set(_supervised)
    for job_id in store.stale_running_ids(older):
        if job_id in own:  # alive here: a late heartbeat (a busy database), not a dead worker
            continue
        if store.requeue_stale(job_id, older):
            job = store.get(job_id)
            if job.state is JobState.QUEUED:
                queue.enqueue(job_id)
            requeued.append(job_id)
            log.warning("%s job %s lost its worker; re-queued", job.kind, job_id)
    return requeued


def recover(settings: Settings, store: JobStore, queue: JobQueue) -> int:
    """Re-enqueue queued jobs and jobs orphaned by a dead worker; how many were enqueued."""
    requeue_stale(settings, store, queue)
    ids = store.queued_ids()
    now = datetime.now(UTC)
    for job_id in ids:
        job = store.get(job_id)
        delay = (job.next_attempt_at - now).total_seconds() if job.next_attempt_at else 0.0
        queue.enqueue(job_id, max(0.0, delay))
    return len(ids)


def _sweep(settings: Settings, store: JobStore, queue: JobQueue, stop: threading.Event) -> None:
    interval = stale_after(settings).total_seconds() / 2
    while not stop.wait(interval):
        try:
            requeue_stale(settings, store, queue)
        except RadpacsError as exc:  # the database is away: try again next round
            log.warning("cannot look for jobs that lost their worker: %s", exc)


def run_worker(settings: Settings, threads: int | None = None) -> None:
    """Block: recover, then run jobs of every kind, ``threads`` at a time (each attempt in
    its own process), sweeping for jobs whose worker died."""
    logging.basicConfig(level=settings.log_level.upper())
    queue: HueyQueue = open_queue(settings)
    stop = threading.Event()
    with Archive.from_settings(settings) as archive:
        store = JobStore(archive.engine)
        try:
            recovered = recover(settings, store, queue)
            log.info(
                "job worker ready (%s queue, %d jobs re-enqueued)", settings.ai_queue, recovered
            )
            sweeper = threading.Thread(
                target=_sweep, args=(settings, store, queue, stop), name="radpacs-job-sweeper"
            )
            sweeper.daemon = True
            sweeper.start()
            queue.run_consumer(
                lambda job_id: run_attempt(settings, queue, store, job_id),
                threads or settings.ai_worker_processes,
            )
        finally:
            stop.set()


def start_worker_process(settings: Settings) -> Any:
    """An embedded worker in a new process (spawned: nothing of the server is inherited)."""
    process = multiprocessing.get_context("spawn").Process(
        target=run_worker, args=(settings,), name="radpacs-job-worker", daemon=False
    )
    process.start()
    return process
