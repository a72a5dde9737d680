"""Follow-up routes under /api/followup: patients, one patient's tracking, the seed's three
reads as filters, corrections, exports (CSV, JSON, DICOM SR). See docs/followup.md.

- ``GET /api/followup/patients?search=&offset=&limit=``: patients with their number of
  timepoints, lesions and latest RECIST category;
- ``GET /api/followup/patients/{patient_id}``: timepoints, lesions with their measurements
  per timepoint, responses per timepoint, sources with their notes, corrections;
- ``GET /api/followup/studies?patient_id=``, ``GET /api/followup/lesions?study_uid=``;
- ``GET /api/followup/sources/{sop_uid}``: how one stored object fed it (state, note);
- ``POST /api/followup/patients/{patient_id}/corrections`` (``{"kind": ..., ...}``),
  ``PATCH /api/followup/patients/{patient_id}/lesions/{uid}`` (``label``, ``role``),
  ``DELETE /api/followup/patients/{patient_id}/corrections/{id}`` (withdraw);
- ``GET /api/followup/patients/{patient_id}/export?format=csv|json``;
- ``POST /api/followup/patients/{patient_id}/sr``: store the TID 1500 report.

Routes are plain ``def``: the work (re-computation, SR building) runs in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from radpacs.auth.roles import Principal
from radpacs.errors import NotFound
from radpacs.followup.export import rows, to_csv
from radpacs.http.audit import note_audit
from radpacs.http.deps import FollowupDep, PrincipalDep

__all__ = ["router"]

router = APIRouter(prefix="/api/followup", tags=["followup"])


class CorrectionRequest(BaseModel):
    """A correction; lesions by tracking UID, findings by key (see docs/followup.md)."""

    kind: Literal["rename", "merge", "split", "reassign", "role", "exclude"]
    lesion: str | None = Field(
        default=None, description="lesion UID (rename, merge, role, reassign)"
    )
    other: str | None = Field(default=None, description="lesion UID merged into 'lesion'")
    finding: str | None = Field(default=None, description="finding key (reassign, exclude)")
    at: str | None = Field(default=None, description="finding key where a split starts")
    label: str | None = Field(default=None, max_length=64)
    role: Literal["target", "non-target", "new"] | None = None


class LesionPatch(BaseModel):
    label: str | None = Field(default=None, min_length=1, max_length=64)
    role: Literal["target", "non-target", "new"] | None = None


def _user(principal: Principal) -> str:
    return principal.username or "anonymous"


@router.get("/patients")
def list_patients(
    followup: FollowupDep,
    search: Annotated[str, Query(max_length=64)] = "",
    offset: Annotated[int, Query(ge=0, le=2**53, description="at most 2^53")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Patients with a follow-up (Patient ID or name containing ``search``), one page."""
    patients, total = followup.store.patients(search, offset, limit)
    return {"patients": patients, "total": total, "offset": offset, "limit": limit}


@router.get("/patients/{patient_id}")
def show_patient(patient_id: str, followup: FollowupDep, request: Request) -> dict[str, Any]:
    """The patient's timepoints, lesions, measurements, responses, sources and corrections."""
    note_audit(request, detail=f"patient {patient_id}")
    return followup.result(patient_id)


@router.get("/studies")
def studies_of_patient(
    followup: FollowupDep, request: Request, patient_id: Annotated[str, Query(min_length=1)]
) -> dict[str, Any]:
    """The patient's studies in the follow-up, with visit number and date."""
    note_audit(request, detail=f"patient {patient_id}")
    return {"patient_id": patient_id, "studies": followup.store.studies(patient_id)}


@router.get("/lesions")
def lesions_of_study(
    followup: FollowupDep, request: Request, study_uid: Annotated[str, Query(min_length=1)]
) -> dict[str, Any]:
    """Lesions measured (or found gone) in one study ("metastases of a study")."""
    note_audit(request, study_uid=study_uid)
    return {"study_uid": study_uid, "lesions": followup.store.lesions_of_study(study_uid)}


@router.get("/sources/{sop_uid}")
def show_source(sop_uid: str, followup: FollowupDep, request: Request) -> dict[str, Any]:
    """How a stored SEG, RTSTRUCT or SR fed the follow-up: ``state`` ok or refused, and the
    ``note`` (what was skipped, or why nothing was used); 404 while not read yet."""
    note_audit(request, sop_uid=sop_uid)
    source = followup.store.source(sop_uid)
    if source is None:
        raise NotFound(f"instance {sop_uid} has not fed the follow-up (yet)")
    return dict(source)


@router.post("/patients/{patient_id}/corrections", status_code=201)
def add_correction(
    patient_id: str,
    body: CorrectionRequest,
    followup: FollowupDep,
    principal: PrincipalDep,
    request: Request,
) -> dict[str, Any]:
    """Record a correction, re-compute, answer the correction and the new result."""
    payload = {k: v for k, v in body.model_dump(exclude={"kind"}).items() if v is not None}
    note_audit(request, detail=f"patient {patient_id} {body.kind} {payload}"[:400])
    correction = followup.correct(patient_id, body.kind, payload, _user(principal))
    return {"correction": correction, "result": followup.result(patient_id)}


@router.patch("/patients/{patient_id}/lesions/{uid}")
def patch_lesion(
    patient_id: str,
    uid: str,
    body: LesionPatch,
    followup: FollowupDep,
    principal: PrincipalDep,
    request: Request,
) -> dict[str, Any]:
    """Rename a lesion and/or set its role (each one correction)."""
    note_audit(request, detail=f"patient {patient_id} lesion {uid} {body.model_dump()}"[:400])
    made = []
    if body.label is not None:
        made.append(
            followup.correct(
                patient_id, "rename", {"lesion": uid, "label": body.label}, _user(principal)
            )
        )
    if body.role is not None:
        made.append(
            followup.correct(
                patient_id, "role", {"lesion": uid, "role": body.role}, _user(principal)
            )
        )
    return {"corrections": made, "result": followup.result(patient_id)}


@router.delete("/patients/{patient_id}/corrections/{correction_id}")
def withdraw_correction(
    patient_id: str,
    correction_id: Annotated[int, Path(ge=1, le=2**53, description="at most 2^53")],
    followup: FollowupDep,
    principal: PrincipalDep,
    request: Request,
) -> dict[str, Any]:
    """Withdraw a correction (it stays in the table with who withdrew it) and re-compute."""
    note_audit(request, detail=f"patient {patient_id} correction {correction_id}")
    followup.withdraw(patient_id, correction_id, _user(principal))
    return followup.result(patient_id)


@router.get("/patients/{patient_id}/export", response_model=None)
def export(
    patient_id: str,
    followup: FollowupDep,
    request: Request,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
) -> Response | dict[str, Any]:
    """One row per lesion per timepoint, as CSV (a download) or JSON."""
    note_audit(request, detail=f"patient {patient_id} {format}")
    result = followup.store.result(patient_id)
    if format == "json":
        return {"patient_id": patient_id, "rows": rows(result)}
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in patient_id)
    return Response(
        to_csv(result),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="followup-{safe}.csv"'},
    )


@router.post("/patients/{patient_id}/sr", status_code=201)
def store_sr(patient_id: str, followup: FollowupDep, request: Request) -> dict[str, Any]:
    """Store the follow-up as a TID 1500 SR in the patient's latest study."""
    stored = followup.export_sr(patient_id)
    note_audit(request, study_uid=stored["study_uid"], sop_uid=stored["sop_uid"])
    return stored
