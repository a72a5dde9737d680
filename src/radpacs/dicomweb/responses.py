"""DICOMweb responses: DICOM JSON (gzip, ETag, Warning) and streamed multipart/related bodies."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
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
    "streamed",
    "warning_header",
    "xml_response",
]

GZIP_MIN_BYTES = 1024
STREAM_CHUNK_BYTES = 4 * 1024 * 1024


class DicomJSONResponse(Response):
    """A body already serialized as DICOM JSON (PS3.18 Annex F)."""

    media_type = DICOM_JSON


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def gzip_body(body: bytes) -> bytes:
    """Fast gzip (level 1): JSON shrinks ~10x at a fraction of level 6's cost."""
    return gzip.compress(body, compresslevel=1, mtime=0)


def warning_header(text: str) -> str:
    """An RFC 7234 5.5 Warning value (299, miscellaneous persistent warning) whose text is a
    quoted-string of printable ASCII: whitespace folded, other characters as ``\\xNN`` (or
    ``\\uNNNN``), quotes and backslashes escaped, so a reason built from a request (a path
    may carry anything) never makes an invalid header."""
    safe = " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")
    safe = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in safe)
    safe = safe.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 radpacs "{safe}"'


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


def streamed(
    chunks: Iterator[bytes],
    media_type: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A response with the body ``chunks``, whose first two chunks are read at once.

    Called from a worker thread (a sync endpoint), this reads them there: a body of one chunk
    is answered as a plain response, without the hop to a worker thread that streaming costs
    for each chunk, and an error while reading them is an error response rather than a body
    cut short. Longer bodies stream, the chunks already read first.
    """
    first = next(chunks, b"")
    rest = next(chunks, None)
    if rest is None:  # Response sets the Content-Length from the body itself
        kept = {k: v for k, v in (headers or {}).items() if k.lower() != "content-length"}
        return Response(first, status_code=status_code, media_type=media_type, headers=kept)
    body = chain([first, rest], chunks)
    return StreamingResponse(body, status_code=status_code, media_type=media_type, headers=headers)


def multipart_response(
    parts: Iterator[tuple[str, Iterable[bytes]]],
    part_type: str,
    status_code: int = 200,
    *,
    sizes: Sequence[tuple[str, int]] | None = None,
) -> Response:
    """``(content type, chunks)`` parts as multipart/related; type=``part_type``.

    Small parts are gathered into chunks of about 4 MiB, as each streamed chunk costs a hop to
    a worker thread; a body that fits in one is sent whole (see :func:`streamed`). When
    ``sizes`` gives every part's (content type, byte count) up front, a streamed response
    carries a Content-Length, which spares chunked encoding (a copy of every chunk).
    """
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        pending: list[bytes] = []
        size = 0
        for content_type, chunks in parts:
            pending.append(part_head(boundary, content_type))
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= STREAM_CHUNK_BYTES:
                    yield b"".join(pending)
                    pending, size = [], 0
            pending.append(b"\r\n")
        pending.append(closing_delimiter(boundary))
        yield b"".join(pending)

    media_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    headers = None
    if sizes is not None:
        length = len(closing_delimiter(boundary)) + sum(
            len(part_head(boundary, content_type)) + size + 2 for content_type, size in sizes
        )
        headers = {"Content-Length": str(length)}
    return streamed(body(), media_type, status_code, headers)


def xml_response(datasets: Iterable[dict[str, Any]], warnings: Iterable[str] = ()) -> Response:
    """DICOM JSON objects as multipart/related; type="application/dicom+xml" (PS3.18 8.7.4)."""
    parts = ((DICOM_XML, [json_to_xml(dataset)]) for dataset in datasets)
    response = multipart_response(iter(list(parts)), DICOM_XML)
    for warning in warnings:
        response.headers.append("Warning", warning_header(warning))
    return response
