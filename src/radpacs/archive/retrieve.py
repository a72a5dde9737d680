"""Retrieval (PS3.18 10.4 WADO-RS: files, metadata and their versions), delete, and the
check of files against the index."""

from __future__ import annotations

import io
from collections.abc import Generator, Sequence
from functools import lru_cache
from typing import IO, Any

import pydicom
from pydicom import Dataset
from sqlalchemy import Engine, bindparam, delete, func, select
from sqlalchemy.orm import Session, defer, sessionmaker

from radpacs.archive.blobs import BlobStore
from radpacs.archive.index import Instance, Patient, Series, Study
from radpacs.archive.metadata_codec import unpack
from radpacs.archive.quality import QualityControlRow
from radpacs.archive.results import CheckReport, InstanceFile
from radpacs.archive.rows import bump_versions, delete_unreferenced, describe, instance_rows
from radpacs.errors import NotFound

__all__ = ["Retrieval"]


@lru_cache(maxsize=4)
def _instance_files_statement(by_series: bool, by_instance: bool) -> Any:
    """:func:`instance_rows` for :meth:`Retrieval.instance_files`, with parameters ``study``,
    ``series``, ``sop``, built once per shape (building costs more than running it)."""
    return instance_rows(
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


class Retrieval:
    """Reads stored files and metadata, deletes resources, checks files against the index."""

    def __init__(
        self,
        engine: Engine,
        blobs: BlobStore,
        read: sessionmaker[Session],
        write: sessionmaker[Session],
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self._read = read
        self._write = write

    def instance_files(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceFile]:
        """The stored files of a study, series or instance, in series and instance order."""
        statement = _instance_files_statement(series_uid is not None, sop_uid is not None)
        parameters = {"study": study_uid, "series": series_uid, "sop": sop_uid}
        with self.engine.connect() as connection:  # plain rows: no ORM objects to build
            rows = connection.execute(statement, parameters)
            files = [InstanceFile(*row) for row in rows]
        if not files:
            raise NotFound(f"no {describe(study_uid, series_uid, sop_uid)}")
        return files

    def locate(self, series_uid: str | None = None, sop_uid: str | None = None) -> tuple[str, str]:
        """The (study, series) UIDs above a series or an instance; NotFound if not stored."""
        statement = select(Study.study_uid, Series.series_uid).join(
            Series, Series.study_pk == Study.pk
        )
        if sop_uid is not None:
            statement = statement.join(Instance, Instance.series_pk == Series.pk).where(
                Instance.sop_uid == sop_uid
            )
            what = f"instance {sop_uid}"
        else:
            statement = statement.where(Series.series_uid == series_uid)
            what = f"series {series_uid}"
        with self.engine.connect() as connection:
            row = connection.execute(statement.limit(1)).first()
        if row is None:
            raise NotFound(f"no {what}")
        return str(row[0]), str(row[1])

    def metadata_version(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> str:
        """A token that changes whenever the metadata of this resource changes: the instance's
        digest, or the series' or study's version with a time, so that a study deleted and
        stored again (its version counting from 0 again) never reuses an old token (the
        metadata caches of every process are keyed by it)."""
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
                row = session.execute(
                    select(Series.version, Series.updated_at)
                    .join(Study, Series.study_pk == Study.pk)
                    .where(Series.series_uid == series_uid, Study.study_uid == study_uid)
                ).first()
                version = None if row is None else f"{row[0]}@{row[1].isoformat()}"
            else:
                row = session.execute(
                    select(Study.version, Study.created_at).where(Study.study_uid == study_uid)
                ).first()
                version = None if row is None else f"{row[0]}@{row[1].isoformat()}"
        if version is None:
            raise NotFound(f"no {describe(study_uid, series_uid, sop_uid)}")
        return str(version)

    def metadata(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> bytes:
        """The DICOM JSON metadata array (BulkDataURIs relative to the DICOMweb root)."""
        with self._read() as session:
            statement = instance_rows(study_uid, series_uid, sop_uid, Instance.metadata_zstd)
            frames = session.scalars(statement).all()
        if not frames:
            raise NotFound(f"no {describe(study_uid, series_uid, sop_uid)}")
        return b"[" + b",".join(unpack(frame) for frame in frames) + b"]"

    def open(self, file: InstanceFile) -> IO[bytes]:
        """A binary file object with the stored PS3.10 bytes."""
        return self.blobs.open(file.storage_key)

    def open_each(self, files: Sequence[InstanceFile]) -> Generator[IO[bytes]]:
        """The stored files, opened one at a time in order as the iterator advances; a store
        with ``open_many`` (S3) reads the next ones ahead meanwhile. Close the iterator when
        stopping early."""
        open_many = getattr(self.blobs, "open_many", None)
        if open_many is not None:
            streams: Generator[IO[bytes]] = open_many([(f.storage_key, f.size) for f in files])
            return streams
        return (self.blobs.open(file.storage_key) for file in files)

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

    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> int:
        """Remove a study, series or instance: index rows (and their quality-control statuses)
        first, then files. Returns the count."""
        with self._write() as session, session.begin():
            targets = session.execute(
                instance_rows(study_uid, series_uid, sop_uid).options(defer(Instance.metadata_zstd))
            ).all()
            if not targets:
                raise NotFound(f"no {describe(study_uid, series_uid, sop_uid)}")
            keys = [row.storage_key for row, _, _ in targets]
            series_pks = {row.series_pk for row, _, _ in targets}
            session.execute(delete(Instance).where(Instance.pk.in_([r.pk for r, _, _ in targets])))
            session.execute(
                delete(QualityControlRow).where(*_qc_rows(study_uid, series_uid, sop_uid))
            )
            bump_versions(session, series_pks)
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
        for key in keys:
            delete_unreferenced(self._read, self.blobs, key)
        return len(keys)

    def check(self, clean: bool = False, temporary_grace_s: float = 600.0) -> CheckReport:
        """Compare the blob store with the index and list temporary files that interrupted
        writes left; with ``clean``, remove orphan files, and temporary files not written for
        ``temporary_grace_s`` seconds (a younger one may be a write in progress)."""
        with self._read() as session:
            indexed = dict(session.execute(select(Instance.storage_key, Instance.sop_uid)).all())
        report = CheckReport()
        stored = set(self.blobs.keys())  # listed after the index read: one listing, not a
        # request per instance (S3); a file is stored before its row commits, so none is missed
        report.orphan_keys = sorted(key for key in stored if key not in indexed)
        report.missing = [sop for key, sop in indexed.items() if key not in stored]
        temporaries = list(self.blobs.temporaries())
        report.temporaries = [name for name, _age in temporaries]
        if clean:
            for key in report.orphan_keys:
                delete_unreferenced(self._read, self.blobs, key)
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


def _qc_rows(study_uid: str, series_uid: str | None, sop_uid: str | None) -> list[Any]:
    """The conditions that pick the quality-control rows of a study, series or instance."""
    conditions = [QualityControlRow.study_uid == study_uid]
    if series_uid is not None:
        conditions.append(QualityControlRow.series_uid == series_uid)
    if sop_uid is not None:
        conditions.append(QualityControlRow.sop_uid == sop_uid)
    return conditions
