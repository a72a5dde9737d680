"""DatabasePseudonymStore: patient pseudonyms and the originals behind them, in the index.

Implements :class:`radpacs.deid.PseudonymStore` on the archive's engine, so that an
administrator can look up which patient a pseudonym stands for (PS3.15 E.1.1 note 3:
the mapping is kept by the de-identifier, never in the de-identified objects). The table
``deid_pseudonym`` is created by migration ``0004``; one row per pseudonym, first write
wins (pseudonyms are keyed hashes, so a second write for one pseudonym carries the same
original).

Example::

    store = DatabasePseudonymStore(archive.engine)
    store.record(PatientRecord("RP0123456789ABCDEF", "PAT-1", "DOE^JOHN"))
    store.lookup("RP0123456789ABCDEF").original_patient_name   # 'DOE^JOHN'
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import DateTime, Engine, String, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from radpacs.archive.index import Base, utc_now
from radpacs.deid.pseudonyms import PatientRecord
from radpacs.errors import StorageError

__all__ = ["DatabasePseudonymStore", "PseudonymRow"]


class PseudonymRow(Base):
    """One patient pseudonym and the original Patient ID, Patient's Name and issuer."""

    __tablename__ = "deid_pseudonym"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    original_patient_id: Mapped[str] = mapped_column(String(200), default="")
    original_patient_name: Mapped[str] = mapped_column(String(400), default="")
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class DatabasePseudonymStore:
    """A :class:`radpacs.deid.PseudonymStore` in the index database (SQLite or PostgreSQL).

    ``record`` is idempotent and safe from several threads and processes: a row that
    exists already is left as it is. Pseudonyms recorded by this object are remembered
    in memory, so de-identifying a study writes once per patient, not once per instance.
    """

    def __init__(self, engine: Engine) -> None:
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def record(self, record: PatientRecord) -> None:
        """Keep ``record`` unless its pseudonym is recorded already."""
        with self._lock:
            if record.pseudonym in self._known:
                return
        try:
            with self._write() as session, session.begin():
                exists = session.get(PseudonymRow, record.pseudonym)
                if exists is None:
                    session.add(
                        PseudonymRow(
                            pseudonym=record.pseudonym,
                            original_patient_id=record.original_patient_id,
                            original_patient_name=record.original_patient_name,
                            issuer_of_patient_id=record.issuer_of_patient_id,
                            created_at=utc_now(),
                        )
                    )
        except IntegrityError:
            pass  # another writer recorded the same pseudonym first: same original
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot record pseudonym {record.pseudonym}: {exc}") from exc
        with self._lock:
            self._known.add(record.pseudonym)

    def lookup(self, pseudonym: str) -> PatientRecord | None:
        """The original patient behind ``pseudonym``, or None when it is unknown."""
        try:
            with self._read() as session:
                row = session.scalar(
                    select(PseudonymRow).where(PseudonymRow.pseudonym == pseudonym)
                )
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot look up pseudonym {pseudonym}: {exc}") from exc
        if row is None:
            return None
        return PatientRecord(
            row.pseudonym,
            row.original_patient_id,
            row.original_patient_name,
            row.issuer_of_patient_id,
        )
