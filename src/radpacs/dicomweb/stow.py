"""STOW-RS (PS3.18 10.5): POST /studies and /studies/{study} with PS3.10 files.

The body is multipart/related; type="application/dicom" (quoted or not, chunked or not), or a
single application/dicom file; or metadata and bulk data (PS3.18 10.5.1.2) with
type="application/dicom+json" or type="application/dicom+xml" (PS3.19). The whole body is
received and split into parts, each in a spooled temporary file (at most 64 MiB of them in
memory, the rest on disk), before anything is stored: a body cut short or with a broken boundary
is answered 400 and stores nothing. The parts are then stored in order, in batches of bounded
size, each on its own; a part over 16 MiB is stored alone from its file, read around its Pixel
Data and copied in chunks (:func:`radpacs.archive.ingest.parse_file`), never whole in memory.
The answer lists stored instances in ReferencedSOPSequence and failed ones in
FailedSOPSequence with a FailureReason, and says in a Warning header which part failed and why
("part 2: not a DICOM file (no DICM prefix at byte 128, PS3.10 7.1)"). Status (PS3.18 10.5.3):
200 all stored, 202 some failed or warned, 400 none stored because no part was a
readable object (FailureReason 0xC000 for each), 409 none stored and some for a conflict
(duplicate, other study), 400 also for a malformed body, 413 too large, 415 wrong media type.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from radpacs.archive import FileBlob, Outcome, StoreResult
from radpacs.archive.ingest import CANNOT_UNDERSTAND
from radpacs.dicom.from_json import BulkPart, instance_from_json
from radpacs.dicom.from_xml import xml_to_json
from radpacs.dicom.json import attribute, json_to_bytes
from radpacs.dicom.mediatypes import (
    DICOM,
    DICOM_JSON,
    DICOM_XML,
    MULTIPART_RELATED,
    parse_media_type,
)
from radpacs.dicom.multipart import MultipartError, MultipartParser, Part
from radpacs.dicomweb.negotiation import choose_json
from radpacs.dicomweb.responses import json_body_response, warning_header
from radpacs.errors import InvalidInput, InvalidInstance
from radpacs.http.deps import ArchiveDep, SettingsDep, dicomweb_root

__all__ = ["router"]

router = APIRouter(tags=["STOW-RS"])

_FEED_BYTES = 1024 * 1024
_BATCH_FILES = 64
_BATCH_BYTES = 64 * 1024 * 1024
_LARGE_PART_BYTES = 16 * 1024 * 1024  # stored alone from its file (on disk past this size)
_MAX_WARNINGS = 20
_METADATA_PART_BYTES = 64 * 1024 * 1024  # a JSON or XML part is parsed whole, into many objects
_BAD_SYNTAX = CANNOT_UNDERSTAND  # the FailureReason of a part that is not a readable object


class BodyTooLarge(Exception):
    pass


def _problem(status: int, message: str) -> Response:
    return Response(
        json_to_bytes({"detail": message}),
        status_code=status,
        media_type="application/json",
        headers={"Warning": warning_header(message)},
    )


async def _read_parts(request: Request, boundary: str, limit: int) -> list[Part]:
    """The body's parts, each in a spooled temporary file (64 MiB in memory at most)."""
    parser = MultipartParser(boundary.encode("latin-1"))
    pending: list[bytes] = []
    pending_size = total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _FEED_BYTES:
                await run_in_threadpool(parser.feed, b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            parser.feed(b"".join(pending))
        return parser.close()
    except BaseException:
        for part in parser.take_completed():
            part.close()
        raise


async def _read_single(request: Request, limit: int) -> list[Part]:
    part = Part({"content-type": DICOM})
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            part.close()
            raise BodyTooLarge
        part.write(chunk)
    return [part]


def _store(archive: Any, parts: list[Part], study: str | None) -> list[StoreResult]:
    """Store the parts in batches of at most 64 files or 64 MiB, in order; one result each.

    Only one batch is in memory at a time, so a large STOW needs little more memory than a
    small one; a part over 16 MiB is stored alone from its file. A part of another media type
    fails alone.
    """
    results: list[StoreResult] = []
    batch: list[bytes] = []
    batch_bytes = 0
    try:
        for part in parts:
            part_type = parse_media_type(part.content_type).type if part.content_type else DICOM
            if part_type != DICOM:
                if batch:
                    results += archive.store_many(batch, study)
                    batch, batch_bytes = [], 0
                results.append(
                    StoreResult.failed(InvalidInstance(f"a {part_type} part, not {DICOM}"))
                )
                part.close()
                continue
            if part.size > _LARGE_PART_BYTES:
                if batch:
                    results += archive.store_many(batch, study)
                    batch, batch_bytes = [], 0
                results += archive.store_many([FileBlob(part.file, part.size)], study)
                part.close()
                continue
            batch.append(part.read())
            batch_bytes += part.size
            part.close()
            if len(batch) >= _BATCH_FILES or batch_bytes >= _BATCH_BYTES:
                results += archive.store_many(batch, study)
                batch, batch_bytes = [], 0
        if batch:
            results += archive.store_many(batch, study)
    finally:
        for part in parts:
            part.close()
    return results


def _store_metadata(archive: Any, parts: list[Part], study: str | None) -> list[StoreResult]:
    """STOW of metadata and bulk data (PS3.18 10.5.1.2): the application/dicom+json parts
    hold arrays of data sets, each application/dicom+xml part one data set (PS3.19); the other
    parts are the bulk data their BulkDataURIs name, by Content-Location. One result per data
    set, in order; a bad data set fails alone."""
    items: list[Any] = []
    bulk: dict[str, BulkPart] = {}
    try:
        for number, part in enumerate(parts, start=1):
            media = parse_media_type(part.content_type) if part.content_type else None
            if (
                media is not None
                and media.type in (DICOM_JSON, DICOM_XML)
                and part.size > _METADATA_PART_BYTES
            ):
                items.append(
                    InvalidInstance(
                        f"part {number}: a {media.type} part of {part.size} bytes, over the "
                        f"{_METADATA_PART_BYTES} bytes a metadata part may have (bulk data "
                        "belongs in its own parts)"
                    )
                )
                continue
            if media is not None and media.type == DICOM_JSON:
                try:
                    loaded = orjson.loads(part.read())
                except (orjson.JSONDecodeError, RecursionError) as exc:
                    items.append(InvalidInstance(f"part {number} is not DICOM JSON: {exc}"))
                    continue
                items.extend(loaded if isinstance(loaded, list) else [loaded])
                continue
            if media is not None and media.type == DICOM_XML:
                try:
                    items.append(xml_to_json(part.read()))
                except InvalidInput as exc:
                    items.append(InvalidInstance(f"part {number} is not DICOM XML: {exc}"))
                continue
            location = part.headers.get("content-location", "")
            if not location:
                items.append(
                    InvalidInstance(f"bulk data part {number} has no Content-Location header")
                )
                continue
            syntax = media.param("transfer-syntax", "") if media is not None else ""
            bulk[location] = BulkPart(part.read(), syntax)
    finally:
        for part in parts:
            part.close()
    files: list[bytes | InvalidInstance] = []
    for item in items:
        if isinstance(item, InvalidInstance):
            files.append(item)
            continue
        try:
            files.append(instance_from_json(item, bulk))
        except InvalidInput as exc:
            files.append(InvalidInstance(str(exc), CANNOT_UNDERSTAND, *_uids_of(item)))
    stored = iter(
        archive.store_many([f for f in files if isinstance(f, bytes)], study)
        if any(isinstance(f, bytes) for f in files)
        else []
    )
    return [next(stored) if isinstance(f, bytes) else StoreResult.failed(f) for f in files]


def _uids_of(item: Any) -> tuple[str, str]:
    """SOP Class and Instance UIDs of a DICOM JSON data set, '' where absent."""

    def first(tag: str) -> str:
        values = item.get(tag, {}).get("Value") if isinstance(item, dict) else None
        return str(values[0])[:64] if isinstance(values, list) and values else ""

    return first("00080016"), first("00080018")


def _answer(request: Request, results: list[StoreResult], study: str | None) -> Response:
    root = dicomweb_root(request)
    referenced, failed, warnings = [], [], []
    for number, result in enumerate(results, start=1):
        if result.outcome is Outcome.FAILED:
            failed.append(
                {
                    "00081150": attribute("UI", result.sop_class_uid),
                    "00081155": attribute("UI", result.sop_instance_uid),
                    "00081197": attribute("US", result.failure_reason),
                }
            )
            uid = f" (SOP Instance {result.sop_instance_uid})" if result.sop_instance_uid else ""
            warnings.append(f"part {number}{uid}: {result.message}")
            continue
        url = (
            f"{root}/studies/{result.study_uid}/series/{result.series_uid}"
            f"/instances/{result.sop_instance_uid}"
        )
        referenced.append(
            {
                "00081150": attribute("UI", result.sop_class_uid),
                "00081155": attribute("UI", result.sop_instance_uid),
                "00081190": attribute("UR", url),
            }
        )
        if result.outcome is Outcome.REPLACED:
            warnings.append(
                f"part {number} (SOP Instance {result.sop_instance_uid}): replaced the object "
                "stored under this SOP Instance UID (duplicate_policy=replace)"
            )
    body: dict[str, Any] = {}
    studies = {result.study_uid for result in results if result.outcome is not Outcome.FAILED}
    target = study or (studies.pop() if len(studies) == 1 else None)
    if target:
        body["00081190"] = attribute("UR", f"{root}/studies/{target}")
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if not referenced:  # PS3.18 10.5.3: 400 for bad syntax only, 409 for any conflict
        bad_syntax = all(r.failure_reason == _BAD_SYNTAX for r in results)
        status = 400 if bad_syntax else 409
    elif failed or warnings:
        status = 202
    else:
        status = 200
    return json_body_response(
        request, json_to_bytes(body), status_code=status, warnings=warnings[:_MAX_WARNINGS]
    )


async def _store_request(
    request: Request, archive: ArchiveDep, settings: SettingsDep, study: str | None
) -> Response:
    choose_json(request.headers.get("accept"))
    content_type = parse_media_type(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        return _problem(413, f"the body is larger than {settings.max_upload_bytes} bytes")
    try:
        if content_type.type == MULTIPART_RELATED:
            part_type = content_type.param("type", DICOM).lower()
            if part_type not in (DICOM, DICOM_JSON, DICOM_XML):
                return _problem(
                    415,
                    f'STOW-RS here takes multipart/related; type="{DICOM}", '
                    f'type="{DICOM_JSON}" or type="{DICOM_XML}" (metadata and bulk data), '
                    f'not type="{part_type}"',
                )
            boundary = content_type.param("boundary")
            if not boundary:
                return _problem(400, "multipart/related Content-Type without a boundary")
            parts = await _read_parts(request, boundary, settings.max_upload_bytes)
            if part_type in (DICOM_JSON, DICOM_XML) and parts:
                results = await run_in_threadpool(_store_metadata, archive, parts, study)
                return _answer(request, results, study)
        elif content_type.type == DICOM:
            parts = await _read_single(request, settings.max_upload_bytes)
        else:
            return _problem(
                415,
                f'STOW-RS takes multipart/related; type="{DICOM}" or {DICOM}, '
                f"not {content_type.type or 'a body without Content-Type'}",
            )
    except BodyTooLarge:
        return _problem(413, f"the body is larger than {settings.max_upload_bytes} bytes")
    except MultipartError as exc:
        return _problem(400, f"malformed multipart body, nothing stored: {exc}")
    if not parts:
        return _problem(400, "the multipart body has no parts")
    results = await run_in_threadpool(_store, archive, parts, study)
    return _answer(request, results, study)


@router.post("/studies", summary="Store instances (STOW-RS)")
async def store_instances(request: Request, archive: ArchiveDep, settings: SettingsDep) -> Response:
    """Store PS3.10 instances of any study."""
    return await _store_request(request, archive, settings, None)


@router.post("/studies/{study}", summary="Store instances into a study (STOW-RS)")
async def store_study_instances(
    study: str, request: Request, archive: ArchiveDep, settings: SettingsDep
) -> Response:
    """Store PS3.10 instances that must belong to ``study`` (others fail with 0xC409)."""
    return await _store_request(request, archive, settings, study)
