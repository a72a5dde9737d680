"""The index: SQLAlchemy tables for patients, studies, series and instances.

Rows hold the attributes QIDO-RS matches on, the storage key and digest of each file and the
instance's DICOM JSON metadata (bulk data as relative BulkDataURIs) as one zstd frame
(:mod:`.metadata_codec`); never the DICOM bytes. On PostgreSQL, patient names also have a
``varchar_pattern_ops`` index so that a prefix match (``PatientName=Gagn*``, a LIKE 'gagn%')
is an index scan under any collation.
String attributes are stored as DICOM text (dates YYYYMMDD), times normalised to
``HHMMSS.ffffff`` and datetimes to ``YYYYMMDDHHMMSS.ffffff`` so that ranges compare as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Instance", "Patient", "Series", "Study", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC: every table's timestamps."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The one declarative base of every radpacs table."""


class Patient(Base):
    """A patient, keyed by Patient ID and its issuer."""

    __tablename__ = "patient"
    __table_args__ = (
        UniqueConstraint("patient_id", "issuer", name="uq_patient_id_issuer"),
        Index(
            "ix_patient_name_lower_pattern",
            "patient_name_lower",
            postgresql_ops={"patient_name_lower": "varchar_pattern_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    pk: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    issuer: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(400), default="")
    patient_name_lower: Mapped[str] = mapped_column(String(400), default="", index=True)
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    """A study; ``version`` grows with every change below it (for ETags)."""

    __tablename__ = "study"

    pk: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(13), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_id: Mapped[str] = mapped_column(String(64), default="")
    study_description: Mapped[str] = mapped_column(String(400), default="")
    referring_physician: Mapped[str] = mapped_column(String(400), default="")
    referring_physician_lower: Mapped[str] = mapped_column(String(400), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    """A series; ``version`` grows with every instance stored into or deleted from it."""

    __tablename__ = "series"

    pk: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.pk"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series_description: Mapped[str] = mapped_column(String(400), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    pps_start_date: Mapped[str] = mapped_column(String(8), default="")
    pps_start_time: Mapped[str] = mapped_column(String(13), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    """A stored SOP instance: query attributes, where its file is, and its metadata."""

    __tablename__ = "instance"
    __table_args__ = (Index("ix_instance_series_number", "series_pk", "instance_number"),)

    pk: Mapped[int] = mapped_column(primary_key=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.pk"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64), default="")
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bits_allocated: Mapped[int | None] = mapped_column(Integer, nullable=True)
    number_of_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_date: Mapped[str] = mapped_column(String(8), default="")
    content_time: Mapped[str] = mapped_column(String(13), default="")
    acquisition_datetime: Mapped[str] = mapped_column(String(21), default="")
    storage_key: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    metadata_zstd: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    series: Mapped[Series] = relationship(back_populates="instances")
