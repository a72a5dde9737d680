"""SCU transfers (send, move, get) as jobs with progress, run in background threads.

:meth:`ScuJobs.submit` is the one entry point: it returns a :class:`ScuJob` at once and runs
the transfer on a small thread pool, updating ``done``/``total`` as instances go. Jobs live
in this process's memory (the last ``keep`` of them); a restart forgets them and does not
resume a transfer. The durable job store (issue "jobs") is meant to replace this class
behind the same ``submit``.

Example::

    jobs = ScuJobs(settings, archive)
    job = jobs.submit("send", "orthanc", study_uid="1.2.3")
    jobs.get(job.id).state  # "running", then "done" or "failed"
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from radpacs.archive import Archive
from radpacs.dimse import scu
from radpacs.dimse.nodes import NodeTable
from radpacs.errors import InvalidInput, NotFound, RadpacsError
from radpacs.settings import Settings

__all__ = ["JobKind", "JobState", "ScuJob", "ScuJobs"]

log = logging.getLogger(__name__)


class JobKind(StrEnum):
    """What an SCU job does."""

    SEND = "send"
    MOVE = "move"
    GET = "get"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class ScuJob:
    """One transfer and its progress; ``error`` is set when it failed."""

    id: str
    kind: JobKind
    node: str
    study_uid: str
    series_uid: str | None = None
    destination: str | None = None
    state: JobState = JobState.QUEUED
    done: int = 0
    total: int = 0
    completed: int = 0
    failed: int = 0
    error: str = ""
    errors: list[str] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: datetime | None = None


class ScuJobs:
    """Runs SCU transfers for one process; ``workers`` at a time."""

    def __init__(
        self, settings: Settings, archive: Archive, workers: int = 2, keep: int = 500
    ) -> None:
        self.settings = settings
        self.archive = archive
        self.nodes = NodeTable.from_settings(settings)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="radpacs-scu")
        self._jobs: OrderedDict[str, ScuJob] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def submit(
        self,
        kind: JobKind | str,
        node: str,
        study_uid: str,
        series_uid: str | None = None,
        destination: str | None = None,
    ) -> ScuJob:
        """Queue a transfer; NotFound for an unknown node, InvalidInput for a bad kind."""
        try:
            kind = JobKind(kind)
        except ValueError:
            raise InvalidInput(f"job kind {kind!r} is not send, move or get") from None
        self.nodes.get(node)
        if kind is JobKind.SEND:
            self.archive.instance_files(study_uid, series_uid)  # NotFound before queueing
        job = ScuJob(uuid.uuid4().hex, kind, node, study_uid, series_uid, destination)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> ScuJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no DICOM transfer job {job_id}")
        return job

    def list(self) -> list[ScuJob]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: ScuJob) -> None:
        node = self.nodes.get(job.node)
        job.state = JobState.RUNNING

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            if job.kind is JobKind.SEND:
                report = scu.send(
                    self.settings, node, self.archive, job.study_uid, job.series_uid, progress
                )
            elif job.kind is JobKind.MOVE:
                report = scu.move(
                    self.settings, node, job.study_uid, job.series_uid, job.destination, progress
                )
            else:
                report = scu.get(
                    self.settings, node, self.archive, job.study_uid, job.series_uid, progress
                )
        except RadpacsError as exc:
            job.state, job.error = JobState.FAILED, str(exc)
        except Exception as exc:  # a job thread must record, not lose, what went wrong
            log.exception("DICOM transfer job %s failed", job.id)
            job.state, job.error = JobState.FAILED, f"unexpected error: {exc}"
        else:
            job.completed, job.failed, job.errors = report.completed, report.failed, report.errors
            job.total = max(report.total, job.total)
            job.done = report.completed + report.failed
            job.state = JobState.FAILED if report.failed else JobState.DONE
            job.error = (
                f"{report.failed} of {report.total} instances failed" if report.failed else ""
            )
        job.finished = datetime.now(UTC)
