"""The job service of a server process: submit, show, list and cancel jobs of any kind.

Nothing here runs a job: :meth:`Jobs.submit` writes a row and enqueues its id; workers
(:mod:`radpacs.jobs.worker`) run it. The server starts one embedded worker process
(setting ``ai_embedded_worker``) when a job is submitted or pending at start.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from radpacs.archive import Archive
from radpacs.archive.jobs import Job, JobStore
from radpacs.jobs.queue import HueyQueue, open_queue
from radpacs.jobs.registry import handler_spec
from radpacs.jobs.worker import start_worker_process
from radpacs.settings import Settings

__all__ = ["Jobs"]

log = logging.getLogger(__name__)


class Jobs:
    """The one store and queue of background jobs; see :mod:`radpacs.jobs`.

    Example::

        job, created = jobs.submit("deid.study", {"study": uid}, study_uid=uid, total=350)
        jobs.get(job.id).state    # queued, running, succeeded, failed or cancelled
    """

    def __init__(self, settings: Settings, archive: Archive) -> None:
        self.settings = settings
        self.store = JobStore(archive.engine)
        self.queue: HueyQueue = open_queue(settings)
        self._worker: Any = None
        self._lock = threading.Lock()
        if self.store.queued_ids() or self.store.find(state="running", limit=1):
            self.ensure_worker()

    def submit(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        study_uid: str = "",
        label: str = "",
        total: int = 0,
        max_attempts: int | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job of ``kind`` (InvalidInput if no handler runs that kind).

        With a ``key``, the pending job of the same kind and key is answered instead of a
        new one (False). ``study_uid`` and ``label`` are what :meth:`find` filters on.
        """
        handler_spec(kind, self.settings)
        job, created = self.store.submit(
            kind,
            params,
            key=key,
            study_uid=study_uid,
            label=label,
            total=total,
            max_attempts=max_attempts or self.settings.ai_max_attempts,
        )
        if created:
            self.queue.enqueue(job.id)
        self.ensure_worker()
        return job, created

    def get(self, job_id: str, kind: str | None = None) -> Job:
        return self.store.get(job_id, kind)

    def find(self, kind: str | None = None, **filters: Any) -> list[Job]:
        return self.store.find(kind, **filters)

    def cancel(self, job_id: str, kind: str | None = None) -> Job:
        return self.store.cancel(job_id, kind)

    def ensure_worker(self) -> None:
        """Start the embedded worker process if the settings ask for one and none runs."""
        if not self.settings.ai_embedded_worker:
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = start_worker_process(self.settings)

    def close(self) -> None:
        """Stop the embedded worker (its running job is re-queued by the next worker)."""
        worker, self._worker = self._worker, None
        if worker is not None and worker.is_alive():
            worker.terminate()
            worker.join(10)
            if worker.is_alive():
                worker.kill()
                worker.join()
