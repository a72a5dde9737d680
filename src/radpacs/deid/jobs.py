"""In-memory background jobs for de-identifying large stored studies.

A :class:`DeidJobs` runs each job in a daemon thread of the current process and keeps
its state, progress (done/total instances) and result in a dict. Deliberately small:
jobs are **not** persisted and **not** shared between worker processes or replicas, so
a job id is only known to the process that started it and is lost when it stops; only
the last ``keep`` finished jobs are kept.

Example::

    jobs = DeidJobs()
    job = jobs.start(total=350, work=lambda progress: store_copy(..., progress=progress))
    jobs.get(job.id).state   # 'running', then 'done' (job.result) or 'failed' (job.error)
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from radpacs.deid.study import StudyCopy

__all__ = ["DeidJob", "DeidJobs", "JobState"]

log = logging.getLogger(__name__)

Work = Callable[[Callable[[int, int], None]], StudyCopy]


class JobState(StrEnum):
    """Where a job is."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class DeidJob:
    """One job: its progress and, once done, the new study (or the error)."""

    id: str
    study_uid: str
    total: int
    done: int = 0
    state: JobState = JobState.RUNNING
    result: StudyCopy | None = None
    error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def public(self) -> dict[str, Any]:
        """The job as JSON: id, state, progress and result."""
        with self._lock:
            return {
                "id": self.id,
                "state": self.state.value,
                "study_uid": self.study_uid,
                "done": self.done,
                "total": self.total,
                "new_study_uid": self.result.study_uid if self.result else None,
                "error": self.error or None,
            }


class DeidJobs:
    """Starts jobs in threads and finds them by id (per process, in memory)."""

    def __init__(self, keep: int = 100) -> None:
        self._jobs: OrderedDict[str, DeidJob] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, study_uid: str, total: int, work: Work) -> DeidJob:
        """Run ``work(progress)`` in a daemon thread; the job is returned at once."""
        job = DeidJob(uuid.uuid4().hex, study_uid, total)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()

        def progress(done: int, total: int) -> None:
            with job._lock:
                job.done, job.total = done, total

        def run() -> None:
            try:
                result = work(progress)
            except Exception as exc:
                log.warning("de-identification job %s failed: %s", job.id, exc)
                with job._lock:
                    job.state, job.error = JobState.FAILED, str(exc) or type(exc).__name__
            else:
                with job._lock:
                    job.state, job.result = JobState.DONE, result

        threading.Thread(target=run, name=f"deid-{job.id[:8]}", daemon=True).start()
        return job

    def get(self, job_id: str) -> DeidJob | None:
        """The job with ``job_id`` started by this process, or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state != JobState.RUNNING]
        for job_id in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job_id]
