"""Quality-control status per instance over REST (the DPAT client's ``set_quality_control``).

- ``PUT /api/instances/{sop_uid}/qc`` with ``{"status": "passed"|"failed"|"pending",
  "comment": "..."}``: set it (audited as ``qc-set``, with the account that set it);
- ``GET /api/instances/{sop_uid}/qc``: read it (``pending`` when never set);
- ``GET /api/qc?status=failed&study=UID``: the statuses that were set, newest first;
- ``GET /api/qc/studies?study=UID&study=UID2``: per study, how many instances have each
  status (the study list's column).

An instance that is not stored is 404. Statuses are kept in :mod:`radpacs.archive.quality`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from radpacs.archive.quality import QcStatus, QualityControlStore
from radpacs.http.audit import note_audit
from radpacs.http.deps import ArchiveDep, PrincipalDep

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["quality control"])


class QcBody(BaseModel):
    """A status to set: ``passed``, ``failed`` or ``pending``, and an optional comment."""

    status: str
    comment: str = ""


@router.put("/instances/{sop_uid}/qc")
async def set_qc(
    sop_uid: str, body: QcBody, request: Request, archive: ArchiveDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Set the instance's quality-control status; 400 names an unknown status."""
    status = QcStatus.parse(body.status)
    study, series = await run_in_threadpool(archive.locate, None, sop_uid)
    note_audit(request, study_uid=study, series_uid=series, detail=status.value)
    record = await run_in_threadpool(
        QualityControlStore(archive.engine).set,
        study,
        series,
        sop_uid,
        status,
        body.comment,
        principal.username,
    )
    return record.as_dict()


@router.get("/instances/{sop_uid}/qc")
async def get_qc(sop_uid: str, archive: ArchiveDep) -> dict[str, Any]:
    """The instance's quality-control status (``pending`` when never set)."""
    study, series = await run_in_threadpool(archive.locate, None, sop_uid)
    record = await run_in_threadpool(
        QualityControlStore(archive.engine).get, study, series, sop_uid
    )
    return record.as_dict()


@router.get("/qc")
async def list_qc(
    archive: ArchiveDep,
    request_status: str | None = Query(None, alias="status"),
    study: str | None = None,
    limit: int = Query(1000, ge=1, le=10000),
) -> list[dict[str, Any]]:
    """Statuses that were set, filtered by ``status`` and ``study``, newest first."""
    status = QcStatus.parse(request_status) if request_status else None
    records = await run_in_threadpool(
        QualityControlStore(archive.engine).search, status, study, limit
    )
    return [record.as_dict() for record in records]


@router.get("/qc/studies")
async def study_summary(
    archive: ArchiveDep, study: list[str] = Query(default_factory=list)
) -> dict[str, dict[str, int]]:
    """For each named study that has statuses set: instance counts by status."""
    return await run_in_threadpool(QualityControlStore(archive.engine).summary, study)
