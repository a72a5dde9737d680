"""DatasetNames: short names for stored instances (the workshop's ``sphere``, ``dose``).

``GET /api/data`` lists the names and ``GET /api/data/{name}`` returns the instance a
name points to. A name points to a SOP Instance UID; deleting the instance leaves the
name dangling, and retrieving it then answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, String, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from radpacs.archive.database import database_errors
from radpacs.archive.index import Base
from radpacs.errors import NotFound

__all__ = ["DatasetName", "DatasetNames", "NamedInstance"]


class DatasetName(Base):
    """A name given to one stored instance."""

    __tablename__ = "dataset_name"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    series_uid: Mapped[str] = mapped_column(String(64))
    sop_uid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )


@dataclass(frozen=True)
class NamedInstance:
    """Where a name points."""

    name: str
    study_uid: str
    series_uid: str
    sop_uid: str


class DatasetNames:
    """Gives names to stored instances and resolves them."""

    def __init__(self, engine: Engine) -> None:
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )

    def set(self, name: str, study_uid: str, series_uid: str, sop_uid: str) -> None:
        """Point ``name`` at an instance, replacing what it pointed to before."""
        with database_errors("dataset naming"), self._write() as session, session.begin():
            row = session.get(DatasetName, name)
            if row is None:
                row = DatasetName(name=name, created_at=datetime.now(UTC))
                session.add(row)
            row.study_uid, row.series_uid, row.sop_uid = study_uid, series_uid, sop_uid

    def resolve(self, name: str) -> NamedInstance:
        """The instance ``name`` points to; NotFound if no such name."""
        with database_errors("dataset name look-up"), self._read() as session:
            row = session.get(DatasetName, name)
            if row is None:
                raise NotFound(f"no dataset named {name!r}")
            return NamedInstance(row.name, row.study_uid, row.series_uid, row.sop_uid)

    def names(self) -> list[str]:
        """Every name, sorted."""
        with database_errors("dataset name look-up"), self._read() as session:
            return list(session.scalars(select(DatasetName.name).order_by(DatasetName.name)))
