"""Follow-up work as durable background jobs (:mod:`radpacs.jobs`): kinds and submitters;
the handlers are in :mod:`radpacs.followup.handlers`.

Kinds (registered in :data:`radpacs.jobs.registry.KINDS`):

- ``followup.source`` ``{"sop_uid": ...}``: read one stored SEG, RTSTRUCT or SR into the
  follow-up and re-compute its patient (:meth:`FollowupService.ingest`). The job's result
  says ``state`` (``ok``, ``refused``, ``gone``) and the ``note`` in words: a refused source
  (a SEG without frame of reference, an RTSTRUCT on an unknown series, an SR with unknown
  codes) is a job that succeeded with that note, not one retried.
- ``followup.recompute`` ``{"patient_id": ...}``: re-compute one patient (after a delete).

Jobs are keyed by SOP Instance UID or patient, so a pending job is not queued twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radpacs.archive.jobs import JobStore
    from radpacs.jobs import Jobs
    from radpacs.settings import Settings

__all__ = [
    "RECOMPUTE",
    "SOURCE",
    "Submit",
    "jobs_submitter",
    "store_submitter",
]

SOURCE = "followup.source"
RECOMPUTE = "followup.recompute"

#: submit(kind, params, key, label): queue one follow-up job.
Submit = Callable[[str, dict[str, Any], str, str], None]


def jobs_submitter(jobs: Jobs) -> Submit:
    """Queue through the server's job service (which starts its embedded worker)."""

    def submit(kind: str, params: dict[str, Any], key: str, label: str) -> None:
        jobs.submit(kind, params, key=key, label=label[:64])

    return submit


def store_submitter(settings: Settings, store: JobStore) -> Submit:
    """Queue from inside a worker (an AI job's results): a row and the queue, no new worker."""
    from radpacs.jobs.queue import open_queue

    queue = open_queue(settings)

    def submit(kind: str, params: dict[str, Any], key: str, label: str) -> None:
        job, created = store.submit(
            kind, params, key=key, label=label[:64], max_attempts=settings.ai_max_attempts
        )
        if created:
            queue.enqueue(job.id)

    return submit
