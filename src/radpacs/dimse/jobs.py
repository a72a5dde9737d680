"""SCU transfers (send, move, get) as durable jobs of the one job store (:mod:`radpacs.jobs`).

:func:`submit_transfer` checks the request and queues a job of kind ``dimse.send``,
``dimse.move`` or ``dimse.get`` (label ``dimse``); a job worker runs :func:`run_transfer`,
which reports progress instance by instance. Jobs survive a restart and every process
sharing the index sees them. A transfer that completed nothing and met errors fails (and is
retried up to its attempts); one with some failed instances succeeds with the failures in
its result. With ``redis_url`` a C-GET job records what it stores in the shared arrival books,
so the server's arrival rules trigger on it as on a STOW-RS; its result names the series
it stored (``series``), which the server's watchers read without Redis
(:class:`radpacs.ai.triggers.JobSeriesFeed`).

Example::

    job = submit_transfer(services.jobs, archive, settings, "send", "orthanc", "1.2.3")
    services.jobs.get(job.id).state   # queued, running, succeeded or failed
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from radpacs.ai.triggers import shared_arrivals
from radpacs.archive import Archive
from radpacs.archive.jobs import Job
from radpacs.dimse import scu
from radpacs.dimse.nodes import NodeTable
from radpacs.errors import InvalidInput, NotFound, RemoteNodeError
from radpacs.jobs import JobContext, Jobs
from radpacs.settings import Settings
from radpacs.shared import connect

__all__ = ["LABEL", "TransferKind", "dimse_job", "run_transfer", "submit_transfer"]

LABEL = "dimse"


class TransferKind(StrEnum):
    """What an SCU job does."""

    SEND = "send"
    MOVE = "move"
    GET = "get"

    @property
    def job_kind(self) -> str:
        return f"dimse.{self.value}"


def submit_transfer(
    jobs: Jobs,
    archive: Archive,
    settings: Settings,
    kind: TransferKind | str,
    node: str,
    study_uid: str,
    series_uid: str | None = None,
    destination: str | None = None,
) -> Job:
    """Queue a transfer; NotFound for an unknown node (or, to send, an unknown study)."""
    try:
        kind = TransferKind(kind)
    except ValueError:
        raise InvalidInput(f"transfer {kind!r} is not send, move or get") from None
    NodeTable.from_settings(settings).get(node)
    total = 0
    if kind is TransferKind.SEND:
        total = len(archive.instance_files(study_uid, series_uid))
    params = {"node": node, "study": study_uid, "series": series_uid, "destination": destination}
    job, _ = jobs.submit(
        kind.job_kind, params, study_uid=study_uid, label=LABEL, total=total, max_attempts=2
    )
    return job


def dimse_job(jobs: Jobs, job_id: str) -> Job:
    """A DIMSE transfer job; NotFound for another kind's id."""
    job = jobs.get(job_id)
    if job.label != LABEL:
        raise NotFound(f"no DICOM transfer job {job_id}")
    return job


def run_transfer(ctx: JobContext) -> dict[str, Any]:
    """The handler of ``dimse.send``, ``dimse.move`` and ``dimse.get`` jobs."""
    params = ctx.params
    kind = TransferKind(ctx.job.kind.removeprefix("dimse."))
    node = NodeTable.from_settings(ctx.settings).get(params["node"])
    study, series = params["study"], params.get("series")
    received: set[tuple[str, str]] = set()  # the series a C-GET stored
    if kind is TransferKind.SEND:
        report = scu.send(ctx.settings, node, ctx.archive, study, series, ctx.progress)
    elif kind is TransferKind.MOVE:
        report = scu.move(
            ctx.settings, node, study, series, params.get("destination"), ctx.progress
        )
    else:
        if ctx.settings.redis_url:  # the server's arrival rules hear what this job stores
            ctx.archive.add_listener(shared_arrivals(connect(ctx.settings.redis_url)))
        ctx.archive.add_listener(  # and, without Redis, read it in the result (JobSeriesFeed)
            lambda results: received.update((r.study_uid, r.series_uid) for r in results)
        )
        report = scu.get(ctx.settings, node, ctx.archive, study, series, ctx.progress)
    if report.errors and not report.completed:
        raise RemoteNodeError(node.ae_title, "; ".join(report.errors[:5]))
    return {
        "total": report.total,
        "completed": report.completed,
        "failed": report.failed,
        "warnings": report.warnings,
        "errors": report.errors[:50],
        "series": [list(key) for key in sorted(received)],
    }
