"""DICOMweb responses: DICOM JSON (gzip, ETag, Warning) and streamed multipart/related bodies."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from radpacs.dicom.mediatypes import DICOM_JSON, DICOM_XML
from radpacs.dicom.multipart import closing_delimiter, part_head
from radpacs.dicom.xml import json_to_xml

__all__ = [
    "DicomJSONResponse",
    "accepts_gzip",
    "json_body_response",
    "multipart_response",
    "warning_header",
    "xml_response",
]

GZIP_MIN_BYTES = 1024
STREAM_CHUNK_BYTES = 1024 * 1024


class DicomJSONResponse(Response):
    """A body already serialized as DICOM JSON (PS3.18 Annex F)."""

    media_type = DICOM_JSON


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def gzip_body(body: bytes) -> bytes:
    """Fast gzip (level 1): JSON shrinks ~10x at a fraction of level 6's cost."""
    return gzip.compress(body, compresslevel=1, mtime=0)


def warning_header(text: str) -> str:
    """An RFC 7234 Warning value (299, miscellaneous persistent warning), ASCII only."""
    safe = text.encode("ascii", "replace").decode().replace('"', "'").replace("\r", " ")
    return f'299 radpacs "{safe.replace(chr(10), " ")}"'


def json_body_response(
    request: Request,
    body: bytes,
    *,
    status_code: int = 200,
    etag: str | None = None,
    gzipped: bytes | None = None,
    warnings: Iterable[str] = (),
) -> Response:
    """Serve a JSON body, gzipped when the client accepts it and it is worth it."""
    headers = {"Vary": "Accept-Encoding"}
    if etag:
        headers["ETag"] = etag
    if len(body) >= GZIP_MIN_BYTES and accepts_gzip(request):
        body = gzipped if gzipped is not None else gzip_body(body)
        headers["Content-Encoding"] = "gzip"
    response = DicomJSONResponse(body, status_code=status_code, headers=headers)
    for warning in warnings:
        response.headers.append("Warning", warning_header(warning))
    return response


def multipart_response(
    parts: Iterator[tuple[str, Iterable[bytes]]], part_type: str, status_code: int = 200
) -> StreamingResponse:
    """Stream ``(content type, chunks)`` parts as multipart/related; type=``part_type``.

    Small parts are gathered into chunks of about 1 MiB: each chunk costs a hop to a worker
    thread, and a study of 40 KiB slices would otherwise spend its time hopping.
    """
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        buffer = bytearray()
        for content_type, chunks in parts:
            buffer += part_head(boundary, content_type)
            for chunk in chunks:
                buffer += chunk
                if len(buffer) >= STREAM_CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
            buffer += b"\r\n"
        buffer += closing_delimiter(boundary)
        yield bytes(buffer)

    media_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return StreamingResponse(body(), status_code=status_code, media_type=media_type)


def xml_response(datasets: Iterable[dict[str, Any]], warnings: Iterable[str] = ()) -> Response:
    """DICOM JSON objects as multipart/related; type="application/dicom+xml" (PS3.18 8.7.4)."""
    parts = ((DICOM_XML, [json_to_xml(dataset)]) for dataset in datasets)
    response = multipart_response(iter(list(parts)), DICOM_XML)
    for warning in warnings:
        response.headers.append("Warning", warning_header(warning))
    return response
