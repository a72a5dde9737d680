"""Series and instances named by their UID alone, without the study (and series) above them.

``/series/{series}`` and ``/instances/{instance}``, with ``/metadata``, ``/rendered``,
``/thumbnail`` and ``/frames/{frames}`` (and its ``/rendered``), answer exactly as the same
resource under ``/studies/{study}/series/{series}/...`` does. Series and SOP Instance UIDs are
globally unique (PS3.5 9), so the parents are looked up in the index. These paths go beyond
PS3.18, which names resources by their whole hierarchy; several viewers and test suites use
them (docs/dicomweb.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from radpacs.dicomweb import metadata, rendered, wado
from radpacs.http.deps import ArchiveDep, MetadataCacheDep

__all__ = ["router"]

router = APIRouter(tags=["WADO-RS beyond the standard"])


@router.get("/series/{series}", summary="Retrieve a series by its UID alone")
def retrieve_series(series: str, request: Request, archive: ArchiveDep) -> Response:
    study, _ = archive.locate(series_uid=series)
    return wado.retrieve_series(study, series, request, archive)


@router.get("/series/{series}/metadata", summary="Retrieve series metadata by its UID alone")
def series_metadata(
    series: str, request: Request, archive: ArchiveDep, cache: MetadataCacheDep
) -> Response:
    study, _ = archive.locate(series_uid=series)
    return metadata.series_metadata(study, series, request, archive, cache)


@router.get("/series/{series}/rendered", summary="Retrieve a rendered series by its UID alone")
def rendered_series(series: str, request: Request, archive: ArchiveDep) -> Response:
    study, _ = archive.locate(series_uid=series)
    return rendered.rendered_series(study, series, request, archive)


@router.get("/series/{series}/thumbnail", summary="A series thumbnail by its UID alone")
def thumbnail_series(series: str, request: Request, archive: ArchiveDep) -> Response:
    study, _ = archive.locate(series_uid=series)
    return rendered.thumbnail_series(study, series, request, archive)


@router.get("/instances/{instance}", summary="Retrieve an instance by its UID alone")
def retrieve_instance(instance: str, request: Request, archive: ArchiveDep) -> Response:
    study, series = archive.locate(sop_uid=instance)
    return wado.retrieve_instance(study, series, instance, request, archive)


@router.get("/instances/{instance}/metadata", summary="Instance metadata by its UID alone")
def instance_metadata(
    instance: str, request: Request, archive: ArchiveDep, cache: MetadataCacheDep
) -> Response:
    study, series = archive.locate(sop_uid=instance)
    return metadata.instance_metadata(study, series, instance, request, archive, cache)


@router.get("/instances/{instance}/frames/{frames}", summary="Frames of an instance by its UID")
def retrieve_frames(instance: str, frames: str, request: Request, archive: ArchiveDep) -> Response:
    study, series = archive.locate(sop_uid=instance)
    return wado.retrieve_frames(study, series, instance, frames, request, archive)


@router.get("/instances/{instance}/rendered", summary="A rendered instance by its UID alone")
def rendered_instance(instance: str, request: Request, archive: ArchiveDep) -> Response:
    study, series = archive.locate(sop_uid=instance)
    return rendered.rendered_instance(study, series, instance, request, archive)


@router.get(
    "/instances/{instance}/frames/{frames}/rendered",
    summary="Rendered frames of an instance by its UID alone",
)
def rendered_frames(instance: str, frames: str, request: Request, archive: ArchiveDep) -> Response:
    study, series = archive.locate(sop_uid=instance)
    return rendered.rendered_frames(study, series, instance, frames, request, archive)


@router.get("/instances/{instance}/thumbnail", summary="An instance thumbnail by its UID alone")
def thumbnail_instance(instance: str, request: Request, archive: ArchiveDep) -> Response:
    study, series = archive.locate(sop_uid=instance)
    return rendered.thumbnail_instance(study, series, instance, request, archive)
