"""WADO-RS retrieve (PS3.18 10.4): instances, frames and bulk data.

Instances stream from their files as multipart/related; type="application/dicom", as stored
unless another transfer syntax is asked for and can be produced (else 406, decided before the
first byte is sent). Frames come as stored bitstreams (``transfer-syntax=*``) or decoded to
native little endian. Bulk data honours ``Range``.

Without PHI (a no-PHI token, or ``?phi=false``) whole instances are refused (403: a file
carries the patient's identity; ask for ``/metadata?phi=false`` and frames instead), and so
is bulk data of an attribute the no-PHI view hides; frames and rendered images are served.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import closing
from functools import partial
from typing import IO

from fastapi import APIRouter, Request, Response
from pydicom import Dataset

from radpacs.archive import Archive, InstanceFile
from radpacs.deid.json_view import is_protected
from radpacs.dicom.mediatypes import DICOM, OCTET_STREAM
from radpacs.dicom.pixels import can_transcode, decoded_frames, stored_frames, transcode
from radpacs.dicomweb.negotiation import AS_STORED, choose_bulkdata, choose_frames, choose_instances
from radpacs.dicomweb.responses import multipart_response, streamed
from radpacs.errors import InvalidInput, NotAcceptable, NotFound, PermissionDenied, StorageError
from radpacs.http.deps import ArchiveDep, phi_visible

__all__ = ["frame_numbers", "router"]

router = APIRouter(tags=["WADO-RS"])

_CHUNK = 1024 * 1024


def _file_chunks(file: InstanceFile, opened: Callable[[], IO[bytes]]) -> Iterator[bytes]:
    """The stored bytes (``opened()`` at the first chunk); StorageError (ending the response)
    if the file is not the size the index recorded, as the response may already have
    promised that many bytes."""
    sent = 0
    with opened() as stream:
        while chunk := stream.read(_CHUNK):
            sent += len(chunk)
            yield chunk
    if sent != file.size:
        raise StorageError(
            f"stored file of instance {file.sop_uid} holds {sent} bytes, the index says "
            f"{file.size}; run `radpacs check`"
        )


def _given(stream: IO[bytes]) -> IO[bytes]:
    return stream


def _converted(opened: Callable[[], IO[bytes]], syntax: str) -> Iterator[bytes]:
    with opened() as stream:
        data = stream.read()
    yield transcode(data, syntax)


def _retrieve(
    request: Request,
    archive: Archive,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    if not phi_visible(request):
        raise PermissionDenied(
            "whole instances carry patient identity and are not served without PHI "
            "(a no-PHI token or phi=false); retrieve /metadata?phi=false and frames instead"
        )
    choice = choose_instances(request.headers.get("accept"), single_allowed=instance is not None)
    files = archive.instance_files(study, series, instance)
    syntax = choice.transfer_syntax
    if syntax != AS_STORED:
        for file in files:
            has_pixels = file.number_of_frames is not None
            if not can_transcode(file.transfer_syntax_uid, syntax, has_pixels):
                raise NotAcceptable(
                    f"instance {file.sop_uid} is stored as {file.transfer_syntax_uid} and cannot "
                    f"be served as {syntax}; ask for transfer-syntax=* to get it as stored"
                )

    def served_as(file: InstanceFile) -> str:
        """The transfer syntax the file is sent in: as stored unless another was asked for."""
        return file.transfer_syntax_uid if syntax == AS_STORED else syntax

    def part_type(file: InstanceFile) -> str:
        return f"{DICOM}; transfer-syntax={served_as(file)}"

    def part(file: InstanceFile, opened: Callable[[], IO[bytes]]) -> tuple[str, Iterator[bytes]]:
        if served_as(file) == file.transfer_syntax_uid:
            return part_type(file), _file_chunks(file, opened)
        return part_type(file), _converted(opened, syntax)

    def parts() -> Iterator[tuple[str, Iterator[bytes]]]:
        """Every file's part, opened in turn (the next ones read ahead from S3)."""
        with closing(archive.open_each(files)) as streams:
            for file, stream in zip(files, streams, strict=True):
                yield part(file, partial(_given, stream))

    as_stored = all(served_as(file) == file.transfer_syntax_uid for file in files)
    if not choice.multipart:
        content_type, chunks = part(files[0], lambda: archive.open(files[0]))
        headers = {"Content-Length": str(files[0].size)} if as_stored else None
        return streamed(chunks, content_type, headers=headers)
    sizes = [(part_type(file), file.size) for file in files] if as_stored else None
    return multipart_response(parts(), DICOM, sizes=sizes)


@router.get("/studies/{study}", summary="Retrieve a study")
def retrieve_study(study: str, request: Request, archive: ArchiveDep) -> Response:
    return _retrieve(request, archive, study)


