"""Background job state: one row per job of any kind in the index database (table ``job``).

The queue only carries job ids; this table is the truth about each job, so it survives
restarts of the server, the workers and the queue, and any process that opens the index
sees every job. A job has a ``kind`` (``ai``, ``deid.study``, ...; see
:mod:`radpacs.jobs`), JSON ``params``, progress (``done`` of ``total``), a JSON
``result``, an optional large ``output`` text, an ``error``, its attempts and heartbeat.
State machine::

    queued -> running -> succeeded | failed | cancelled
       ^         |
       +---------+  (a failed attempt with attempts left, after a back-off delay;
                     a running job whose heartbeat stopped: its worker died)

A running job is claimed atomically (``UPDATE ... WHERE state = 'queued'``), so a job id
enqueued twice runs once. Migration 0005 made this table from the former ``ai_job``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Text,
    or_,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from radpacs.archive.index import Base, utc_now
from radpacs.archive.workitems import mirror_job
from radpacs.errors import NotFound, StorageError

__all__ = ["Job", "JobRow", "JobState", "JobStore"]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite returns naive datetimes
        return value.replace(tzinfo=UTC)
    return value


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


PENDING = (JobState.QUEUED.value, JobState.RUNNING.value)


class JobRow(Base):
    """One job: what to run (kind, params), and everything that happened to it."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_kind_key", "kind", "key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    key: Mapped[str] = mapped_column(Text, default="")
    study_uid: Mapped[str] = mapped_column(String(64), index=True, default="")
    label: Mapped[str] = mapped_column(String(128), index=True, default="")
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    state: Mapped[str] = mapped_column(String(16), index=True, default=JobState.QUEUED.value)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    result_json: Mapped[str] = mapped_column(Text, default="{}")
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class Job:
    """A snapshot of one job row."""

    id: str
    kind: str
    key: str
    study_uid: str
    label: str
    params: dict[str, Any]
    state: JobState
    done: int
    total: int
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error: str
    result: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, row: JobRow) -> Job:
        return cls(
            id=row.id,
            kind=row.kind,
            key=row.key,
            study_uid=row.study_uid,
            label=row.label,
            params=json.loads(row.params_json or "{}"),
            state=JobState(row.state),
            done=row.done,
            total=row.total,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            cancel_requested=row.cancel_requested,
            error=row.error,
            result=json.loads(row.result_json or "{}"),
            created_at=_aware(row.created_at) or utc_now(),
            started_at=_aware(row.started_at),
            finished_at=_aware(row.finished_at),
            heartbeat_at=_aware(row.heartbeat_at),
            next_attempt_at=_aware(row.next_attempt_at),
        )

    @property
    def pending(self) -> bool:
        return self.state.value in PENDING

    @property
    def progress(self) -> float:
        """``done / total`` between 0 and 1 (1 once succeeded, 0 while nothing is known)."""
        if self.state is JobState.SUCCEEDED:
            return 1.0
        return max(0.0, min(1.0, self.done / self.total)) if self.total > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The generic view: kind, params, state, progress, result, error, times."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "state": self.state.value,
            "done": self.done,
            "total": self.total,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "cancel_requested": self.cancel_requested,
            "error": self.error or None,
            "result": self.result,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "next_attempt_at": iso(self.next_attempt_at),
        }


