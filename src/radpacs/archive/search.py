"""QIDO-RS search (PS3.18 10.6): one SELECT over the joined tables for the page asked
(``limit + 1`` rows to know whether more exist), then one grouped query for the counts and
modalities of that page, and includefield attributes from stored metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, sessionmaker

from radpacs.archive.index import Instance, Patient, Series, Study
from radpacs.archive.metadata_codec import unpack
from radpacs.archive.query import ATTRIBUTES, Kind, Level, Query
from radpacs.archive.results import JsonObject, SearchResult
from radpacs.dicom.json import attribute

__all__ = ["Search"]


class Search:
    """Answers QIDO-RS queries from the index."""

    def __init__(self, read: sessionmaker[Session]) -> None:
        self._read = read

    def search(self, query: Query) -> SearchResult:
        """One page of matches for a QIDO-RS query, as DICOM JSON objects.

        Indexed keys are SQL conditions; keys the index does not hold (``query.residual``)
        are tested on the stored metadata of the candidates' instances, in order, until the
        page is full."""
        statement = self._search_statement(query)
        with self._read() as session:
            rows: Sequence[Any]
            if query.residual:
                rows = self._residual_rows(session, query, statement)
            else:
                rows = session.execute(statement.offset(query.offset).limit(query.limit + 1)).all()
            has_more = len(rows) > query.limit
            rows = rows[: query.limit]
            matches = [self._match_json(query, row) for row in rows]
            self._add_computed(session, query, rows, matches)
            if query.extra_tags or (query.include_all and query.level is Level.INSTANCE):
                self._add_from_metadata(session, query, rows, matches)
        return SearchResult(matches, has_more)

    def search_patients(self, query: Query) -> SearchResult:
        """One page of patients matching ``query`` (patient conditions only, see
        :func:`radpacs.archive.query.parse_patient_query`), with their number of studies."""
        statement = (
            select(Patient, func.count(Study.pk))
            .join(Study, Study.patient_pk == Patient.pk)
            .where(*query.conditions)
            .group_by(Patient.pk)
            .order_by(Patient.patient_name, Patient.patient_id, Patient.pk)
        )
        with self._read() as session:
            rows = session.execute(statement.offset(query.offset).limit(query.limit + 1)).all()
        matches = [
            {
                "00100010": attribute("PN", patient.patient_name),
                "00100020": attribute("LO", patient.patient_id),
                "00100021": attribute("LO", patient.issuer),
                "00100030": attribute("DA", patient.birth_date),
                "00100040": attribute("CS", patient.sex),
                "00201200": attribute("IS", studies),
            }
            for patient, studies in rows[: query.limit]
        ]
        return SearchResult(matches, len(rows) > query.limit)

    @staticmethod
    def _residual_rows(session: Session, query: Query, statement: Any) -> list[Any]:
        """The rows of ``statement`` one of whose instances passes every residual test, from
        ``query.offset`` on, at most ``query.limit + 1`` of them."""
        kept: list[Any] = []
        skip = query.offset
        result = session.execute(statement)
        for batch in result.partitions(200):
            pks = [row[0].pk for row in batch]
            documents: Any
            if query.level is Level.INSTANCE:
                documents = select(Instance.pk, Instance.metadata_zstd).where(Instance.pk.in_(pks))
            elif query.level is Level.SERIES:
                documents = select(Instance.series_pk, Instance.metadata_zstd).where(
                    Instance.series_pk.in_(pks)
                )
            else:
                documents = (
                    select(Series.study_pk, Instance.metadata_zstd)
                    .join(Instance, Instance.series_pk == Series.pk)
                    .where(Series.study_pk.in_(pks))
                )
            passing: set[int] = set()
            for pk, frame in session.execute(documents):
                if pk in passing:
                    continue
                document = json.loads(unpack(frame))
                if all(test(document) for test in query.residual):
                    passing.add(pk)
            for row in batch:
                if row[0].pk not in passing:
                    continue
                if skip:
                    skip -= 1
                    continue
                kept.append(row)
                if len(kept) > query.limit:
                    return kept
        return kept

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
                .options(defer(Instance.metadata_zstd))
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
                select(Instance.pk, Instance.metadata_zstd).where(
                    Instance.pk.in_(list(representative.values()))
                )
            ).all()
        )
        everything = query.include_all and query.level is Level.INSTANCE
        wanted = {f"{tag:08X}" for tag in query.extra_tags}
        for pk, match in zip(pks, matches, strict=True):
            frame = metadata.get(representative.get(pk, -1))
            if frame is None:
                continue
            stored: JsonObject = json.loads(unpack(frame))
            for key, value in stored.items():
                if (everything or key in wanted) and key not in match:
                    match[key] = value
