"""De-identifying a stored study as a durable background job (kind ``deid.study``).

The job itself is a row of the one job table (:mod:`radpacs.jobs`), so it survives a
restart and every process sees it with its progress. This module holds the domain part:
the job's parameters, the work (:func:`run_study`, :func:`radpacs.deid.study.store_copy`
with progress), and the job as the de-identification API shows it (:func:`public`).

Example::

    job, _ = jobs.submit(KIND, study_params(uid, options, False), study_uid=uid, total=350)
    public(jobs.get(job.id))["state"]   # 'running', then 'done' or 'failed'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from radpacs.deid.anonymizer import Anonymizer
from radpacs.deid.profile import Option
from radpacs.deid.study import StudySource, store_copy

__all__ = ["KIND", "JobView", "public", "run_study", "study_params"]

KIND = "deid.study"

_STATES = {
    "queued": "running",
    "running": "running",
    "succeeded": "done",
    "failed": "failed",
    "cancelled": "failed",
}
"""The job table's states as this API names them (running, done, failed)."""


class JobView(Protocol):
    """What :func:`public` reads of a job (a :class:`radpacs.archive.jobs.Job`)."""

    @property
    def id(self) -> str: ...
    @property
    def study_uid(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def done(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def result(self) -> dict[str, Any]: ...
    @property
    def error(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


def study_params(
    study_uid: str, options: Iterable[Option | str], pixels_checked: bool
) -> dict[str, Any]:
    """The JSON parameters of a job that stores a de-identified copy of ``study_uid``."""
    return {
        "study": study_uid,
        "options": [str(Option(option).value) for option in options],
        "pixels_checked": pixels_checked,
    }


def run_study(
    source: StudySource,
    anonymizer: Anonymizer,
    params: dict[str, Any],
    progress: Callable[[int, int], None],
) -> dict[str, Any]:
    """Store the de-identified copy the parameters ask for; the job's result."""
    copy = store_copy(
        source,
        anonymizer,
        params["study"],
        pixels_checked=bool(params.get("pixels_checked")),
        progress=progress,
    )
    return {"new_study_uid": copy.study_uid, "instances": copy.instances}


def public(job: JobView) -> dict[str, Any]:
    """The job as JSON: id, state (running, done, failed), progress and result."""
    state = _STATES[str(job.state)]
    return {
        "id": job.id,
        "state": state,
        "study_uid": job.study_uid,
        "done": job.done,
        "total": job.total,
        "new_study_uid": job.result.get("new_study_uid") if state == "done" else None,
        "error": (job.error or None) if state == "failed" else None,
    }
