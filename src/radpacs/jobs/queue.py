"""The job queue behind a small protocol: huey on a SQLite file (default) or on Redis.

The queue carries only job ids, of every kind; the ``job`` table holds the state.
``SqliteHuey`` keeps its file in the data folder (``ai-queue.sqlite``), so queued ids
survive a restart; with ``ai_queue: redis`` the ids live in Redis (``RedisHuey`` at
``ai_redis_url``, queue name ``ai_queue_name``). The settings keep their ``ai_`` names
from when only AI jobs were queued. Whatever the queue lost, workers re-enqueue every
queued row of the table when they start; a job runs once however often its id is
enqueued (atomic claim, :meth:`radpacs.archive.jobs.JobStore.claim`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from radpacs.errors import StorageError
from radpacs.settings import AiQueue, Settings

__all__ = ["TASK_NAME", "HueyQueue", "JobQueue", "open_queue"]

TASK_NAME = "radpacs.jobs.run"


class JobQueue(Protocol):
    """Where job ids wait for a worker."""

    def enqueue(self, job_id: str, delay: float = 0.0) -> None: ...

    def run_consumer(self, handler: Callable[[str], object], workers: int) -> None: ...

    def pending_count(self) -> int: ...


class HueyQueue:
    """A huey instance with one task, ``radpacs.jobs.run(job_id)``."""

    def __init__(self, huey: Any) -> None:
        self.huey = huey
        self._handler: Callable[[str], object] | None = None

        def run_job(job_id: str) -> None:
            if self._handler is None:  # pragma: no cover - only a consumer runs tasks
                raise RuntimeError("no handler: this process is not a worker")
            self._handler(job_id)

        self._task = huey.task(name=TASK_NAME)(run_job)

    def enqueue(self, job_id: str, delay: float = 0.0) -> None:
        """Queue ``job_id``; StorageError (HTTP 503) when the queue's store (Redis, the
        SQLite file) fails: the job's row stays queued, and a worker queues it again when
        it starts."""
        try:
            if delay > 0:
                self._task.schedule(args=(job_id,), delay=delay)
            else:
                self._task(job_id)
        except Exception as exc:  # huey raises its store's own errors (redis, sqlite3)
            raise StorageError(f"the job queue failed: {exc}") from exc

    def pending_count(self) -> int:
        return int(self.huey.pending_count()) + int(self.huey.scheduled_count())

    def run_consumer(self, handler: Callable[[str], object], workers: int) -> None:
        """Block running tasks in ``workers`` threads (each job runs in its own process)."""
        self._handler = handler
        consumer = self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.1,
            max_delay=0.5,
            scheduler_interval=1,
            check_worker_health=True,
        )
        consumer.run()


def open_queue(settings: Settings) -> HueyQueue:
    """The queue the settings name (nothing is connected until first use)."""
    if settings.ai_queue is AiQueue.REDIS:
        from huey import RedisHuey

        return HueyQueue(RedisHuey(settings.ai_queue_name, url=settings.ai_redis_url))
    from huey import SqliteHuey

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return HueyQueue(
        SqliteHuey(settings.ai_queue_name, filename=str(settings.data_dir / "ai-queue.sqlite"))
    )
