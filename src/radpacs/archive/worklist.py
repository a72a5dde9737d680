"""The modality worklist: scheduled procedure steps kept in the index (PS3.4 K.6.1).

Each :class:`WorklistItem` is one Scheduled Procedure Step of one Requested Procedure. The
REST API adds, lists and removes items; the DIMSE server answers Modality Worklist C-FIND
from them. Matching uses the QIDO-RS rules of :mod:`radpacs.archive.query` (wildcards,
date and time ranges, case-insensitive person names), on the attributes a modality asks
by: PatientName, PatientID, AccessionNumber, and in the Scheduled Procedure Step Sequence
Modality, ScheduledStationAETitle, ScheduledProcedureStepStartDate and -Time.

Example::

    store = WorklistStore(archive.engine)
    item = store.add(WorklistItem(patient_id="P1", patient_name="Doe^Jane", modality="CT",
                                  scheduled_date="20261202", scheduled_time="0930"))
    store.search({"Modality": "CT", "ScheduledProcedureStepStartDate": "20261202"})
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import DateTime, Engine, String, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from radpacs.archive.index import Base, utc_now
from radpacs.archive.ingest import normalize_time
from radpacs.archive.query import _normalize_date, _person_name_condition, _range_condition
from radpacs.archive.query import _text_condition as text_condition
from radpacs.errors import InvalidInput, InvalidQuery, NotFound, StorageError

__all__ = ["WORKLIST_KEYS", "WorklistItem", "WorklistRow", "WorklistStore"]

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class WorklistRow(Base):
    """One scheduled procedure step, with the attributes a worklist query matches on."""

    __tablename__ = "worklist_item"

    pk: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_name: Mapped[str] = mapped_column(String(400), default="")
    patient_name_lower: Mapped[str] = mapped_column(String(400), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    requested_procedure_id: Mapped[str] = mapped_column(String(64), default="")
    requested_procedure_description: Mapped[str] = mapped_column(String(400), default="")
    referring_physician: Mapped[str] = mapped_column(String(400), default="")
    modality: Mapped[str] = mapped_column(String(16), index=True)
    station_ae_title: Mapped[str] = mapped_column(String(16), default="")
    scheduled_date: Mapped[str] = mapped_column(String(8), index=True)
    scheduled_time: Mapped[str] = mapped_column(String(13), default="")
    step_id: Mapped[str] = mapped_column(String(64), default="")
    step_description: Mapped[str] = mapped_column(String(400), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


@dataclass
class WorklistItem:
    """A scheduled procedure step; checked on construction (dates YYYYMMDD, times HHMM[SS])."""

    patient_id: str
    modality: str
    scheduled_date: str
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    study_uid: str = ""
    requested_procedure_id: str = ""
    requested_procedure_description: str = ""
    referring_physician: str = ""
    station_ae_title: str = ""
    scheduled_time: str = ""
    step_id: str = ""
    step_description: str = ""
    item_id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.patient_id.strip():
            raise InvalidInput("patient_id is required")
        if not self.modality.strip() or len(self.modality) > 16:
            raise InvalidInput(f"modality {self.modality!r} is not a DICOM modality (CS)")
        self.modality = self.modality.strip().upper()
        for name in ("scheduled_date", "patient_birth_date"):
            value = getattr(self, name)
            if value and not _DATE.match(value):
                raise InvalidInput(f"{name} {value!r} is not a date YYYYMMDD")
        if not self.scheduled_date:
            raise InvalidInput("scheduled_date is required")
        if self.scheduled_time and not _TIME.match(self.scheduled_time):
            raise InvalidInput(f"scheduled_time {self.scheduled_time!r} is not HHMM[SS]")
        if self.study_uid and not _UID.match(self.study_uid):
            raise InvalidInput(f"study_uid {self.study_uid!r} is not a UID")
        self.study_uid = self.study_uid or str(generate_uid())
        self.item_id = self.item_id or str(generate_uid()).rsplit(".", 1)[-1]
        self.step_id = self.step_id or self.item_id[-16:]
        self.requested_procedure_id = self.requested_procedure_id or self.step_id

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Identifier keys (keyword) -> (column, how it is matched); "SPS" = in the step sequence.
WORKLIST_KEYS: dict[str, tuple[str, str, bool]] = {
    "PatientName": ("patient_name_lower", "pn", False),
    "PatientID": ("patient_id", "text", False),
    "AccessionNumber": ("accession_number", "text", False),
    "StudyInstanceUID": ("study_uid", "text", False),
    "RequestedProcedureID": ("requested_procedure_id", "text", False),
    "Modality": ("modality", "text", True),
    "ScheduledStationAETitle": ("station_ae_title", "text", True),
    "ScheduledProcedureStepStartDate": ("scheduled_date", "date", True),
    "ScheduledProcedureStepStartTime": ("scheduled_time", "time", True),
    "ScheduledProcedureStepID": ("step_id", "text", True),
}


class WorklistStore:
    """Adds, lists, removes and matches worklist items in the index database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, item: WorklistItem) -> WorklistItem:
        values = item.as_dict()
        values["patient_name_lower"] = item.patient_name.lower()
        if item.scheduled_time:
            values["scheduled_time"] = normalize_time(item.scheduled_time)
        try:
            with Session(self.engine) as session, session.begin():
                session.add(WorklistRow(**values))
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot add the worklist item: {exc}") from exc
        return item

    def remove(self, item_id: str) -> None:
        with Session(self.engine) as session, session.begin():
            removed = session.execute(delete(WorklistRow).where(WorklistRow.item_id == item_id))
        if not removed.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"no worklist item {item_id}")

    def items(self, keys: dict[str, str] | None = None, limit: int = 1000) -> list[WorklistItem]:
        """Items matching ``keys`` (keyword -> value, QIDO-RS rules), by date and time."""
        conditions = []
        for keyword, value in (keys or {}).items():
            if keyword not in WORKLIST_KEYS:
                raise InvalidQuery(
                    f"matching on {keyword} is not supported; supported keys: "
                    + ", ".join(WORKLIST_KEYS)
                )
            value = value.strip()
            if not value or value == "*":
                continue
            column_name, kind, _ = WORKLIST_KEYS[keyword]
            column = getattr(WorklistRow, column_name)
            if kind == "pn":
                conditions.append(_person_name_condition(column, value, False))
            elif kind == "date":
                conditions.append(_range_condition(column, value, keyword, _normalize_date, ""))
            elif kind == "time":
                conditions.append(
                    _range_condition(column, value, keyword, normalize_time, "235959.999999")
                )
            else:
                conditions.append(text_condition(column, value))
        statement = (
            select(WorklistRow)
            .where(*conditions)
            .order_by(WorklistRow.scheduled_date, WorklistRow.scheduled_time, WorklistRow.pk)
            .limit(limit)
        )
        with Session(self.engine) as session:
            rows = session.scalars(statement).all()
        fields = set(WorklistItem.__dataclass_fields__)
        return [WorklistItem(**{k: v for k, v in vars(row).items() if k in fields}) for row in rows]
