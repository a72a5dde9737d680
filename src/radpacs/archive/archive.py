"""Archive: the only way into and out of storage (index + blob store).

``store_many`` checks each object, writes its file durably, then records it in one index
transaction, so a crash leaves at most an orphan file (reported by :meth:`Archive.check`), never
an index row without its file; a file the index then refuses (a concurrent store of other
content under the same SOP Instance UID) is removed again. The same object twice is stored
once; a different object under a known SOP Instance UID follows the duplicate policy.
Listeners registered with :meth:`Archive.add_listener` hear about every stored batch after it
commits.

Example::

    archive = Archive.from_settings(load_settings(data_dir="/tmp/pacs"))
    [result] = archive.store_many([open("ct.dcm", "rb").read()])
    result.outcome  # Outcome.STORED
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import IO, Any, Self, cast

import pydicom
from pydicom import Dataset
from sqlalchemy import Engine, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, defer, sessionmaker
from sqlalchemy.sql.elements import BindParameter

from radpacs.archive.blobs import BlobStore, FolderBlobStore
from radpacs.archive.database import create_index_engine, migrate
from radpacs.archive.index import Instance, Patient, Series, Study, utc_now
from radpacs.archive.ingest import CANNOT_UNDERSTAND, ParsedInstance, parse_instance
from radpacs.archive.query import ATTRIBUTES, Kind, Level, Query
from radpacs.dicom.json import attribute
from radpacs.errors import DuplicateInstance, InvalidInstance, NotFound, StorageError
from radpacs.settings import DuplicatePolicy, Settings

__all__ = ["Archive", "CheckReport", "InstanceFile", "Outcome", "SearchResult", "StoreResult"]

log = logging.getLogger(__name__)
JsonObject = dict[str, Any]


class Outcome(StrEnum):
    """What happened to one object of a store request."""

    STORED = "stored"
    ALREADY_STORED = "already_stored"
    REPLACED = "replaced"
    FAILED = "failed"


@dataclass(frozen=True)
class StoreResult:
    """The fate of one object; ``failure_reason`` is set when ``outcome`` is FAILED."""

    outcome: Outcome
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    failure_reason: int | None = None
    message: str = ""

    @classmethod
    def failed(cls, error: InvalidInstance) -> StoreResult:
        return cls(
            Outcome.FAILED,
            error.sop_class_uid,
            error.sop_instance_uid,
            failure_reason=error.failure_reason,
            message=str(error),
        )

    @classmethod
    def of(cls, outcome: Outcome, parsed: ParsedInstance, message: str = "") -> StoreResult:
        return cls(
            outcome,
            parsed.sop_class_uid,
            parsed.sop_uid,
            parsed.study_uid,
            parsed.series_uid,
            message=message,
        )


@dataclass(frozen=True)
class InstanceFile:
    """Where a stored instance is and what a retrieve needs to know about it."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    storage_key: str
    size: int
    number_of_frames: int | None
    digest: str


@dataclass
class SearchResult:
    """One page of QIDO-RS results and whether more results exist past it."""

    matches: list[JsonObject]
    has_more: bool


@dataclass
class CheckReport:
    """Files without index rows (orphans), index rows without files (missing), and temporary
    files of interrupted writes."""

    orphan_keys: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    cleaned: int = 0
    temporaries: list[str] = field(default_factory=list)
    temporaries_cleaned: int = 0


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
_BUMPED_SERIES = Series.pk.in_(bindparam("series_pks", expanding=True))
_BUMP_SERIES = (
    update(Series)
    .where(_BUMPED_SERIES)
    .values(version=Series.version + 1, updated_at=bindparam("now"))
)
_BUMP_STUDIES = (
    update(Study)
    .where(Study.pk.in_(select(Series.study_pk).where(_BUMPED_SERIES).scalar_subquery()))
    .values(version=Study.version + 1, updated_at=bindparam("now"))
)


