"""POST /api/upload-zip: store every DICOM file inside a .zip archive.

The body is the zip itself (``Content-Type: application/zip``). It is spooled to a temporary
file, then read member by member and stored through the archive in batches, as STOW-RS would.
Members that are folders, macOS resource forks (``__MACOSX/``) or a DICOMDIR are skipped;
any other member that is not DICOM is reported as failed with its reason. The answer counts
what was stored and lists each failure by member name::

    {"stored": 3, "already_stored": 0, "failed": [{"file": "a/readme.txt", "reason": "..."}],
     "studies": ["1.2.3"]}

Limits: the body and the total uncompressed size are bounded by ``max_upload_bytes``.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from radpacs.archive import Archive, Outcome, StoreResult
from radpacs.errors import InvalidInput
from radpacs.http.deps import ArchiveDep, SettingsDep

__all__ = ["router", "store_zip"]

router = APIRouter(prefix="/api", tags=["upload"])

_BATCH_FILES = 64
_BATCH_BYTES = 64 * 1024 * 1024
_SPOOL_BYTES = 16 * 1024 * 1024


def _skipped(info: zipfile.ZipInfo) -> bool:
    name = info.filename
    base = name.rsplit("/", 1)[-1]
    return (
        info.is_dir()
        or name.startswith("__MACOSX/")
        or base.startswith("._")
        or base.upper() == "DICOMDIR"
    )


def _batches(archive: zipfile.ZipFile, limit: int) -> Iterator[list[tuple[str, bytes]]]:
    total = 0
    batch: list[tuple[str, bytes]] = []
    size = 0
    for info in archive.infolist():
        if _skipped(info):
            continue
        total += info.file_size
        if total > limit:
            raise InvalidInput(f"the archive holds more than {limit} bytes once uncompressed")
        batch.append((info.filename, archive.read(info)))
        size += info.file_size
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def store_zip(archive: Archive, stream: IO[bytes], limit: int) -> dict[str, Any]:
    """Store the DICOM members of the zip in ``stream``; a summary as described above."""
    try:
        zipped = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"the body is not a zip archive: {exc}") from exc
    counts = {outcome: 0 for outcome in Outcome}
    failed: list[dict[str, str]] = []
    studies: list[str] = []
    with zipped:
        for batch in _batches(zipped, limit):
            results: list[StoreResult] = archive.store_many([data for _, data in batch])
            for (name, _), result in zip(batch, results, strict=True):
                counts[result.outcome] += 1
                if result.outcome is Outcome.FAILED:
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
    }


@router.post("/upload-zip", summary="Store the DICOM files of a .zip archive")
async def upload_zip(request: Request, archive: ArchiveDep, settings: SettingsDep) -> JSONResponse:
    """Answer 200 when every DICOM member was stored, 202 when some failed, 409 when none was."""
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
        summary = await run_in_threadpool(store_zip, archive, spool, limit)
    if not summary["failed"]:
        status = 200
    elif summary["stored"] or summary["already_stored"]:
        status = 202
    else:
        status = 409
    return JSONResponse(summary, status_code=status)
