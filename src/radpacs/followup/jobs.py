"""Follow-up work as durable background jobs (:mod:`radpacs.jobs`): kinds and submitters;
the handlers are in :mod:`radpacs.followup.handlers`.

Kinds (registered in :data:`radpacs.jobs.registry.KINDS`):

- ``followup.study`` ``{"study_uid": ...}``: read every SEG, RTSTRUCT and SR of a study
  not read yet (or changed since) into the follow-up, then re-compute their patients once
  (:meth:`FollowupService.ingest_study`). The job's result lists each source with its
  ``state`` (``ok``, ``refused``, ``skipped``) and ``note`` in words: a refused source (a SEG
  without frame of reference, an RTSTRUCT on an unknown series, an SR with unknown codes)
  makes a job that succeeded with that note, not one retried.
- ``followup.recompute`` ``{"patient_id": ...}``: re-compute one patient (after a delete).

A study's objects usually arrive in bursts (a STOW of a SEG series, an AI job's SEG,
RTSTRUCT and SR): one job per study reads them all, so a burst costs one job, not one per
object. Jobs are keyed by study (or patient); a store that finds the study's job already
running queues the next one (key ``<study>:1``, ...), so nothing stored during a run is
missed.
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
    "STUDY",
    "Submit",
    "jobs_submitter",
    "store_submitter",
]

STUDY = "followup.study"
RECOMPUTE = "followup.recompute"

#: submit(kind, params, key, label) -> True when a job that has not started yet (a new one,
#: or a queued one with that key) will do the work; False when the job with that key runs.
Submit = Callable[[str, dict[str, Any], str, str], bool]


def jobs_submitter(jobs: Jobs) -> Submit:
    """Queue through the server's job service (which starts its embedded worker)."""

    def submit(kind: str, params: dict[str, Any], key: str, label: str) -> bool:
        job, created = jobs.submit(kind, params, key=key, label=label[:64])
        return created or job.state.value == "queued"

    return submit


def store_submitter(settings: Settings, store: JobStore) -> Submit:
    """Queue from inside a worker (an AI job's results): a row and the queue, no new worker."""
    from radpacs.jobs.queue import open_queue

    queue = open_queue(settings)

    def submit(kind: str, params: dict[str, Any], key: str, label: str) -> bool:
        job, created = store.submit(
            kind, params, key=key, label=label[:64], max_attempts=settings.ai_max_attempts
        )
        if created:
            queue.enqueue(job.id)
        return created or job.state.value == "queued"

    return submit
