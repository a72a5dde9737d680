"""The modality worklist over REST: add, list and remove scheduled procedure steps.

- ``POST /api/worklist``: add an item (JSON, see :class:`WorklistBody`); 201 with the item;
- ``GET /api/worklist``: items, optionally matched by DICOM keywords as query parameters
  (``?Modality=CT&ScheduledProcedureStepStartDate=20261202-``), QIDO-RS rules;
- ``DELETE /api/worklist/{item_id}``: remove an item (204).

Modalities query the same items with Modality Worklist C-FIND (docs/dimse.md).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from radpacs.archive.worklist import WorklistItem, WorklistStore
from radpacs.http.deps import ArchiveDep

__all__ = ["router"]

router = APIRouter(prefix="/api/worklist", tags=["worklist"])


class WorklistBody(BaseModel):
    """One scheduled procedure step; ``study_uid`` and the IDs are generated when absent."""

    patient_id: str
    modality: str
    scheduled_date: str
    scheduled_time: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    study_uid: str = ""
    requested_procedure_id: str = ""
    requested_procedure_description: str = ""
    referring_physician: str = ""
    station_ae_title: str = ""
    step_id: str = ""
    step_description: str = ""


@router.post("", status_code=201)
async def add_item(body: WorklistBody, archive: ArchiveDep) -> dict[str, Any]:
    """Add a scheduled procedure step; 400 names a malformed field."""
    store = WorklistStore(archive.engine)
    item = await run_in_threadpool(store.add, WorklistItem(**body.model_dump()))
    return item.as_dict()


@router.get("")
async def list_items(request: Request, archive: ArchiveDep) -> list[dict[str, Any]]:
    """Items by scheduled date and time, matched by the query parameters."""
    store = WorklistStore(archive.engine)
    keys = dict(request.query_params)
    return [item.as_dict() for item in await run_in_threadpool(store.items, keys)]


@router.delete("/{item_id}", status_code=204)
async def remove_item(item_id: str, archive: ArchiveDep) -> Response:
    """Remove an item (done or cancelled); 404 if unknown."""
    await run_in_threadpool(WorklistStore(archive.engine).remove, item_id)
    return Response(status_code=204)
