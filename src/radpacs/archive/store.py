"""The store path (PS3.18 10.5 STOW-RS, and every other way in): parse, write, index.

``store_many`` checks each object, writes its file durably, then records it in one index
transaction, so a crash leaves at most an orphan file (reported by ``Archive.check``), never
an index row without its file. The same object twice is stored once; a different object
under a known SOP Instance UID follows the duplicate policy. Listeners hear about every
stored batch after it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from radpacs.archive.blobs import BlobData, BlobStore
from radpacs.archive.index import Instance, Patient, Series, Study
from radpacs.archive.ingest import CANNOT_UNDERSTAND, ParsedInstance, parse_file, parse_instance
from radpacs.archive.metadata_codec import pack
from radpacs.archive.results import Outcome, StoreResult
from radpacs.archive.rows import bump_versions, delete_unreferenced
from radpacs.errors import DuplicateInstance, InvalidInstance
from radpacs.settings import DuplicatePolicy

__all__ = ["StorePath"]

log = logging.getLogger("radpacs.archive")

# Statements of the store path, built once: building one costs more than SQLite running it.
_SERIES_AND_STUDY = (
    select(Series.pk, Study.study_uid)
    .join(Study, Series.study_pk == Study.pk)
    .where(Series.series_uid == bindparam("series_uid"))
)
_KNOWN_INSTANCES = select(Instance.sop_uid, Instance.digest, Instance.storage_key).where(
    Instance.sop_uid.in_(bindparam("sop_uids", expanding=True))
)
_INSERT_INSTANCE = insert(cast(Table, Instance.__table__))  # Core: no ORM bookkeeping


class StorePath:
    """Stores PS3.10 files into the blob store and the index (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        blobs: BlobStore,
        duplicate_policy: DuplicatePolicy,
        read: sessionmaker[Session],
        write: sessionmaker[Session],
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.duplicate_policy = duplicate_policy
        self._read = read
        self._write = write
        self._listeners: list[Callable[[list[StoreResult]], None]] = []

    def add_listener(self, listener: Callable[[list[StoreResult]], None]) -> None:
        """Call ``listener`` with the results of every store batch after it commits."""
        self._listeners.append(listener)

    def store_many(
        self, payloads: Sequence[BlobData], expected_study_uid: str | None = None
    ) -> list[StoreResult]:
        """Store PS3.10 files; one result per payload, in order. Bad ones fail alone.

        A payload in a file (:class:`~radpacs.archive.blobs.FileBlob`) is read around its
        Pixel Data and copied to the blob store in chunks, never whole in memory."""
        results: list[StoreResult | None] = [None] * len(payloads)
        planned: dict[int, ParsedInstance] = {}
        for index, data in enumerate(payloads):
            try:
                if isinstance(data, bytes):
                    planned[index] = parse_instance(data, expected_study_uid)
                else:
                    planned[index] = parse_file(data, expected_study_uid)
            except InvalidInstance as exc:
                results[index] = StoreResult.failed(exc)
        if planned:
            self._store_parsed(planned, results)
        final = [result for result in results if result is not None]
        assert len(final) == len(payloads)
        stored = [r for r in final if r.outcome in (Outcome.STORED, Outcome.REPLACED)]
        if stored:
            for listener in self._listeners:
                try:
                    listener(stored)
                except Exception:  # a listener must never undo a store
                    log.exception("store listener failed")
        return final

    def _existing(self, sop_uids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """Digest and storage key of each of ``sop_uids`` already indexed."""
        with self.engine.connect() as connection:
            rows = connection.execute(_KNOWN_INSTANCES, {"sop_uids": list(sop_uids)})
            return {sop: (digest, key) for sop, digest, key in rows}

    def _store_parsed(
        self, planned: dict[int, ParsedInstance], results: list[StoreResult | None]
    ) -> None:
        existing = self._existing({parsed.sop_uid for parsed in planned.values()})
        seen: dict[str, str] = {}
        to_write: dict[int, ParsedInstance] = {}
        for index, parsed in planned.items():
            known_digest = seen.get(parsed.sop_uid) or existing.get(parsed.sop_uid, ("", ""))[0]
            if known_digest == parsed.digest:
                results[index] = StoreResult.of(Outcome.ALREADY_STORED, parsed)
            elif known_digest and self.duplicate_policy is DuplicatePolicy.REJECT:
                results[index] = StoreResult.failed(
                    DuplicateInstance(parsed.sop_class_uid, parsed.sop_uid)
                )
            else:
                seen[parsed.sop_uid] = parsed.digest
                to_write[index] = parsed
        written = [parsed.storage_key for parsed in to_write.values()]
        try:
            self.blobs.put_many([(parsed.storage_key, parsed.data) for parsed in to_write.values()])
            replaced_keys = self._index(to_write, results, set(existing))
        except Exception:
            for key in written:
                delete_unreferenced(self._read, self.blobs, key)
            raise
        refused = {
            parsed.storage_key
            for index, parsed in to_write.items()
            if (result := results[index]) is not None and result.outcome is Outcome.FAILED
        }
        for key in [*replaced_keys, *refused]:  # a refused store leaves no file behind
            delete_unreferenced(self._read, self.blobs, key)

    def _index(
        self,
        to_write: dict[int, ParsedInstance],
        results: list[StoreResult | None],
        known_sops: set[str],
    ) -> list[str]:
        """Record written files in one transaction; the keys that replacements orphaned.

        New instances go in with one multi-row insert, without savepoints. If a concurrent
        request created some of the same rows first, that transaction is rolled back and the
        batch is recorded again carefully: instances whose UID was already known, and every
        instance of a batch that met a concurrent insert, go one by one in savepoints.
        """
        for careful in (False, True):
            for index in to_write:
                results[index] = None
            try:
                with self._write() as session, session.begin():
                    return self._index_in(session, to_write, results, known_sops, careful)
            except IntegrityError:
                if careful:  # Archive.store_many translates it (database_errors)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _index_in(
        self,
        session: Session,
        to_write: dict[int, ParsedInstance],
        results: list[StoreResult | None],
        known_sops: set[str],
        careful: bool,
    ) -> list[str]:
        """:meth:`_index` within one transaction; ``careful`` puts each step in a savepoint."""
        replaced_keys: list[str] = []
        touched_series: set[int] = set()
        series_cache: dict[str, tuple[int, str]] = {}
        fresh = {i: p for i, p in to_write.items() if p.sop_uid not in known_sops}
        one_by_one = {i: p for i, p in to_write.items() if p.sop_uid in known_sops}
        one_by_one |= self._insert_new(session, fresh, results, series_cache, careful)
        for index, parsed in fresh.items():
            if index not in one_by_one and results[index] is not None:
                touched_series.add(series_cache[parsed.series_uid][0])
        for index, parsed in sorted(one_by_one.items()):
            try:
                with session.begin_nested():
                    outcome, old_key, series_pk = self._index_one(
                        session, parsed, True, series_cache
                    )
            except InvalidInstance as exc:  # DuplicateInstance included
                results[index] = StoreResult.failed(exc)
                continue
            results[index] = StoreResult.of(outcome, parsed)
            if old_key and old_key != parsed.storage_key:
                replaced_keys.append(old_key)
            touched_series.add(series_pk)
        bump_versions(session, touched_series)
        return replaced_keys

    def _insert_new(
        self,
        session: Session,
        fresh: dict[int, ParsedInstance],
        results: list[StoreResult | None],
        series_cache: dict[str, tuple[int, str]],
        careful: bool,
    ) -> dict[int, ParsedInstance]:
        """Insert instances not seen before in one statement; those to retry one by one.

        Not ``careful``, a row another request created first raises IntegrityError out of the
        transaction; ``careful``, the insert runs in a savepoint and its instances come back
        to be recorded one by one.
        """
        rows: dict[int, dict[str, Any]] = {}
        for index, parsed in fresh.items():
            try:
                if careful:
                    series_pk = self._series_in_savepoint(session, parsed, series_cache)
                else:
                    series_pk = self._series_for(session, parsed, series_cache)
            except InvalidInstance as exc:
                results[index] = StoreResult.failed(exc)
                continue
            rows[index] = dict(
                parsed.instance,
                sop_uid=parsed.sop_uid,
                series_pk=series_pk,
                storage_key=parsed.storage_key,
                digest=parsed.digest,
                size=parsed.size,
                metadata_zstd=pack(parsed.metadata_json.encode()),
            )
        if not rows:
            return {}
        if not careful:
            session.connection().execute(_INSERT_INSTANCE, list(rows.values()))
        else:
            try:
                with session.begin_nested():
                    session.connection().execute(_INSERT_INSTANCE, list(rows.values()))
            except IntegrityError:  # a concurrent request stored some of them first
                return {index: fresh[index] for index in rows}
        for index in rows:
            results[index] = StoreResult.of(Outcome.STORED, fresh[index])
        return {}

    def _index_one(
        self,
        session: Session,
        parsed: ParsedInstance,
        known: bool,
        series_cache: dict[str, tuple[int, str]],
    ) -> tuple[Outcome, str | None, int]:
        """Insert (or replace) one instance's row; ``known`` when it was seen before the write."""
        series_pk = self._series_for(session, parsed, series_cache)
        row = None
        if known:
            row = session.scalar(select(Instance).where(Instance.sop_uid == parsed.sop_uid))
        values = dict(
            parsed.instance,
            storage_key=parsed.storage_key,
            digest=parsed.digest,
            size=parsed.size,
            metadata_zstd=pack(parsed.metadata_json.encode()),
        )
        if row is None:
            session.add(Instance(sop_uid=parsed.sop_uid, series_pk=series_pk, **values))
            session.flush()
            return Outcome.STORED, None, series_pk
        if row.digest == parsed.digest:
            return Outcome.ALREADY_STORED, None, series_pk
        if self.duplicate_policy is DuplicatePolicy.REJECT:
            raise DuplicateInstance(parsed.sop_class_uid, parsed.sop_uid)
        old_key = row.storage_key
        for name, value in values.items():
            setattr(row, name, value)
        row.series_pk = series_pk
        session.flush()
        return Outcome.REPLACED, old_key, series_pk

    def _series_in_savepoint(
        self, session: Session, parsed: ParsedInstance, cache: dict[str, tuple[int, str]]
    ) -> int:
        """:meth:`_series_for`, creating rows in a savepoint; once more if a concurrent
        transaction created the same patient, study or series first."""
        if parsed.series_uid in cache:
            return self._series_for(session, parsed, cache)
        try:
            with session.begin_nested():
                return self._series_for(session, parsed, cache)
        except IntegrityError:
            cache.pop(parsed.series_uid, None)
            with session.begin_nested():
                return self._series_for(session, parsed, cache)

    def _series_for(
        self, session: Session, parsed: ParsedInstance, cache: dict[str, tuple[int, str]]
    ) -> int:
        """The primary key of the instance's series, created (with study, patient) if new."""
        if parsed.series_uid not in cache:
            cache[parsed.series_uid] = self._find_or_create_series(session, parsed)
        series_pk, study_uid = cache[parsed.series_uid]
        if study_uid != parsed.study_uid:
            raise InvalidInstance(
                f"series {parsed.series_uid} is already stored in study {study_uid}, "
                f"not in {parsed.study_uid}",
                CANNOT_UNDERSTAND,
                parsed.sop_class_uid,
                parsed.sop_uid,
            )
        return series_pk

    def _find_or_create_series(self, session: Session, parsed: ParsedInstance) -> tuple[int, str]:
        found = (
            session.connection()
            .execute(_SERIES_AND_STUDY, {"series_uid": parsed.series_uid})
            .first()
        )
        if found is not None:
            return found[0], found[1]
        study = session.scalar(select(Study).where(Study.study_uid == parsed.study_uid))
        if study is None:
            patient = session.scalar(
                select(Patient).where(
                    Patient.patient_id == parsed.patient["patient_id"],
                    Patient.issuer == parsed.patient["issuer"],
                )
            )
            if patient is None:
                patient = Patient(**parsed.patient)
                session.add(patient)
                session.flush()
            study = Study(study_uid=parsed.study_uid, patient_pk=patient.pk, **parsed.study)
            session.add(study)
            session.flush()
        series = Series(series_uid=parsed.series_uid, study_pk=study.pk, **parsed.series)
        session.add(series)
        session.flush()
        return series.pk, parsed.study_uid
