"""The radiotherapy workshop API: enrol with an IDUL, list and download named datasets.

Together with GET /api, POST /api/auth, POST /api/anonymize and the DVH routes this is
the whole flow of the workshop notebook, with ``URL = "http://HOST:PORT/api"``:

- POST /api/account, form field ``idul``: a password-less reader account (201; 409 if it
  exists; 400 if the IDUL is not a valid name; 403 unless the server runs with
  ``--open-enrolment``).
- GET /api/data?token=...: the dataset names, a JSON list.
- GET /api/data/{name}?token=...: the DICOM file (application/dicom).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from radpacs.api.accounts import read_fields
from radpacs.auth.roles import Role
from radpacs.auth.usernames import check_username
from radpacs.errors import InvalidInput, NotFound, PermissionDenied
from radpacs.http.audit import note_audit
from radpacs.http.deps import ArchiveDep, AuthServicesDep

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["workshop"])


@router.post("/account", status_code=201, summary="Enrol with an IDUL (open enrolment only)")
async def enrol(request: Request, services: AuthServicesDep) -> dict[str, object]:
    """Create a password-less reader account named by the form field ``idul``."""
    if not services.settings.open_enrolment:
        raise PermissionDenied("enrolment is closed; ask an administrator for an account")
    fields = await read_fields(request)
    try:
        idul = check_username(fields.get("idul", ""))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    note_audit(request, username=idul)
    account = await run_in_threadpool(services.accounts.add, idul, Role.READER, None, True)
    return {"idul": account.username, "role": account.role.value, "message": "account created"}


@router.get("/data", summary="Names of the datasets")
def list_data(services: AuthServicesDep) -> list[str]:
    return services.names.names()


@router.get(
    "/data/{name}",
    response_class=Response,
    responses={200: {"content": {"application/dicom": {}}, "description": "the DICOM file"}},
    summary="Download a dataset",
)
def get_data(
    name: str, request: Request, archive: ArchiveDep, services: AuthServicesDep
) -> Response:
    """The DICOM file a dataset name points to."""
    target = services.names.resolve(name)
    note_audit(
        request,
        study_uid=target.study_uid,
        series_uid=target.series_uid,
        sop_uid=target.sop_uid,
        detail=f"dataset {name}",
    )
    files = archive.instance_files(target.study_uid, target.series_uid, target.sop_uid)
    if not files:
        raise NotFound(f"dataset {name!r} points to an instance that is no longer stored")
    with archive.open(files[0]) as stream:
        body = stream.read()
    return Response(
        body,
        media_type="application/dicom",
        headers={"Content-Disposition": f'attachment; filename="{name}.dcm"'},
    )
