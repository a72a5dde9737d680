"""Follow-up tables and their store: sources, findings, corrections, computed results.

Tables (migration 0007), on the one declarative :class:`~radpacs.archive.index.Base`:

- ``followup_source``: one row per stored SEG/RTSTRUCT/SR that was read for follow-up, with
  its patient, the digest of the file read, state (``ok``, ``refused``, or ``skipped`` for
  radpacs's own follow-up report) and a note in words (what was skipped, or why nothing
  could be used);
- ``followup_finding``: what each source measured (:class:`radpacs.followup.Finding`),
  deleted with its source (``ON DELETE CASCADE``);
- ``followup_anchor``: the body centre of each image series a source was made on, computed
  once (reading the series) and shared by every process;
- ``followup_correction``: readers' corrections, never deleted: a withdrawn one keeps who
  withdrew it and when, so the table is their audit trail;
- ``followup_patient``, ``followup_timepoint``, ``followup_lesion``,
  ``followup_measurement``: the last computed result, replaced as a whole in one
  transaction on each re-computation, queryable by patient, study and lesion.

Patients are keyed by Patient ID alone (the issuer is ignored). The store speaks plain JSON
mappings (``Finding.to_json()``, ``PatientFollowup.to_json()``): the archive does not import
the follow-up domain, which sits above it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    delete,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from radpacs.archive.index import Base
from radpacs.errors import NotFound, StorageError

__all__ = ["FollowupStore", "SourceRecord"]


def _now() -> datetime:
    return datetime.now(UTC)


class FollowupSource(Base):
    __tablename__ = "followup_source"

    sop_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_name: Mapped[str] = mapped_column(String(400), default="")
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class FollowupFinding(Base):
    __tablename__ = "followup_finding"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_sop_uid: Mapped[str] = mapped_column(
        ForeignKey("followup_source.sop_uid", ondelete="CASCADE"), index=True
    )
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    data_json: Mapped[str] = mapped_column(Text)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="")
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64), default="")
    volume_mm3: Mapped[float | None] = mapped_column(Float, nullable=True)
    long_axis_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    short_axis_mm: Mapped[float | None] = mapped_column(Float, nullable=True)


class FollowupAnchor(Base):
    """The body centre of an image series (None: not a volume), computed once per series."""

    __tablename__ = "followup_anchor"

    series_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    x: Mapped[float | None] = mapped_column(Float, nullable=True)
    y: Mapped[float | None] = mapped_column(Float, nullable=True)
    z: Mapped[float | None] = mapped_column(Float, nullable=True)


class FollowupCorrection(Base):
    __tablename__ = "followup_correction"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload_json: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    withdrawn_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FollowupPatient(Base):
    __tablename__ = "followup_patient"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_name: Mapped[str] = mapped_column(String(400), default="")
    timepoints: Mapped[int] = mapped_column(Integer, default=0)
    lesions: Mapped[int] = mapped_column(Integer, default=0)
    latest_response: Mapped[str] = mapped_column(String(16), default="")
    result_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class FollowupTimepoint(Base):
    __tablename__ = "followup_timepoint"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(
        ForeignKey("followup_patient.patient_id", ondelete="CASCADE"), index=True
    )
    visit: Mapped[int] = mapped_column(Integer)
    date: Mapped[str] = mapped_column(String(8), default="")
    study_uid: Mapped[str] = mapped_column(String(64), index=True)


class FollowupLesion(Base):
    __tablename__ = "followup_lesion"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(
        ForeignKey("followup_patient.patient_id", ondelete="CASCADE"), index=True
    )
    tracking_id: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    lymph_node: Mapped[bool] = mapped_column(Boolean, default=False)
    organ: Mapped[str] = mapped_column(String(64), default="")
    first_visit: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[str] = mapped_column(String(8))


class FollowupMeasurement(Base):
    __tablename__ = "followup_measurement"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lesion_uid: Mapped[str] = mapped_column(
        ForeignKey("followup_lesion.uid", ondelete="CASCADE"), index=True
    )
    visit: Mapped[int] = mapped_column(Integer)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    volume_mm3: Mapped[float | None] = mapped_column(Float, nullable=True)
    long_axis_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    short_axis_mm: Mapped[float | None] = mapped_column(Float, nullable=True)


class SourceRecord(dict[str, Any]):
    """A source row as a plain mapping (sop_uid, patient_id, kind, state, note, ...)."""


class FollowupStore:
    """Reads and writes the follow-up tables; every method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._write_session = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with self._write_session() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"the follow-up tables refused the change: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with self._session() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read the follow-up tables: {exc}") from exc

    # ------------------------------------------------------------------ sources

    def record_source(
        self,
        sop_uid: str,
        patient_id: str,
        patient_name: str,
        study_uid: str,
        series_uid: str,
        kind: str,
        findings: Sequence[dict[str, Any]],
        note: str = "",
        state: str = "ok",
        digest: str = "",
    ) -> None:
        """Replace what a source contributes: its row and its findings, in one transaction."""
        with self._write() as session:
            session.execute(
                delete(FollowupFinding).where(FollowupFinding.source_sop_uid == sop_uid)
            )
            session.merge(
                FollowupSource(
                    sop_uid=sop_uid,
                    patient_id=patient_id,
                    patient_name=patient_name,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    kind=kind,
                    state=state,
                    note=note,
                    digest=digest,
                    updated_at=_now(),
                )
            )
            session.flush()
            for finding in findings:
                session.add(
                    FollowupFinding(
                        key=finding["key"],
                        source_sop_uid=sop_uid,
                        patient_id=patient_id,
                        data_json=json.dumps(finding),
                        study_uid=finding["study_uid"],
                        study_date=finding["study_date"],
                        kind=finding["kind"],
                        label=finding["label"],
                        volume_mm3=finding.get("volume_mm3"),
                        long_axis_mm=finding.get("long_axis_mm"),
                        short_axis_mm=finding.get("short_axis_mm"),
                    )
                )

    def remove_sources(self, sop_uids: Sequence[str]) -> set[str]:
        """Forget deleted sources and their findings; the patients they belonged to."""
        if not sop_uids:
            return set()
        with self._write() as session:
            rows = session.execute(
                select(FollowupSource.sop_uid, FollowupSource.patient_id).where(
                    FollowupSource.sop_uid.in_(sop_uids)
                )
            ).all()
            found = [row.sop_uid for row in rows]
            if found:
                session.execute(
                    delete(FollowupFinding).where(FollowupFinding.source_sop_uid.in_(found))
                )
                session.execute(delete(FollowupSource).where(FollowupSource.sop_uid.in_(found)))
            return {row.patient_id for row in rows}

    def source_digests(self, study_uid: str) -> dict[str, str]:
        """SOP Instance UID -> file digest of the sources of a study already read."""
        with self._read() as session:
            rows = session.execute(
                select(FollowupSource.sop_uid, FollowupSource.digest).where(
                    FollowupSource.study_uid == study_uid
                )
            ).all()
        return {row.sop_uid: row.digest for row in rows}

    def sources(self, patient_id: str) -> list[SourceRecord]:
        with self._read() as session:
            rows = session.scalars(
                select(FollowupSource)
                .where(FollowupSource.patient_id == patient_id)
                .order_by(FollowupSource.updated_at)
            ).all()
            return [
                SourceRecord(
                    sop_uid=r.sop_uid,
                    study_uid=r.study_uid,
                    series_uid=r.series_uid,
                    kind=r.kind,
                    state=r.state,
                    note=r.note,
                    updated_at=r.updated_at.isoformat() if r.updated_at else None,
                )
                for r in rows
            ]

    def source(self, sop_uid: str) -> SourceRecord | None:
        with self._read() as session:
            row = session.get(FollowupSource, sop_uid)
            if row is None:
                return None
            return SourceRecord(
                sop_uid=row.sop_uid,
                patient_id=row.patient_id,
                kind=row.kind,
                state=row.state,
                note=row.note,
            )

    def findings(self, patient_id: str) -> list[dict[str, Any]]:
        with self._read() as session:
            rows = session.scalars(
                select(FollowupFinding.data_json)
                .where(FollowupFinding.patient_id == patient_id)
                .order_by(FollowupFinding.key)
            ).all()
        return [json.loads(row) for row in rows]

    def patient_name(self, patient_id: str) -> str:
        with self._read() as session:
            name = session.scalar(
                select(FollowupSource.patient_name)
                .where(FollowupSource.patient_id == patient_id)
                .limit(1)
            )
        return name or ""

    # ------------------------------------------------------------------ anchors

    def anchor(self, series_uid: str) -> tuple[bool, tuple[float, float, float] | None]:
        """(known, anchor) of a series: known False when it was never computed."""
        with self._read() as session:
            row = session.get(FollowupAnchor, series_uid)
        if row is None:
            return False, None
        if row.x is None or row.y is None or row.z is None:
            return True, None
        return True, (row.x, row.y, row.z)

    def save_anchor(self, series_uid: str, anchor: tuple[float, float, float] | None) -> None:
        with self._write() as session:
            x, y, z = anchor if anchor is not None else (None, None, None)
            session.merge(FollowupAnchor(series_uid=series_uid, x=x, y=y, z=z))

    # -------------------------------------------------------------- corrections

    def add_correction(
        self, patient_id: str, kind: str, payload: dict[str, str], username: str
    ) -> int:
        with self._write() as session:
            row = FollowupCorrection(
                patient_id=patient_id,
                kind=kind,
                payload_json=json.dumps(payload),
                username=username,
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            return row.id

    def withdraw_correction(self, patient_id: str, correction_id: int, username: str) -> None:
        with self._write() as session:
            row = session.get(FollowupCorrection, correction_id)
            if row is None or row.patient_id != patient_id or row.withdrawn_at is not None:
                raise NotFound(f"patient {patient_id} has no active correction {correction_id}")
            row.withdrawn_by = username
            row.withdrawn_at = _now()

    def corrections(self, patient_id: str, active_only: bool = True) -> list[dict[str, Any]]:
        """Corrections in the order they were made (withdrawn ones too unless active_only)."""
        with self._read() as session:
            query = select(FollowupCorrection).where(FollowupCorrection.patient_id == patient_id)
            if active_only:
                query = query.where(FollowupCorrection.withdrawn_at.is_(None))
            rows = session.scalars(query.order_by(FollowupCorrection.id)).all()
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "payload": json.loads(r.payload_json),
                "username": r.username,
                "created_at": r.created_at.isoformat() if r.created_at else None,
                "withdrawn_by": r.withdrawn_by,
                "withdrawn_at": r.withdrawn_at.isoformat() if r.withdrawn_at else None,
            }
            for r in rows
        ]

    # ------------------------------------------------------------------ results

    @staticmethod
    def _fingerprint_in(session: Session, patient_id: str) -> str:
        keys = session.scalars(
            select(FollowupFinding.key)
            .where(FollowupFinding.patient_id == patient_id)
            .order_by(FollowupFinding.key)
        ).all()
        corrections = session.scalars(
            select(FollowupCorrection.id)
            .where(
                FollowupCorrection.patient_id == patient_id,
                FollowupCorrection.withdrawn_at.is_(None),
            )
            .order_by(FollowupCorrection.id)
        ).all()
        text = "\n".join(keys) + "|" + ",".join(str(c) for c in corrections)
        return hashlib.sha256(text.encode()).hexdigest()

    def fingerprint(self, patient_id: str) -> str:
        """A digest of the patient's findings and active corrections: what a result is of."""
        with self._read() as session:
            return self._fingerprint_in(session, patient_id)

    def save_result(
        self,
        patient_id: str,
        patient_name: str,
        data: dict[str, Any],
        expected: str | None = None,
    ) -> bool:
        """Replace the computed result of a patient (or drop it if nothing is left).

        With ``expected`` (a :meth:`fingerprint` taken before computing), nothing is written
        and False is answered when the findings or corrections changed meanwhile (another
        process recorded a source): the caller computes again. The check and the write are
        one transaction, so a stale result never replaces a newer one.
        """
        with self._write() as session:
            if expected is not None and self._fingerprint_in(session, patient_id) != expected:
                return False
            session.execute(
                delete(FollowupMeasurement).where(
                    FollowupMeasurement.lesion_uid.in_(
                        select(FollowupLesion.uid).where(FollowupLesion.patient_id == patient_id)
                    )
                )
            )
            session.execute(delete(FollowupLesion).where(FollowupLesion.patient_id == patient_id))
            session.execute(
                delete(FollowupTimepoint).where(FollowupTimepoint.patient_id == patient_id)
            )
            session.execute(delete(FollowupPatient).where(FollowupPatient.patient_id == patient_id))
            if not data["timepoints"]:
                return True
            recist = data.get("responses", {}).get("recist") or [{}]
            session.add(
                FollowupPatient(
                    patient_id=patient_id,
                    patient_name=patient_name,
                    timepoints=len(data["timepoints"]),
                    lesions=len(data["lesions"]),
                    latest_response=recist[-1].get("category", ""),
                    result_json=json.dumps(data),
                    updated_at=_now(),
                )
            )
            session.flush()
            first_study: dict[int, str] = {}
            for tp in data["timepoints"]:
                first_study[tp["visit"]] = tp["study_uids"][0] if tp["study_uids"] else ""
                for study_uid in tp["study_uids"]:
                    session.add(
                        FollowupTimepoint(
                            patient_id=patient_id,
                            visit=tp["visit"],
                            date=tp["date"],
                            study_uid=study_uid,
                        )
                    )
            for lesion in data["lesions"]:
                session.add(
                    FollowupLesion(
                        uid=lesion["uid"],
                        patient_id=patient_id,
                        tracking_id=lesion["tracking_id"],
                        label=lesion["label"],
                        role=lesion["role"],
                        lymph_node=lesion["lymph_node"],
                        organ=lesion["organ"][:64],
                        first_visit=lesion["first_visit"],
                        confidence=lesion["confidence"],
                    )
                )
            session.flush()
            for lesion in data["lesions"]:
                for m in lesion["measurements"]:
                    if m["status"] == "absent":
                        continue
                    used = [f for f in m.get("findings", []) if f.get("used")]
                    session.add(
                        FollowupMeasurement(
                            lesion_uid=lesion["uid"],
                            visit=m["visit"],
                            study_uid=used[0]["study_uid"] if used else first_study[m["visit"]],
                            status=m["status"],
                            volume_mm3=m.get("volume_mm3"),
                            long_axis_mm=m.get("long_axis_mm"),
                            short_axis_mm=m.get("short_axis_mm"),
                        )
                    )
        return True

    def result(self, patient_id: str) -> dict[str, Any]:
        with self._read() as session:
            row = session.get(FollowupPatient, patient_id)
        if row is None:
            raise NotFound(f"no follow-up for patient {patient_id!r}")
        data: dict[str, Any] = json.loads(row.result_json)
        data["patient_name"] = row.patient_name
        data["updated_at"] = row.updated_at.isoformat() if row.updated_at else None
        return data

    def patients(
        self, search: str = "", offset: int = 0, limit: int = 50
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of patients (ID or name containing ``search``) and the total count."""
        condition: ColumnElement[bool] = true()
        if search:
            pattern = f"%{search.lower()}%"
            condition = or_(
                func.lower(FollowupPatient.patient_id).like(pattern),
                func.lower(FollowupPatient.patient_name).like(pattern),
            )
        with self._read() as session:
            total = session.scalar(
                select(func.count()).select_from(FollowupPatient).where(condition)
            )
            rows = session.execute(
                select(
                    FollowupPatient.patient_id,
                    FollowupPatient.patient_name,
                    FollowupPatient.timepoints,
                    FollowupPatient.lesions,
                    FollowupPatient.latest_response,
                    FollowupPatient.updated_at,
                )
                .where(condition)
                .order_by(FollowupPatient.patient_id)
                .offset(offset)
                .limit(limit)
            ).all()
        return [
            {
                "patient_id": r.patient_id,
                "patient_name": r.patient_name,
                "timepoints": r.timepoints,
                "lesions": r.lesions,
                "latest_response": r.latest_response,
                "updated_at": r.updated_at.isoformat() if r.updated_at else None,
            }
            for r in rows
        ], int(total or 0)

    def studies(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's studies in the follow-up, with their visit number and date."""
        with self._read() as session:
            rows = (
                session.execute(
                    select(FollowupTimepoint)
                    .where(FollowupTimepoint.patient_id == patient_id)
                    .order_by(FollowupTimepoint.visit, FollowupTimepoint.study_uid)
                )
                .scalars()
                .all()
            )
        return [{"study_uid": r.study_uid, "visit": r.visit, "date": r.date} for r in rows]

    def lesions_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        """Lesions measured (or found gone) in one study, with their values there."""
        with self._read() as session:
            rows = session.execute(
                select(FollowupMeasurement, FollowupLesion)
                .join(FollowupLesion, FollowupLesion.uid == FollowupMeasurement.lesion_uid)
                .where(FollowupMeasurement.study_uid == study_uid)
                .order_by(FollowupLesion.tracking_id)
            ).all()
        return [
            {
                "uid": lesion.uid,
                "patient_id": lesion.patient_id,
                "tracking_id": lesion.tracking_id,
                "label": lesion.label,
                "role": lesion.role,
                "visit": m.visit,
                "status": m.status,
                "volume_mm3": m.volume_mm3,
                "long_axis_mm": m.long_axis_mm,
                "short_axis_mm": m.short_axis_mm,
            }
            for m, lesion in rows
        ]

    def patient_ids(self) -> list[str]:
        with self._read() as session:
            return list(session.scalars(select(FollowupSource.patient_id).distinct()))
