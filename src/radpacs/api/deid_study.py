"""De-identifying stored studies and looking up pseudonyms (PS3.15 Annex E), under /api/deid.

- ``POST /api/deid/studies/{study}``: the study de-identified by the Basic Profile and
  the Options in the JSON body; ``output`` "store" (default) stores the copy as a new
  study and answers its Study Instance UID, "zip" answers the files as application/zip.
  A study of more than ``deid_job_threshold`` instances is stored by a background job:
  202 with the job, whose state and progress ``GET /api/deid/jobs/{job_id}`` gives;
  ``GET /api/deid/jobs`` lists them (``study``, ``limit``, ``offset``).
  Jobs are rows of the one job table (:mod:`radpacs.jobs`): they survive a restart and
  any server process sharing the index answers for them.
- ``GET /api/deid/pseudonyms/{pseudonym}``: the original patient behind a pseudonym
  (administrators only; the policy table enforces it and audits the look-up).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from radpacs.api.deid import anonymizer_for
from radpacs.deid import Option
from radpacs.deid import jobs as deid_jobs
from radpacs.deid.study import store_copy, write_zip
from radpacs.errors import InvalidInput, NotFound
from radpacs.http.deps import ArchiveDep, JobsDep, PseudonymStoreDep, SettingsDep

__all__ = ["DeidStudyRequest", "router"]

router = APIRouter(prefix="/api/deid", tags=["deid"])

_ZIP_IN_MEMORY = 64 * 1024 * 1024  # larger zips spill to a temporary file
_CHUNK = 1024 * 1024


class DeidStudyRequest(BaseModel):
    """The JSON body of POST /api/deid/studies/{study}; every field is optional."""

    options: list[Option] = Field(default_factory=list, description="Option values")
    output: Literal["store", "zip"] = "store"
    pixels_checked: bool = False


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := handle.read(_CHUNK):
            yield chunk
    finally:
        handle.close()


@router.post(
    "/studies/{study}",
    responses={
        200: {"content": {"application/zip": {}}, "description": "the new study, or the zip"},
        202: {"description": "a job stores the new study; poll GET /api/deid/jobs/{job_id}"},
    },
)
def deidentify_study(
    study: str,
    archive: ArchiveDep,
    settings: SettingsDep,
    store: PseudonymStoreDep,
    jobs: JobsDep,
    body: Annotated[DeidStudyRequest | None, Body()] = None,
) -> Response:
    """De-identify a stored study into a new study (``output`` store) or a zip."""
    body = body or DeidStudyRequest()
    anonymizer = anonymizer_for(settings, store, body.options)
    if body.output == "zip":
        spool = tempfile.SpooledTemporaryFile(max_size=_ZIP_IN_MEMORY)  # noqa: SIM115
        try:
            write_zip(archive, anonymizer, study, spool, pixels_checked=body.pixels_checked)
        except BaseException:
            spool.close()
            raise
        return StreamingResponse(
            _chunks(spool),
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="deidentified.zip"'},
        )
    if Option.RETAIN_UIDS in anonymizer.profile.options:
        raise InvalidInput("retain_uids cannot be used to store a copy: the UIDs would collide")
    total = len(archive.instance_files(study))
    if total > settings.deid_job_threshold:
        params = deid_jobs.study_params(study, body.options, body.pixels_checked)
        job, _ = jobs.submit(deid_jobs.KIND, params, study_uid=study, total=total)
        return JSONResponse(
            {**deid_jobs.public(job), "job_url": f"/api/deid/jobs/{job.id}"}, status_code=202
        )
    copy = store_copy(archive, anonymizer, study, pixels_checked=body.pixels_checked)
    return JSONResponse(
        {"study_uid": study, "new_study_uid": copy.study_uid, "instances": copy.instances}
    )


@router.get("/jobs")
def deid_jobs_list(
    jobs: JobsDep,
    study: Annotated[str | None, Query(description="original Study Instance UID")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**53, description="at most 2^53")] = 0,
) -> dict[str, object]:
    """The de-identification jobs, newest first, with state and progress (any process's)."""
    found = jobs.find(deid_jobs.KIND, study_uid=study, limit=limit, offset=offset)
    return {"jobs": [deid_jobs.public(job) for job in found]}


@router.get("/jobs/{job_id}")
def deid_job(job_id: str, jobs: JobsDep) -> dict[str, object]:
    """State (running, done, failed), progress (done/total) and result of a job."""
    try:
        job = jobs.get(job_id, deid_jobs.KIND)
    except NotFound as exc:
        raise NotFound(f"no de-identification job {job_id}") from exc
    return deid_jobs.public(job)


@router.get("/pseudonyms/{pseudonym}")
def lookup_pseudonym(pseudonym: str, store: PseudonymStoreDep) -> dict[str, str]:
    """The original Patient ID, Patient's Name and issuer behind a patient pseudonym."""
    record = store.lookup(pseudonym)
    if record is None:
        raise NotFound(f"no patient pseudonym {pseudonym}")
    return {
        "pseudonym": record.pseudonym,
        "patient_id": record.original_patient_id,
        "patient_name": record.original_patient_name,
        "issuer_of_patient_id": record.issuer_of_patient_id,
    }
