"""Archive: the only way into and out of storage (index + blob store), a short front.

The work is split by job: :mod:`.store` (the store path), :mod:`.search` (QIDO-RS),
:mod:`.retrieve` (files, metadata, delete, check). Every database error on every path,
reads included, leaves here as one :class:`~radpacs.errors.StorageError` that names what
could not be done (the HTTP layer answers 503), never as a raw SQLAlchemy error.

``store_many`` checks each object, writes its file durably, then records it in one index
transaction, so a crash leaves at most an orphan file (reported by :meth:`Archive.check`), never
an index row without its file; a file the index then refuses (a concurrent store of other
content under the same SOP Instance UID) is removed again. The same object twice is stored
once; a different object under a known SOP Instance UID follows the duplicate policy.
Listeners registered with :meth:`Archive.add_listener` hear about every stored batch after it
commits.

Example::

    with Archive.from_settings(load_settings(data_dir="/tmp/pacs")) as archive:
        [result] = archive.store_many([open("ct.dcm", "rb").read()])
        result.outcome  # Outcome.STORED
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from typing import IO, Self

from pydicom import Dataset
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from radpacs.archive.backends import open_blob_store
from radpacs.archive.blobs import BlobData, BlobStore
from radpacs.archive.database import create_index_engine, database_errors, migrate
from radpacs.archive.query import Query
from radpacs.archive.results import (
    CheckReport,
    InstanceFile,
    Outcome,
    SearchResult,
    StoreResult,
)
from radpacs.archive.retrieve import Retrieval
from radpacs.archive.search import Search
from radpacs.archive.store import StorePath
from radpacs.settings import DuplicatePolicy, Settings

__all__ = ["Archive", "CheckReport", "InstanceFile", "Outcome", "SearchResult", "StoreResult"]

log = logging.getLogger(__name__)


class Archive:
    """The index database and the blob store behind one object; a context manager that
    closes the database connections on exit."""

    def __init__(
        self,
        engine: Engine,
        blobs: BlobStore,
        duplicate_policy: DuplicatePolicy = DuplicatePolicy.REJECT,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        read = sessionmaker(engine, expire_on_commit=False)
        write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self._store = StorePath(engine, blobs, DuplicatePolicy(duplicate_policy), read, write)
        self._search = Search(read)
        self._files = Retrieval(engine, blobs, read, write)
        self._delete_listeners: list[Callable[[list[str]], None]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Archive:
        """Open (and migrate) the index and the blob store (folder or S3) that ``settings``
        name."""
        blobs = open_blob_store(settings)
        engine = create_index_engine(settings.resolved_database_url)
        with database_errors("migration"):
            migrate(engine)
        return cls(engine, blobs, settings.duplicate_policy)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def duplicate_policy(self) -> DuplicatePolicy:
        """What a different object under a known SOP Instance UID does: reject or replace."""
        return self._store.duplicate_policy

    @duplicate_policy.setter
    def duplicate_policy(self, policy: DuplicatePolicy) -> None:
        self._store.duplicate_policy = DuplicatePolicy(policy)

    def add_listener(self, listener: Callable[[list[StoreResult]], None]) -> None:
        """Call ``listener`` with the results of every store batch after it commits."""
        self._store.add_listener(listener)

    def add_delete_listener(self, listener: Callable[[list[str]], None]) -> None:
        """Call ``listener`` with the SOP Instance UIDs of every delete after it commits."""
        self._delete_listeners.append(listener)

    def store_many(
        self, payloads: Sequence[BlobData], expected_study_uid: str | None = None
    ) -> list[StoreResult]:
        """Store PS3.10 files (bytes, or a FileBlob for a large one: never read whole); one
        result per payload, in order. Bad ones fail alone."""
        with database_errors("store"):
            return self._store.store_many(payloads, expected_study_uid)

    def search(self, query: Query) -> SearchResult:
        """One page of matches for a QIDO-RS query, as DICOM JSON objects."""
        with database_errors("search"):
            return self._search.search(query)

    def search_patients(self, query: Query) -> SearchResult:
        """One page of patients matching a patient-level query, with their number of studies."""
        with database_errors("search"):
            return self._search.search_patients(query)

    def locate(self, series_uid: str | None = None, sop_uid: str | None = None) -> tuple[str, str]:
        """The (study, series) UIDs above a series or an instance, which are globally unique
        (PS3.5 9); NotFound if it is not stored."""
        with database_errors("read"):
            return self._files.locate(series_uid, sop_uid)

    def instance_files(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceFile]:
        """The stored files of a study, series or instance, in series and instance order."""
        with database_errors("read"):
            return self._files.instance_files(study_uid, series_uid, sop_uid)

    def metadata_version(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> str:
        """A token that changes whenever the metadata of this resource changes."""
        with database_errors("read"):
            return self._files.metadata_version(study_uid, series_uid, sop_uid)

    def metadata(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> bytes:
        """The DICOM JSON metadata array (BulkDataURIs relative to the DICOMweb root)."""
        with database_errors("read"):
            return self._files.metadata(study_uid, series_uid, sop_uid)

    def open(self, file: InstanceFile) -> IO[bytes]:
        """A binary file object with the stored PS3.10 bytes."""
        return self._files.open(file)

    def open_each(self, files: Sequence[InstanceFile]) -> Generator[IO[bytes]]:
        """The stored files opened in order, the next ones read ahead from a remote store
        (:meth:`Retrieval.open_each`); close the iterator when stopping early."""
        return self._files.open_each(files)

    def read_dataset(self, sop_instance_uid: str) -> Dataset:
        """The stored instance as a pydicom Dataset; NotFound if unknown."""
        with database_errors("read"):
            return self._files.read_dataset(sop_instance_uid)

    def read_file(self, file: InstanceFile) -> Dataset:
        """A stored instance (from :meth:`instance_files`) as a pydicom Dataset."""
        return self._files.read_file(file)

    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> int:
        """Remove a study, series or instance: index rows (and quality-control statuses)
        first, then files. Returns the count."""
        with database_errors("delete"):
            deleted = (
                [f.sop_uid for f in self.instance_files(study_uid, series_uid, sop_uid)]
                if self._delete_listeners
                else []
            )
            count = self._files.delete(study_uid, series_uid, sop_uid)
        for listener in self._delete_listeners:
            try:
                listener(deleted)
            except Exception:  # a listener must never undo a delete
                log.exception("delete listener failed")
        return count

    def check(self, clean: bool = False, temporary_grace_s: float = 600.0) -> CheckReport:
        """Compare the blob store with the index and list temporary files that interrupted
        writes left; with ``clean``, remove orphan files, and temporary files not written for
        ``temporary_grace_s`` seconds (a younger one may be a write in progress)."""
        with database_errors("check"):
            return self._files.check(clean, temporary_grace_s)

    def counts(self) -> dict[str, int]:
        """How many patients, studies, series and instances the index holds."""
        with database_errors("count"):
            return self._files.counts()
