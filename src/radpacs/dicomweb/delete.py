"""DELETE of a study, series or instance: index rows, then files. 204 when done, 404 if absent."""

from __future__ import annotations

from fastapi import APIRouter, Response

from radpacs.http.deps import ArchiveDep

__all__ = ["router"]

router = APIRouter(tags=["Delete"])


@router.delete("/studies/{study}", status_code=204, summary="Delete a study")
def delete_study(study: str, archive: ArchiveDep) -> Response:
    archive.delete(study)
    return Response(status_code=204)


@router.delete("/studies/{study}/series/{series}", status_code=204, summary="Delete a series")
def delete_series(study: str, series: str, archive: ArchiveDep) -> Response:
    archive.delete(study, series)
    return Response(status_code=204)


@router.delete(
    "/studies/{study}/series/{series}/instances/{instance}",
    status_code=204,
    summary="Delete an instance",
)
def delete_instance(study: str, series: str, instance: str, archive: ArchiveDep) -> Response:
    archive.delete(study, series, instance)
    return Response(status_code=204)
