"""AI workers: processes that take job ids from the queue and run them (``radpacs worker``).

At start a worker puts back in the queue every queued job of the table (respecting its
back-off) and every running job whose heartbeat stopped (its worker died), so a restart
loses nothing. The server starts one embedded worker process (setting
``ai_embedded_worker``) when a job is submitted or pending; ``radpacs worker`` starts more.
"""

from __future__ import annotations

import logging
import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

from radpacs.ai.execute import run_attempt
from radpacs.ai.queue import HueyQueue, open_queue
from radpacs.archive import Archive
from radpacs.archive.jobs import JobStore
from radpacs.settings import Settings

__all__ = ["recover", "run_worker", "start_worker_process"]

log = logging.getLogger(__name__)


def recover(settings: Settings, queue: HueyQueue) -> int:
    """Re-enqueue queued jobs and jobs orphaned by a dead worker; how many were enqueued."""
    archive = Archive.from_settings(settings)
    store = JobStore(archive.engine)
    try:
        stale_after = timedelta(seconds=max(5.0, 5 * settings.ai_heartbeat_seconds))
        for job_id in store.stale_running_ids(stale_after):
            store.requeue_stale(job_id)
        ids = store.queued_ids()
        now = datetime.now(UTC)
        for job_id in ids:
            job = store.get(job_id)
            delay = (job.next_attempt_at - now).total_seconds() if job.next_attempt_at else 0.0
            queue.enqueue(job_id, max(0.0, delay))
        return len(ids)
    finally:
        archive.close()


def run_worker(settings: Settings, threads: int | None = None) -> None:
    """Block: recover, then run jobs, ``threads`` at a time (each in its own process)."""
    logging.basicConfig(level=settings.log_level.upper())
    queue = open_queue(settings)
    recovered = recover(settings, queue)
    log.info("AI worker ready (%s queue, %d jobs re-enqueued)", settings.ai_queue, recovered)
    queue.run_consumer(
        lambda job_id: run_attempt(settings, queue, job_id), threads or settings.ai_worker_processes
    )


def start_worker_process(settings: Settings) -> Any:
    """An embedded worker in a new process (spawned: nothing of the server is inherited)."""
    process = multiprocessing.get_context("spawn").Process(
        target=run_worker, args=(settings,), name="radpacs-ai-worker", daemon=False
    )
    process.start()
    return process
