"""Copy every indexed file from one blob store to another (``radpacs storage migrate``).

The index names each file by storage key and SHA-256 digest; the keys are the same in every
store, so a migration copies files and leaves the index alone. Each file is read from the
source in chunks into a spooled temporary file (never whole in memory) and its digest checked
against the index before it is written, then read back from
the destination and checked again. A file the destination already holds with the right
digest is skipped, so an interrupted migration resumes where it stopped. The source is left
as it was; switch ``blob_backend`` once the report shows no failures.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from radpacs.archive.blobs import BlobStore, FileBlob
from radpacs.archive.database import database_errors
from radpacs.archive.index import Instance
from radpacs.errors import NotFound, StorageError

__all__ = ["MigrationReport", "migrate_blobs"]

_CHUNK = 1024 * 1024
_PAGE = 500
_SPOOL_BYTES = 16 * 1024 * 1024  # a larger blob is copied through a file on disk


@dataclass
class MigrationReport:
    """What a migration did; ``failures`` maps SOP Instance UIDs to what went wrong."""

    total: int = 0
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.copied + self.skipped + len(self.failures)


def migrate_blobs(
    engine: Engine,
    source: BlobStore,
    destination: BlobStore,
    progress: Callable[[MigrationReport], None] | None = None,
) -> MigrationReport:
    """Copy each indexed file from ``source`` to ``destination``, verifying digests (see the
    module docstring); ``progress`` hears the report after each file."""
    report = MigrationReport()
    with database_errors("blob migration"), Session(engine) as session:
        report.total = session.scalar(select(func.count(Instance.pk))) or 0
    last_pk = 0
    while True:
        with database_errors("blob migration"), Session(engine) as session:
            rows = session.execute(
                select(Instance.pk, Instance.sop_uid, Instance.storage_key, Instance.digest)
                .where(Instance.pk > last_pk)
                .order_by(Instance.pk)
                .limit(_PAGE)
            ).all()
        if not rows:
            return report
        for pk, sop_uid, key, digest in rows:
            last_pk = pk
            try:
                if _digest_of(destination, key) == digest:
                    report.skipped += 1
                else:
                    report.bytes_copied += _copy(source, destination, key, digest)
                    report.copied += 1
            except (StorageError, NotFound) as exc:
                report.failures[sop_uid] = str(exc)
            if progress is not None:
                progress(report)


def _copy(source: BlobStore, destination: BlobStore, key: str, digest: str) -> int:
    """Copy one blob through a spooled temporary file (a large one is never whole in memory),
    checking its digest on the way and read back from the destination."""
    hasher = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        with source.open(key) as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                spool.write(chunk)
                size += len(chunk)
        if hasher.hexdigest() != digest:
            raise StorageError(f"blob {key} in the source does not match the digest in the index")
        destination.put(key, FileBlob(spool, size))
    if _digest_of(destination, key) != digest:
        raise StorageError(f"blob {key} read back from the destination does not match its digest")
    return size


def _digest_of(store: BlobStore, key: str) -> str | None:
    """The SHA-256 of ``key`` in ``store`` (streamed), None if it is not there."""
    try:
        stream = store.open(key)
    except NotFound:
        return None
    hasher = hashlib.sha256()
    with stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()