@router.get("/studies/{study}/series/{series}", summary="Retrieve a series")
def retrieve_series(study: str, series: str, request: Request, archive: ArchiveDep) -> Response:
    return _retrieve(request, archive, study, series)


@router.get("/studies/{study}/series/{series}/instances/{instance}", summary="Retrieve an instance")
def retrieve_instance(
    study: str, series: str, instance: str, request: Request, archive: ArchiveDep
) -> Response:
    return _retrieve(request, archive, study, series, instance)


def _read(archive: Archive, study: str, series: str, instance: str) -> tuple[InstanceFile, Dataset]:
    [file] = archive.instance_files(study, series, instance)
    return file, archive.read_file(file)


def frame_numbers(text: str) -> list[int]:
    """1-based frame numbers from ``1,3,5``; InvalidInput when malformed."""
    if not re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*", text):
        raise InvalidInput(f"frame list {text!r} is not a comma-separated list of numbers")
    return [int(number) for number in text.split(",")]


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    summary="Retrieve frames",
)
def retrieve_frames(
    study: str, series: str, instance: str, frames: str, request: Request, archive: ArchiveDep
) -> Response:
    """Frames 1-based, as in ``/frames/1,3,5``; out-of-range numbers are a 400."""
    numbers = frame_numbers(frames)
    file, dataset = _read(archive, study, series, instance)
    choice = choose_frames(request.headers.get("accept"), file.transfer_syntax_uid)
    if choice.as_stored:
        content = stored_frames(dataset, numbers)
        content_type = f"{choice.media_type}; transfer-syntax={file.transfer_syntax_uid}"
    else:
        content = decoded_frames(dataset, numbers)
        content_type = f"{OCTET_STREAM}; transfer-syntax=1.2.840.10008.1.2.1"
    part_type = content_type.split(";")[0]
    return multipart_response(((content_type, [frame]) for frame in content), part_type)


def _bulk_value(dataset: Dataset, path: str) -> bytes:
    steps = path.strip("/").split("/")
    current: Dataset = dataset
    for position in range(0, len(steps), 2):
        tag_text = steps[position]
        if not re.fullmatch(r"[0-9A-Fa-f]{8}", tag_text):
            raise InvalidInput(f"bulk data path {path!r}: {tag_text!r} is not a tag")
        tag = int(tag_text, 16)
        if tag not in current:
            raise NotFound(f"no attribute {tag_text} at {path!r}")
        element = current[tag]
        if position + 1 == len(steps):
            value = element.value
            if not isinstance(value, bytes | bytearray):
                raise NotFound(f"attribute {tag_text} holds no bulk data")
            return bytes(value)
        index_text = steps[position + 1]
        if element.VR != "SQ" or not index_text.isdigit() or int(index_text) >= len(element.value):
            raise NotFound(f"no sequence item {index_text} in {tag_text} at {path!r}")
        current = element.value[int(index_text)]
    raise NotFound(f"bulk data path {path!r} ends in a sequence item")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``bytes=`` range; None if it cannot be satisfied."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or not (match.group(1) or match.group(2)):
        return None
    first, last = match.groups()
    if first:
        start, end = int(first), int(last) if last else size - 1
    else:
        start, end = max(size - int(last), 0), size - 1
    end = min(end, size - 1)
    return (start, end) if start <= end else None


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path:path}",
    summary="Retrieve bulk data",
)
def retrieve_bulkdata(
    study: str, series: str, instance: str, path: str, request: Request, archive: ArchiveDep
) -> Response:
    """The bytes behind a BulkDataURI; ``Range: bytes=a-b`` gives 206 with that slice."""
    multipart = choose_bulkdata(request.headers.get("accept"))
    first = path.strip("/").split("/")[0]
    hidden = re.fullmatch(r"[0-9A-Fa-f]{8}", first) and is_protected(int(first, 16))
    if hidden and not phi_visible(request):
        raise PermissionDenied(f"bulk data of {first} is not served without PHI")
    _, dataset = _read(archive, study, series, instance)
    value = _bulk_value(dataset, path)
    range_header = request.headers.get("range")
    if range_header and not multipart:
        span = _byte_range(range_header, len(value))
        if span is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{len(value)}"})
        start, end = span
        return Response(
            value[start : end + 1],
            status_code=206,
            media_type=OCTET_STREAM,
            headers={
                "Content-Range": f"bytes {start}-{end}/{len(value)}",
                "Accept-Ranges": "bytes",
            },
        )
    if multipart:
        return multipart_response(iter([(OCTET_STREAM, [value])]), OCTET_STREAM)
    return Response(value, media_type=OCTET_STREAM, headers={"Accept-Ranges": "bytes"})