class Archive:
    """Stores, finds, serves and deletes DICOM instances."""

    def __init__(
        self,
        engine: Engine,
        blobs: BlobStore,
        duplicate_policy: DuplicatePolicy = DuplicatePolicy.REJECT,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.duplicate_policy = DuplicatePolicy(duplicate_policy)
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self._listeners: list[Callable[[list[StoreResult]], None]] = []
        self._delete_listeners: list[Callable[[list[str]], None]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Archive:
        """Open (and migrate) the index and the blob folder that ``settings`` name."""
        engine = create_index_engine(settings.resolved_database_url)
        try:
            migrate(engine)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open the index database: {exc}") from exc
        return cls(engine, FolderBlobStore(settings.blob_dir), settings.duplicate_policy)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add_listener(self, listener: Callable[[list[StoreResult]], None]) -> None:
        """Call ``listener`` with the results of every store batch after it commits."""
        self._listeners.append(listener)

    def add_delete_listener(self, listener: Callable[[list[str]], None]) -> None:
        """Call ``listener`` with the SOP Instance UIDs of every delete after it commits."""
        self._delete_listeners.append(listener)

    # ----------------------------------------------------------------- storing

    def store_many(
        self, payloads: Sequence[bytes], expected_study_uid: str | None = None
    ) -> list[StoreResult]:
        """Store PS3.10 files; one result per payload, in order. Bad ones fail alone."""
        results: list[StoreResult | None] = [None] * len(payloads)
        planned: dict[int, ParsedInstance] = {}
        for index, data in enumerate(payloads):
            try:
                planned[index] = parse_instance(data, expected_study_uid)
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
                self._delete_unreferenced(key)
            raise
        refused = {
            parsed.storage_key
            for index, parsed in to_write.items()
            if (result := results[index]) is not None and result.outcome is Outcome.FAILED
        }
        for key in [*replaced_keys, *refused]:  # a refused store leaves no file behind
            self._delete_unreferenced(key)

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
            except IntegrityError as exc:
                if careful:
                    raise StorageError(f"the index refused the store: {exc}") from exc
            except SQLAlchemyError as exc:
                raise StorageError(f"the index refused the store: {exc}") from exc
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
        self._bump_versions(session, touched_series)
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
                size=len(parsed.data),
                metadata_json=parsed.metadata_json,
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
            size=len(parsed.data),
            metadata_json=parsed.metadata_json,
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

    @staticmethod
    def _bump_versions(session: Session, series_pks: set[int]) -> None:
        if not series_pks:
            return
        parameters = {"series_pks": sorted(series_pks), "now": utc_now()}
        connection = session.connection()  # Core statements: no ORM bookkeeping
        connection.execute(_BUMP_SERIES, parameters)
        connection.execute(_BUMP_STUDIES, parameters)

    def _delete_unreferenced(self, key: str) -> None:
        with self._read() as session:
            referenced = session.scalar(select(Instance.pk).where(Instance.storage_key == key))
        if referenced is None:
            try:
                self.blobs.delete(key)
            except StorageError:
                log.warning("could not remove unreferenced blob %s; `radpacs check` will", key)

    # --------------------------------------------------------------- searching

    def search(self, query: Query) -> SearchResult:
        """One page of matches for a QIDO-RS query, as DICOM JSON objects."""
        statement = self._search_statement(query)
        with self._read() as session:
            rows = session.execute(statement.offset(query.offset).limit(query.limit + 1)).all()
            has_more = len(rows) > query.limit
            rows = rows[: query.limit]
            matches = [self._match_json(query, row) for row in rows]
            self._add_computed(session, query, rows, matches)
            if query.extra_tags or (query.include_all and query.level is Level.INSTANCE):
                self._add_from_metadata(session, query, rows, matches)
        return SearchResult(matches, has_more)

    @staticmethod
    def _search_statement(query: Query) -> Any:
        statement: Any
        order: list[Any]
        if query.level is Level.STUDY:
            statement = select(Study, Patient).join(Patient, Study.patient_pk == Patient.pk)
            order = [Study.study_date.desc(), Study.study_time.desc(), Study.pk.desc()]
        elif query.level is Level.SERIES:
            statement = (
                select(Series, Study, Patient)
                .join(Study, Series.study_pk == Study.pk)
                .join(Patient, Study.patient_pk == Patient.pk)
            )
            order = [Study.pk, Series.series_number, Series.pk]
        else:
            statement = (
                select(Instance, Series, Study, Patient)
                .join(Series, Instance.series_pk == Series.pk)
                .join(Study, Series.study_pk == Study.pk)
                .join(Patient, Study.patient_pk == Patient.pk)
                .options(defer(Instance.metadata_json))
            )
            order = [Series.pk, Instance.instance_number, Instance.pk]
        return statement.where(*query.conditions).order_by(*order)

    @staticmethod
    def _match_json(query: Query, row: Any) -> JsonObject:
        entities: dict[Any, Any] = {type(entity): entity for entity in row}
        result: JsonObject = {}
        for attr in ATTRIBUTES.values():
            if not query.returned(attr) or attr.column is None:
                continue
            entity = entities.get(attr.column.class_)
            if entity is None:
                continue
            value = getattr(entity, attr.column.key)
            if attr.kind is Kind.TIME and value:
                value = value.rstrip("0").rstrip(".") if value.endswith("0") else value
                value = value.ljust(6, "0")
            elif attr.kind is Kind.DATETIME and value:
                value = value.removesuffix(".000000")
            result[f"{attr.tag:08X}"] = attribute(attr.vr, value)
        return result

    @staticmethod
    def _add_computed(
        session: Session, query: Query, rows: Sequence[Any], matches: list[JsonObject]
    ) -> None:
        if not rows or query.level is Level.INSTANCE:
            return
        if query.level is Level.STUDY:
            pks = [row[0].pk for row in rows]
            per_series = session.execute(
                select(Series.study_pk, Series.modality, func.count(Instance.pk))
                .outerjoin(Instance, Instance.series_pk == Series.pk)
                .where(Series.study_pk.in_(pks))
                .group_by(Series.study_pk, Series.pk, Series.modality)
            ).all()
            series_counts: dict[int, int] = {}
            instance_counts: dict[int, int] = {}
            modalities: dict[int, set[str]] = {}
            for study_pk, modality, instances in per_series:
                series_counts[study_pk] = series_counts.get(study_pk, 0) + 1
                instance_counts[study_pk] = instance_counts.get(study_pk, 0) + instances
                if modality:
                    modalities.setdefault(study_pk, set()).add(modality)
            for pk, match in zip(pks, matches, strict=True):
                match["00080061"] = attribute("CS", *sorted(modalities.get(pk, ())))
                match["00201206"] = attribute("IS", series_counts.get(pk, 0))
                match["00201208"] = attribute("IS", instance_counts.get(pk, 0))
        else:
            pks = [row[0].pk for row in rows]
            counts = dict(
                session.execute(
                    select(Instance.series_pk, func.count(Instance.pk))
                    .where(Instance.series_pk.in_(pks))
                    .group_by(Instance.series_pk)
                ).all()
            )
            for pk, match in zip(pks, matches, strict=True):
                match["00201209"] = attribute("IS", counts.get(pk, 0))

    @staticmethod
    def _add_from_metadata(
        session: Session, query: Query, rows: Sequence[Any], matches: list[JsonObject]
    ) -> None:
        """Fill includefield attributes the index lacks from a stored instance of each match."""
        pks = [row[0].pk for row in rows]
        if query.level is Level.INSTANCE:
            representative = {pk: pk for pk in pks}
        elif query.level is Level.SERIES:
            representative = dict(
                session.execute(
                    select(Instance.series_pk, func.min(Instance.pk))
                    .where(Instance.series_pk.in_(pks))
                    .group_by(Instance.series_pk)
                ).all()
            )
        else:
            representative = dict(
                session.execute(
                    select(Series.study_pk, func.min(Instance.pk))
                    .join(Instance, Instance.series_pk == Series.pk)
                    .where(Series.study_pk.in_(pks))
                    .group_by(Series.study_pk)
                ).all()
            )
        metadata = dict(
            session.execute(
                select(Instance.pk, Instance.metadata_json).where(
                    Instance.pk.in_(list(representative.values()))
                )
            ).all()
        )
        everything = query.include_all and query.level is Level.INSTANCE
        wanted = {f"{tag:08X}" for tag in query.extra_tags}
        for pk, match in zip(pks, matches, strict=True):
            text = metadata.get(representative.get(pk, -1))
            if text is None:
                continue
            stored: JsonObject = json.loads(text)
            for key, value in stored.items():
                if (everything or key in wanted) and key not in match:
                    match[key] = value

    # ---------------------------------------------------------------- reading

    @staticmethod
    def _instance_rows(
        study_uid: str | BindParameter[str],
        series_uid: str | BindParameter[str] | None,
        sop_uid: str | BindParameter[str] | None,
        *columns: Any,
    ) -> Any:
        """SELECT ``columns`` (default: the Instance row with its series and study UIDs) of
        the instances of a study, series or instance, in series and instance order."""
        statement = (
            select(*(columns or (Instance, Series.series_uid, Study.study_uid)))
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .where(Study.study_uid == study_uid)
        )
        if series_uid is not None:
            statement = statement.where(Series.series_uid == series_uid)
        if sop_uid is not None:
            statement = statement.where(Instance.sop_uid == sop_uid)
        return statement.order_by(
            Series.series_number, Series.pk, Instance.instance_number, Instance.pk
        )

    @staticmethod
    @lru_cache(maxsize=4)
    def _instance_files_statement(by_series: bool, by_instance: bool) -> Any:
        """:meth:`_instance_rows` for :meth:`instance_files`, with parameters ``study``,
        ``series``, ``sop``, built once per shape (building costs more than running it)."""
        return Archive._instance_rows(
            bindparam("study"),
            bindparam("series") if by_series else None,
            bindparam("sop") if by_instance else None,
            Study.study_uid,
            Series.series_uid,
            Instance.sop_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.storage_key,
            Instance.size,
            Instance.number_of_frames,
            Instance.digest,
        )

    @staticmethod
    def _describe(study_uid: str, series_uid: str | None, sop_uid: str | None) -> str:
        if sop_uid is not None:
            return f"instance {sop_uid} in series {series_uid} of study {study_uid}"
        if series_uid is not None:
            return f"series {series_uid} in study {study_uid}"
        return f"study {study_uid}"

    def instance_files(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceFile]:
        """The stored files of a study, series or instance, in series and instance order."""
        statement = self._instance_files_statement(series_uid is not None, sop_uid is not None)
        parameters = {"study": study_uid, "series": series_uid, "sop": sop_uid}
        with self.engine.connect() as connection:  # plain rows: no ORM objects to build
            rows = connection.execute(statement, parameters)
            files = [InstanceFile(*row) for row in rows]
        if not files:
            raise NotFound(f"no {self._describe(study_uid, series_uid, sop_uid)}")
        return files

    def metadata_version(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> str:
        """A token that changes whenever the metadata of this resource changes."""
        version: object
        with self._read() as session:
            if sop_uid is not None:
                statement = (
                    select(Instance.digest)
                    .join(Series, Instance.series_pk == Series.pk)
                    .join(Study, Series.study_pk == Study.pk)
                    .where(Instance.sop_uid == sop_uid, Study.study_uid == study_uid)
                )
                if series_uid is not None:
                    statement = statement.where(Series.series_uid == series_uid)
                version = session.scalar(statement)
            elif series_uid is not None:
                version = session.scalar(
                    select(Series.version)
                    .join(Study, Series.study_pk == Study.pk)
                    .where(Series.series_uid == series_uid, Study.study_uid == study_uid)
                )
            else:
                version = session.scalar(select(Study.version).where(Study.study_uid == study_uid))
        if version is None:
            raise NotFound(f"no {self._describe(study_uid, series_uid, sop_uid)}")
        return str(version)

    def metadata(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> bytes:
        """The DICOM JSON metadata array (BulkDataURIs relative to the DICOMweb root)."""
        with self._read() as session:
            statement = self._instance_rows(study_uid, series_uid, sop_uid, Instance.metadata_json)
            texts = session.scalars(statement).all()
        if not texts:
            raise NotFound(f"no {self._describe(study_uid, series_uid, sop_uid)}")
        return ("[" + ",".join(texts) + "]").encode()

    def open(self, file: InstanceFile) -> IO[bytes]:
        """A binary file object with the stored PS3.10 bytes."""
        return self.blobs.open(file.storage_key)

    def read_dataset(self, sop_instance_uid: str) -> Dataset:
        """The stored instance as a pydicom Dataset; NotFound if unknown."""
        with self._read() as session:
            key = session.scalar(
                select(Instance.storage_key).where(Instance.sop_uid == sop_instance_uid)
            )
        if key is None:
            raise NotFound(f"no instance {sop_instance_uid}")
        return self._parse(key)

    def read_file(self, file: InstanceFile) -> Dataset:
        """A stored instance (from :meth:`instance_files`) as a pydicom Dataset."""
        return self._parse(file.storage_key)

    def _parse(self, key: str) -> Dataset:
        with self.blobs.open(key) as stream:
            return pydicom.dcmread(io.BytesIO(stream.read()))

    # ---------------------------------------------------------------- deleting

    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> int:
        """Remove a study, series or instance: index rows first, then files. Returns the count."""
        try:
            with self._write() as session, session.begin():
                targets = session.execute(
                    self._instance_rows(study_uid, series_uid, sop_uid).options(
                        defer(Instance.metadata_json)
                    )
                ).all()
                if not targets:
                    raise NotFound(f"no {self._describe(study_uid, series_uid, sop_uid)}")
                keys = [row.storage_key for row, _, _ in targets]
                deleted = [row.sop_uid for row, _, _ in targets]
                series_pks = {row.series_pk for row, _, _ in targets}
                session.execute(
                    delete(Instance).where(Instance.pk.in_([r.pk for r, _, _ in targets]))
                )
                self._bump_versions(session, series_pks)
                empty_series = select(Series.pk).where(
                    Series.pk.in_(series_pks),
                    ~select(Instance.pk).where(Instance.series_pk == Series.pk).exists(),
                )
                study_pks = set(
                    session.scalars(select(Series.study_pk).where(Series.pk.in_(series_pks)))
                )
                session.execute(delete(Series).where(Series.pk.in_(empty_series.scalar_subquery())))
                session.execute(
                    delete(Study).where(
                        Study.pk.in_(study_pks),
                        ~select(Series.pk).where(Series.study_pk == Study.pk).exists(),
                    )
                )
                session.execute(
                    delete(Patient).where(
                        ~select(Study.pk).where(Study.patient_pk == Patient.pk).exists()
                    )
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"the index refused the delete: {exc}") from exc
        for key in keys:
            self._delete_unreferenced(key)
        for listener in self._delete_listeners:
            try:
                listener(deleted)
            except Exception:  # a listener must never undo a delete
                log.exception("delete listener failed")
        return len(keys)

    # -------------------------------------------------------------- checking

    def check(self, clean: bool = False, temporary_grace_s: float = 600.0) -> CheckReport:
        """Compare the blob store with the index and list temporary files that interrupted
        writes left; with ``clean``, remove orphan files, and temporary files not written for
        ``temporary_grace_s`` seconds (a younger one may be a write in progress)."""
        with self._read() as session:
            indexed = dict(session.execute(select(Instance.storage_key, Instance.sop_uid)).all())
        report = CheckReport()
        for key in self.blobs.keys():  # noqa: SIM118 - a BlobStore is not a mapping
            if key not in indexed:
                report.orphan_keys.append(key)
        report.missing = [sop for key, sop in indexed.items() if not self.blobs.exists(key)]
        temporaries = list(self.blobs.temporaries())
        report.temporaries = [name for name, _age in temporaries]
        if clean:
            for key in report.orphan_keys:
                self._delete_unreferenced(key)
                report.cleaned += 1
            for name, age in temporaries:
                if age >= temporary_grace_s:
                    self.blobs.remove_temporary(name)
                    report.temporaries_cleaned += 1
        return report

    def counts(self) -> dict[str, int]:
        """How many patients, studies, series and instances the index holds."""
        with self._read() as session:
            return {
                name: session.scalar(select(func.count()).select_from(table)) or 0
                for name, table in (
                    ("patients", Patient),
                    ("studies", Study),
                    ("series", Series),
                    ("instances", Instance),
                )
            }
