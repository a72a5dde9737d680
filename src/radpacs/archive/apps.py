"""The rows of callback apps (:mod:`radpacs.apps`): registered apps, their runs, results.

- ``app``: one registered app: its name, URL, what it accepts (modalities, body parts, series
  or study input), its trigger (``on-arrival`` or ``on-demand``), enabled, the delivery
  timeout and who registered it.
- ``app_run``: one triggering of an app on a study (and series): the UPS workitem it is, the
  Transaction UID radpacs holds for it, the delivery job, and the app's final JSON result
  with its SHA-256 (a second identical result is recognised, not stored again).

Example::

    store = AppStore(archive.engine)
    store.add(AppRecord(name="lungs", url="http://127.0.0.1:9000/analyze", ...))
    store.get("lungs").url
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Engine, Float, String, Text, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from radpacs.archive.index import Base, utc_now
from radpacs.errors import Conflict, NotFound, StorageError

__all__ = ["AppRecord", "AppRun", "AppStore"]


class AppRow(Base):
    """A registered callback app."""

    __tablename__ = "app"

    pk: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    accepts: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    trigger: Mapped[str] = mapped_column(String(16), default="on-demand")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    timeout: Mapped[float] = mapped_column(Float, default=30.0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class AppRunRow(Base):
    """One triggering of an app: its workitem, delivery job and final result."""

    __tablename__ = "app_run"

    pk: Mapped[int] = mapped_column(primary_key=True)
    workitem_uid: Mapped[str] = mapped_column(String(64), unique=True)
    transaction_uid: Mapped[str] = mapped_column(String(64))
    app: Mapped[str] = mapped_column(String(64), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_uids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    trigger: Mapped[str] = mapped_column(String(16), default="on-demand")
    job_id: Mapped[str] = mapped_column(String(36), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    result_json: Mapped[str] = mapped_column(Text, default="")
    result_sha256: Mapped[str] = mapped_column(String(64), default="")
    result_series: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


@dataclass(frozen=True)
class AppRecord:
    """A registered app as stored (validation is :mod:`radpacs.apps.registry`'s job)."""

    name: str
    url: str
    modalities: list[str] = field(default_factory=list)
    body_parts: list[str] = field(default_factory=list)
    input: str = "series"
    trigger: str = "on-demand"
    enabled: bool = True
    timeout: float = 30.0
    stable_seconds: float = 10.0
    created_by: str = ""
    created_at: datetime | None = None

    @classmethod
    def of(cls, row: AppRow) -> AppRecord:
        accepts = json.loads(row.accepts or "{}")
        return cls(
            name=row.name,
            url=row.url,
            modalities=list(accepts.get("modalities", [])),
            body_parts=list(accepts.get("body_parts", [])),
            input=str(accepts.get("input", "series")),
            stable_seconds=float(accepts.get("stable_seconds", 10.0)),
            trigger=row.trigger,
            enabled=row.enabled,
            timeout=row.timeout,
            created_by=row.created_by,
            created_at=row.created_at,
        )

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["created_at"] = self.created_at.isoformat() if self.created_at else None
        return values

    def _accepts(self) -> str:
        return json.dumps(
            {
                "modalities": self.modalities,
                "body_parts": self.body_parts,
                "input": self.input,
                "stable_seconds": self.stable_seconds,
            }
        )


@dataclass(frozen=True)
class AppRun:
    """One triggering of an app (see the module)."""

    workitem_uid: str
    transaction_uid: str
    app: str
    study_uid: str
    series_uids: list[str]
    trigger: str
    job_id: str
    created_by: str
    result_json: str
    result_sha256: str
    result_series: list[str]
    created_at: datetime | None = None

    @classmethod
    def of(cls, row: AppRunRow) -> AppRun:
        return cls(
            workitem_uid=row.workitem_uid,
            transaction_uid=row.transaction_uid,
            app=row.app,
            study_uid=row.study_uid,
            series_uids=list(json.loads(row.series_uids or "[]")),
            trigger=row.trigger,
            job_id=row.job_id,
            created_by=row.created_by,
            result_json=row.result_json,
            result_sha256=row.result_sha256,
            result_series=list(json.loads(row.result_series or "[]")),
            created_at=row.created_at,
        )


class AppStore:
    """Registered apps and their runs in the index."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write = sessionmaker(engine.execution_options(sqlite_immediate=True))

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        try:
            with self._write() as session, session.begin():
                yield session
        except IntegrityError as exc:
            raise Conflict(f"already registered: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"the app registry failed: {exc}") from exc

    # -- apps ------------------------------------------------------------------------------

    def add(self, record: AppRecord) -> AppRecord:
        """Register ``record`` (Conflict if its name is taken)."""
        if self.find(record.name) is not None:
            raise Conflict(f"an app named {record.name!r} is already registered")
        with self._transaction() as session:
            row = AppRow(
                name=record.name,
                url=record.url,
                accepts=record._accepts(),
                trigger=record.trigger,
                enabled=record.enabled,
                timeout=record.timeout,
                created_by=record.created_by,
            )
            session.add(row)
            session.flush()
            return AppRecord.of(row)

    def find(self, name: str) -> AppRecord | None:
        with Session(self.engine) as session:
            row = session.scalars(select(AppRow).where(AppRow.name == name)).one_or_none()
            return AppRecord.of(row) if row is not None else None

    def get(self, name: str) -> AppRecord:
        """The app named ``name`` (NotFound if none)."""
        found = self.find(name)
        if found is None:
            raise NotFound(f"no app named {name!r} is registered")
        return found

    def all(self) -> list[AppRecord]:
        """Every registered app, by name."""
        with Session(self.engine) as session:
            rows = session.scalars(select(AppRow).order_by(AppRow.name))
            return [AppRecord.of(row) for row in rows]

    def update(self, record: AppRecord) -> AppRecord:
        """Replace the URL, accepts, trigger, enabled and timeout of the app of that name."""
        with self._transaction() as session:
            row = session.scalars(select(AppRow).where(AppRow.name == record.name)).one_or_none()
            if row is None:
                raise NotFound(f"no app named {record.name!r} is registered")
            row.url, row.accepts, row.trigger = record.url, record._accepts(), record.trigger
            row.enabled, row.timeout, row.updated_at = record.enabled, record.timeout, utc_now()
            session.flush()
            return AppRecord.of(row)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (its runs stay, for the record)."""
        with self._transaction() as session:
            row = session.scalars(select(AppRow).where(AppRow.name == name)).one_or_none()
            if row is None:
                raise NotFound(f"no app named {name!r} is registered")
            session.delete(row)

    # -- runs ------------------------------------------------------------------------------

    def add_run(self, run: AppRun) -> AppRun:
        with self._transaction() as session:
            row = AppRunRow(
                workitem_uid=run.workitem_uid,
                transaction_uid=run.transaction_uid,
                app=run.app,
                study_uid=run.study_uid,
                series_uids=json.dumps(run.series_uids),
                trigger=run.trigger,
                job_id=run.job_id,
                created_by=run.created_by,
            )
            session.add(row)
            session.flush()
            return AppRun.of(row)

    def find_run(self, workitem_uid: str) -> AppRun | None:
        with Session(self.engine) as session:
            row = session.scalars(
                select(AppRunRow).where(AppRunRow.workitem_uid == workitem_uid)
            ).one_or_none()
            return AppRun.of(row) if row is not None else None

    def run(self, workitem_uid: str) -> AppRun:
        """The run of workitem ``workitem_uid`` (NotFound if it is no app's)."""
        found = self.find_run(workitem_uid)
        if found is None:
            raise NotFound(f"the workitem {workitem_uid} is not an app's analysis")
        return found

    def runs(
        self, app: str | None = None, study_uid: str | None = None, limit: int = 100
    ) -> list[AppRun]:
        statement = select(AppRunRow).order_by(AppRunRow.pk.desc()).limit(limit)
        if app:
            statement = statement.where(AppRunRow.app == app)
        if study_uid:
            statement = statement.where(AppRunRow.study_uid == study_uid)
        with Session(self.engine) as session:
            return [AppRun.of(row) for row in session.scalars(statement)]

    def set_job(self, workitem_uid: str, job_id: str) -> None:
        with self._transaction() as session:
            row = session.scalars(
                select(AppRunRow).where(AppRunRow.workitem_uid == workitem_uid)
            ).one()
            row.job_id, row.updated_at = job_id, utc_now()

    def keep_result(
        self, workitem_uid: str, result_json: str, sha256: str, series: list[str]
    ) -> tuple[AppRun, bool]:
        """Record the final result of a run once: (the run, whether this call recorded it;
        False when the run already had a result, which it keeps)."""
        with self._transaction() as session:
            row = session.scalars(
                select(AppRunRow).where(AppRunRow.workitem_uid == workitem_uid).with_for_update()
            ).one()
            recorded = not row.result_sha256
            if recorded:
                row.result_json, row.result_sha256 = result_json, sha256
                row.result_series = json.dumps(series)
                row.updated_at = utc_now()
            session.flush()
            return AppRun.of(row), recorded

    def set_result_series(self, workitem_uid: str, series: list[str]) -> None:
        """Name the series stored from a run's result."""
        with self._transaction() as session:
            row = session.scalars(
                select(AppRunRow).where(AppRunRow.workitem_uid == workitem_uid)
            ).one()
            row.result_series, row.updated_at = json.dumps(series), utc_now()
