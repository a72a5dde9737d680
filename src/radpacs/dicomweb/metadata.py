"""WADO-RS metadata (PS3.18 10.4.1.1.2): study, series and instance metadata as DICOM JSON.

Each instance's JSON is prepared when it is stored, so a series' metadata is a concatenation of
stored text, never a parse of its files. Bodies are cached by ETag (the resource's version and
the public root) raw and gzipped; ``If-None-Match`` answers 304. Accept
``multipart/related; type="application/dicom+xml"`` gives one PS3.19 Native DICOM Model
document per instance.

``?phi=false`` (a radpacs extension) answers the no-PHI view of
:mod:`radpacs.deid.json_view`; a no-PHI token always gets it. The two variants have
different ETags and cache entries (the variant is part of the key) and answer
``Cache-Control: private`` with ``Vary: Accept-Encoding, Authorization, Cookie``, so no
cache mixes them up.
"""

from __future__ import annotations

import hashlib
import json

from fastapi import APIRouter, Request, Response

from radpacs.cache import BodyCache
from radpacs.deid.json_view import without_phi
from radpacs.dicom.json import absolute_bulkdata_uris
from radpacs.dicomweb.negotiation import wants_xml
from radpacs.dicomweb.responses import (
    GZIP_MIN_BYTES,
    accepts_gzip,
    gzip_body,
    json_body_response,
    xml_response,
)
from radpacs.http.deps import ArchiveDep, MetadataCacheDep, dicomweb_root, phi_visible

__all__ = ["router"]

router = APIRouter(tags=["WADO-RS"])


def _metadata(
    request: Request,
    archive: ArchiveDep,
    cache: BodyCache,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    xml = wants_xml(request.headers.get("accept"))
    root = dicomweb_root(request)
    phi = phi_visible(request)
    variant = "phi" if phi else "no-phi"
    headers = {"Cache-Control": "private", "Vary": "Accept-Encoding, Authorization, Cookie"}
    version = archive.metadata_version(study, series, instance)
    key = "\n".join([study, series or "", instance or "", version, root, variant])
    etag = '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": etag, **headers})
    body = cache.get(etag)
    if body is None:
        body = absolute_bulkdata_uris(archive.metadata(study, series, instance), root)
        if not phi:
            body = json.dumps(without_phi(json.loads(body)), separators=(",", ":")).encode()
        cache.put(etag, body)
    if xml:
        response = xml_response(json.loads(body))
        response.headers.update(headers)
        return response
    gzipped = None
    if accepts_gzip(request) and len(body) >= GZIP_MIN_BYTES:
        gzipped = cache.get(etag + ":gzip")
        if gzipped is None:
            gzipped = gzip_body(body)
            cache.put(etag + ":gzip", gzipped)
    response = json_body_response(request, body, etag=etag, gzipped=gzipped)
    response.headers.update(headers)
    return response


@router.get("/studies/{study}/metadata", summary="Retrieve study metadata")
def study_metadata(
    study: str, request: Request, archive: ArchiveDep, cache: MetadataCacheDep
) -> Response:
    return _metadata(request, archive, cache, study)


@router.get("/studies/{study}/series/{series}/metadata", summary="Retrieve series metadata")
def series_metadata(
    study: str, series: str, request: Request, archive: ArchiveDep, cache: MetadataCacheDep
) -> Response:
    return _metadata(request, archive, cache, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    summary="Retrieve instance metadata",
)
def instance_metadata(
    study: str,
    series: str,
    instance: str,
    request: Request,
    archive: ArchiveDep,
    cache: MetadataCacheDep,
) -> Response:
    return _metadata(request, archive, cache, study, series, instance)
