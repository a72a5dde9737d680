"""POST /api/upload-zip: store every DICOM file inside a .zip archive.

The body is the zip itself (``Content-Type: application/zip``). It is spooled to a temporary
file, then read member by member and stored through the archive in batches, as STOW-RS would.
Members that are folders, macOS resource forks (``__MACOSX/``) or a DICOMDIR are skipped;
any other member that is not DICOM is reported as failed with its reason. The answer counts
what was stored and lists each failure by member name::

    {"stored": 3, "already_stored": 0, "failed": [{"file": "a/readme.txt", "reason": "..."}],
     "studies": ["1.2.3"]}

Limits: the body and the total uncompressed size are bounded by ``max_upload_bytes``; a
member that expands more than 100 times (and past 8 MiB) is refused as a zip bomb, 413, before
anything is stored. Members are read in 1 MiB chunks, at most 64 MiB of them at a time; one
with a CRC error or damaged data fails alone with its reason. A member over 16 MiB is extracted
to a temporary file and stored alone from it, never whole in memory (as a large STOW part).
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from radpacs.archive import Archive, FileBlob, Outcome, StoreResult
from radpacs.errors import InvalidInput, InvalidInstance
from radpacs.http.deps import ArchiveDep, SettingsDep

__all__ = ["router", "store_zip"]

router = APIRouter(prefix="/api", tags=["upload"])

_BATCH_FILES = 64
_BATCH_BYTES = 64 * 1024 * 1024
_SPOOL_BYTES = 16 * 1024 * 1024
_CHUNK_BYTES = 1024 * 1024
_LARGE_MEMBER_BYTES = 16 * 1024 * 1024  # stored alone from a temporary file
_MAX_RATIO = 100  # DICOM deflates 2-10 times; a member expanding 100 times is a bomb
_RATIO_FLOOR = 8 * 1024 * 1024  # small members may expand as they like


def _skipped(info: zipfile.ZipInfo) -> bool:
    name = info.filename
    base = name.rsplit("/", 1)[-1]
    return (
        info.is_dir()
        or name.startswith("__MACOSX/")
        or base.startswith("._")
        or base.upper() == "DICOMDIR"
    )


class ZipTooLarge(InvalidInput):
    """The zip declares more uncompressed bytes than allowed, or a member expands suspiciously
    (a zip bomb): refused before anything is stored (HTTP 413)."""


def _check_sizes(members: list[zipfile.ZipInfo], limit: int) -> None:
    """Refuse the whole zip, before reading any member, when its declared sizes pass ``limit``
    or a member expands more than ``_MAX_RATIO`` times. Reading never yields more than the
    declared size (zipfile stops there and checks the CRC), so this bounds the work."""
    total = 0
    for info in members:
        total += info.file_size
        if total > limit:
            raise ZipTooLarge(f"the archive holds more than {limit} bytes once uncompressed")
        if info.file_size > _RATIO_FLOOR and info.file_size > _MAX_RATIO * info.compress_size:
            raise ZipTooLarge(
                f"member {info.filename!r} expands from {info.compress_size} to "
                f"{info.file_size} bytes, more than {_MAX_RATIO} times: refused as a zip bomb"
            )


_Member = bytes | FileBlob | str  # its bytes, its file (a large one), or why it is unreadable


def _read_member(zipped: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    """The member extracted in chunks: its bytes, or a FileBlob when over 16 MiB; or why it
    cannot be read (CRC error, bad data)."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (returned)
    size = 0
    try:
        with zipped.open(info) as member:
            while chunk := member.read(_CHUNK_BYTES):
                spool.write(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as exc:
        spool.close()
        return f"the member cannot be extracted: {exc}"  # CRC error, encrypted, bad data
    if size > _LARGE_MEMBER_BYTES:
        return FileBlob(spool, size)
    with spool:
        spool.seek(0)
        return spool.read()


def _batches(
    zipped: zipfile.ZipFile, members: list[zipfile.ZipInfo]
) -> Iterator[list[tuple[str, _Member]]]:
    """Members in batches of at most 64 files or 64 MiB; a large one in a batch of its own."""
    batch: list[tuple[str, _Member]] = []
    size = 0
    for info in members:
        member = _read_member(zipped, info)
        if isinstance(member, FileBlob):
            if batch:
                yield batch
                batch, size = [], 0
            yield [(info.filename, member)]
            continue
        batch.append((info.filename, member))
        size += info.file_size
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _store_batch(archive: Archive, batch: list[tuple[str, _Member]]) -> list[StoreResult]:
    files = [data for _, data in batch if not isinstance(data, str)]
    try:
        stored = iter(archive.store_many(files) if files else [])
    finally:
        for data in files:
            if isinstance(data, FileBlob):
                data.file.close()
    return [
        StoreResult.failed(InvalidInstance(data)) if isinstance(data, str) else next(stored)
        for _, data in batch
    ]


def store_zip(archive: Archive, stream: IO[bytes], limit: int) -> dict[str, Any]:
    """Store the DICOM members of the zip in ``stream``; a summary as described above.

    InvalidInput when the body is not a zip; ZipTooLarge (nothing stored) as
    :func:`_check_sizes` says. A member that cannot be extracted fails alone.
    """
    try:
        zipped = zipfile.ZipFile(stream)
        members = [info for info in zipped.infolist() if not _skipped(info)]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise InvalidInput(f"the body is not a zip archive: {exc}") from exc
    _check_sizes(members, limit)
    counts = {outcome: 0 for outcome in Outcome}
    failed: list[dict[str, str]] = []
    studies: list[str] = []
    bad_syntax = True
    with zipped:
        for batch in _batches(zipped, members):
            for (name, _), result in zip(batch, _store_batch(archive, batch), strict=True):
                counts[result.outcome] += 1
                if result.outcome is Outcome.FAILED:
                    bad_syntax = bad_syntax and result.failure_reason == 0xC000
                    failed.append(
                        {
                            "file": name,
                            "reason": result.message,
                            "sop_instance_uid": result.sop_instance_uid,
                        }
                    )
                elif result.study_uid not in studies:
                    studies.append(result.study_uid)
    return {
        "stored": counts[Outcome.STORED] + counts[Outcome.REPLACED],
        "already_stored": counts[Outcome.ALREADY_STORED],
        "failed": failed,
        "studies": studies,
        "bad_syntax": bad_syntax,
    }


@router.post("/upload-zip", summary="Store the DICOM files of a .zip archive")
async def upload_zip(request: Request, archive: ArchiveDep, settings: SettingsDep) -> JSONResponse:
    """Answer 200 when every DICOM member was stored, 202 when some failed, 400 when none was
    because none could be read (409 when some failed for a conflict), 413 for a zip bomb."""
    limit = settings.max_upload_bytes
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                return JSONResponse(
                    {"detail": f"the body is larger than {limit} bytes"}, status_code=413
                )
            spool.write(chunk)
        spool.seek(0)
        try:
            summary = await run_in_threadpool(store_zip, archive, spool, limit)
        except ZipTooLarge as exc:
            return JSONResponse({"detail": str(exc)}, status_code=413)
    bad_syntax = summary.pop("bad_syntax")
    if not summary["failed"]:
        status = 200
    elif summary["stored"] or summary["already_stored"]:
        status = 202
    else:
        status = 400 if bad_syntax else 409
    return JSONResponse(summary, status_code=status)
