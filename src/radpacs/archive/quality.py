"""Quality-control status per stored instance (the DPAT client's ``set_quality_control``).

Each instance has one status, ``pending`` until someone sets it, ``passed`` or ``failed``,
with a free-text comment, who set it and when. The status lives in its own table beside the
index (``quality_control``), keyed by SOP Instance UID with the study and series UIDs copied
so that lists by study need no join; it is not part of the DICOM object.

Example::

    store = QualityControlStore(archive.engine)
    store.set("1.2.3", "1.2.3.4", "1.2.3.4.5", QcStatus.FAILED, "motion", "ana")
    store.get("1.2.3.4.5").status      # QcStatus.FAILED
    store.search(status=QcStatus.FAILED, study_uid="1.2.3")
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Engine, String, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from radpacs.archive.index import Base, utc_now
from radpacs.errors import InvalidInput, StorageError

__all__ = ["QcRecord", "QcStatus", "QualityControlRow", "QualityControlStore"]

_COMMENT_MAX = 1024


class QcStatus(StrEnum):
    """The quality-control states of an instance."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"

    @classmethod
    def parse(cls, text: str) -> QcStatus:
        """The status named ``text`` (any case), or InvalidInput listing the valid ones."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            valid = ", ".join(status.value for status in cls)
            raise InvalidInput(f"unknown quality-control status {text!r}; use {valid}") from None


class QualityControlRow(Base):
    """The quality-control status of one instance."""

    __tablename__ = "quality_control"

    pk: Mapped[int] = mapped_column(primary_key=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    comment: Mapped[str] = mapped_column(String(_COMMENT_MAX), default="")
    set_by: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


@dataclass(frozen=True)
class QcRecord:
    """An instance's status; ``updated_at`` is None while it was never set (pending)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    status: QcStatus
    comment: str = ""
    set_by: str = ""
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "sop_uid": self.sop_uid,
            "status": self.status.value,
            "comment": self.comment,
            "set_by": self.set_by,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def _record(row: QualityControlRow) -> QcRecord:
    return QcRecord(
        row.study_uid,
        row.series_uid,
        row.sop_uid,
        QcStatus(row.status),
        row.comment,
        row.set_by,
        row.updated_at,
    )


class QualityControlStore:
    """Sets, reads and lists quality-control statuses in the index database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(
        self,
        study_uid: str,
        series_uid: str,
        sop_uid: str,
        status: QcStatus,
        comment: str = "",
        set_by: str = "",
    ) -> QcRecord:
        """Record ``status`` for the instance (replacing any earlier one)."""
        if len(comment) > _COMMENT_MAX:
            raise InvalidInput(f"the comment is longer than {_COMMENT_MAX} characters")
        try:
            with Session(self.engine) as session, session.begin():
                row = session.scalar(
                    select(QualityControlRow).where(QualityControlRow.sop_uid == sop_uid)
                )
                if row is None:
                    row = QualityControlRow(sop_uid=sop_uid, study_uid=study_uid)
                    session.add(row)
                row.series_uid = series_uid
                row.status = status.value
                row.comment = comment
                row.set_by = set_by
                row.updated_at = utc_now()
                session.flush()
                return _record(row)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot record the quality-control status: {exc}") from exc

    def get(self, study_uid: str, series_uid: str, sop_uid: str) -> QcRecord:
        """The instance's status; ``pending`` when it was never set."""
        with Session(self.engine) as session:
            row = session.scalar(
                select(QualityControlRow).where(QualityControlRow.sop_uid == sop_uid)
            )
            if row is None:
                return QcRecord(study_uid, series_uid, sop_uid, QcStatus.PENDING)
            return _record(row)

    def search(
        self,
        status: QcStatus | None = None,
        study_uid: str | None = None,
        limit: int = 1000,
    ) -> list[QcRecord]:
        """Statuses that were set, matching ``status`` and ``study_uid``, newest first."""
        statement = select(QualityControlRow)
        if status is not None:
            statement = statement.where(QualityControlRow.status == status.value)
        if study_uid is not None:
            statement = statement.where(QualityControlRow.study_uid == study_uid)
        statement = statement.order_by(
            QualityControlRow.updated_at.desc(), QualityControlRow.pk.desc()
        ).limit(limit)
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(statement)]

    def summary(self, study_uids: Iterable[str]) -> dict[str, dict[str, int]]:
        """For each study of ``study_uids`` with statuses set: how many instances have each."""
        uids = list(study_uids)
        if not uids:
            return {}
        statement = (
            select(QualityControlRow.study_uid, QualityControlRow.status, func.count())
            .where(QualityControlRow.study_uid.in_(uids))
            .group_by(QualityControlRow.study_uid, QualityControlRow.status)
        )
        counts: dict[str, dict[str, int]] = {}
        with Session(self.engine) as session:
            for study_uid, status, count in session.execute(statement):
                counts.setdefault(study_uid, {})[status] = int(count)
        return counts