class JobStore:
    """Reads and writes the ``job`` table on the archive's engine."""

    def __init__(self, engine: Engine) -> None:
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        try:
            with self._write() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"the job table refused the change: {exc}") from exc

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        try:
            with self._read() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"the job table cannot be read: {exc}") from exc

    def submit(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        study_uid: str = "",
        label: str = "",
        total: int = 0,
        max_attempts: int = 3,
    ) -> tuple[Job, bool]:
        """A new queued job; True when new.

        With a ``key``, a pending (queued or running) job of the same kind and key is
        returned instead of a new one (False).
        """
        with self._transaction() as session:
            if key is not None:
                existing = session.scalar(
                    select(JobRow)
                    .where(JobRow.kind == kind, JobRow.key == key, JobRow.state.in_(PENDING))
                    .order_by(JobRow.created_at)
                    .limit(1)
                )
                if existing is not None:
                    return Job.of(existing), False
            row = JobRow(
                id=str(uuid.uuid4()),
                kind=kind,
                key=key or "",
                study_uid=study_uid,
                label=label,
                params_json=json.dumps(params or {}, sort_keys=True),
                state=JobState.QUEUED.value,
                done=0,
                total=total,
                attempts=0,
                max_attempts=max_attempts,
                cancel_requested=False,
                error="",
                result_json="{}",
                created_at=utc_now(),
            )
            session.add(row)
            session.flush()
            mirror_job(session, row)
            return Job.of(row), True

    def get(self, job_id: str, kind: str | None = None) -> Job:
        """The job; NotFound if there is none (of that kind)."""
        with self._reading() as session:
            row = session.get(JobRow, job_id)
            if row is None or (kind is not None and row.kind != kind):
                raise NotFound(f"no {kind or ''} job {job_id}".replace("  ", " "))
            return Job.of(row)

    def output(self, job_id: str, kind: str | None = None) -> str | None:
        """The job's large output text (None until it wrote one)."""
        with self._reading() as session:
            row = session.get(JobRow, job_id)
            if row is None or (kind is not None and row.kind != kind):
                raise NotFound(f"no {kind or ''} job {job_id}".replace("  ", " "))
            return row.output

    def find(
        self,
        kind: str | None = None,
        state: str | None = None,
        study_uid: str | None = None,
        label: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs, newest first, filtered by kind, state, study and label."""
        statement = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id)
        if kind:
            statement = statement.where(JobRow.kind == kind)
        if state:
            statement = statement.where(JobRow.state == JobState(state).value)
        if study_uid:
            statement = statement.where(JobRow.study_uid == study_uid)
        if label:
            statement = statement.where(JobRow.label == label)
        with self._reading() as session:
            rows = session.scalars(statement.offset(offset).limit(limit)).all()
            return [Job.of(row) for row in rows]

    def queued_ids(self) -> list[str]:
        with self._reading() as session:
            return list(
                session.scalars(
                    select(JobRow.id)
                    .where(JobRow.state == JobState.QUEUED.value)
                    .order_by(JobRow.created_at)
                )
            )

    def stale_running_ids(self, older_than: timedelta) -> list[str]:
        """Running jobs whose worker stopped sending heartbeats (it died)."""
        limit = utc_now() - older_than
        with self._reading() as session:
            rows = session.execute(
                select(JobRow.id, JobRow.heartbeat_at).where(JobRow.state == JobState.RUNNING.value)
            ).all()
        return [job_id for job_id, beat in rows if (_aware(beat) or limit) <= limit]

    def claim(self, job_id: str) -> Job | None:
        """Mark a queued job running (one more attempt); None if it is not queued any more
        or its back-off has not passed (an early copy of its id: the scheduled one runs it)."""
        now = utc_now()
        with self._transaction() as session:
            claimed: Any = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.state == JobState.QUEUED.value,
                    JobRow.cancel_requested.is_(False),
                    or_(JobRow.next_attempt_at.is_(None), JobRow.next_attempt_at <= now),
                )
                .values(
                    state=JobState.RUNNING.value,
                    attempts=JobRow.attempts + 1,
                    started_at=now,
                    heartbeat_at=now,
                    next_attempt_at=None,
                    done=0,
                )
            )
            if not claimed.rowcount:
                return None
            row = session.get(JobRow, job_id)
            assert row is not None
            mirror_job(session, row)
            return Job.of(row)

    def heartbeat(self, job_id: str, attempt: int | None = None) -> bool | None:
        """Record that the running job is alive; True when a cancel was asked for.

        Given ``attempt``, only that attempt's heartbeat counts: None when the job no longer
        runs that attempt (it was re-queued and maybe claimed again; the caller must stop).
        """
        where = [JobRow.id == job_id, JobRow.state == JobState.RUNNING.value]
        if attempt is not None:
            where.append(JobRow.attempts == attempt)
        with self._transaction() as session:
            beat: Any = session.execute(update(JobRow).where(*where).values(heartbeat_at=utc_now()))
            if attempt is not None and not beat.rowcount:
                return None
            return bool(session.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id)))

    def progress(
        self, job_id: str, done: int, total: int | None = None, attempt: int | None = None
    ) -> None:
        """Record how far the running job is (``done`` of ``total``); given ``attempt``,
        only while the job still runs that attempt."""
        values: dict[str, Any] = {"done": max(0, done), "heartbeat_at": utc_now()}
        if total is not None:
            values["total"] = max(0, total)
        where = [JobRow.id == job_id, JobRow.state == JobState.RUNNING.value]
        if attempt is not None:
            where.append(JobRow.attempts == attempt)
        with self._transaction() as session:
            session.execute(update(JobRow).where(*where).values(**values))

    def succeed(
        self,
        job_id: str,
        result: dict[str, Any] | None = None,
        output: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """Record the result of a running job. A job no longer running, or (given
        ``attempt``) running another attempt since, is left alone."""
        with self._transaction() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id}")
            if row.state != JobState.RUNNING.value or attempt not in (None, row.attempts):
                return
            row.state = JobState.SUCCEEDED.value
            row.done = max(row.done, row.total)
            row.error = ""
            row.result_json = json.dumps(result or {})
            row.output = output
            row.finished_at = utc_now()
            mirror_job(session, row)

    def fail(
        self, job_id: str, error: str, retry_in: float | None, attempt: int | None = None
    ) -> Job:
        """Record a failed attempt: back to queued after ``retry_in`` seconds, else failed.
        Given ``attempt``, a job that is no longer running that attempt is left alone."""
        with self._transaction() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id}")
            stale = row.state != JobState.RUNNING.value or row.attempts != attempt
            if attempt is None or not stale:
                _fail_row(row, error, retry_in)
            session.flush()
            mirror_job(session, row)
            return Job.of(row)

    def cancel(self, job_id: str, kind: str | None = None) -> Job:
        """Cancel a queued job at once; ask a running one to stop. Finished jobs are kept."""
        with self._transaction() as session:
            row = session.get(JobRow, job_id)
            if row is None or (kind is not None and row.kind != kind):
                raise NotFound(f"no {kind or ''} job {job_id}".replace("  ", " "))
            if row.state == JobState.QUEUED.value:
                row.state = JobState.CANCELLED.value
                row.cancel_requested = True
                row.finished_at = utc_now()
            elif row.state == JobState.RUNNING.value:
                row.cancel_requested = True
            session.flush()
            mirror_job(session, row)
            return Job.of(row)

    def mark_cancelled(self, job_id: str) -> None:
        with self._transaction() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(state=JobState.CANCELLED.value, finished_at=utc_now())
            )
            mirror_job(session, session.get(JobRow, job_id))

    def requeue_stale(self, job_id: str, older_than: timedelta) -> bool:
        """Put a running job whose heartbeat is older than ``older_than`` back in the queue
        (a failed attempt: its worker died); False if it beat since or no longer runs."""
        limit = utc_now() - older_than
        with self._transaction() as session:
            row = session.get(JobRow, job_id)
            if row is None or row.state != JobState.RUNNING.value:
                return False
            beat = _aware(row.heartbeat_at)
            if beat is not None and beat > limit:
                return False
            _fail_row(row, "the worker running this job stopped", retry_in=0.0)
            mirror_job(session, row)
            return True


def _fail_row(row: JobRow, error: str, retry_in: float | None) -> None:
    now = utc_now()
    row.error = error[:4000]
    if row.cancel_requested:
        row.state = JobState.CANCELLED.value
        row.finished_at = now
    elif retry_in is not None and row.attempts < row.max_attempts:
        row.state = JobState.QUEUED.value
        row.next_attempt_at = now + timedelta(seconds=retry_in)
    else:
        row.state = JobState.FAILED.value
        row.finished_at = now
