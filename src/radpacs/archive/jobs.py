"""AI job state: one row per job in the index database (table ``ai_job``, migration a1).

The queue (huey) only carries job ids; this table is the truth about each job, so it
survives restarts of the server, the workers and the queue. State machine::

    queued -> running -> succeeded | failed | cancelled
       ^         |
       +---------+  (a failed attempt with attempts left, after a back-off delay)

A running job is claimed atomically (``UPDATE ... WHERE state = 'queued'``), so a job id
enqueued twice runs once.
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

from sqlalchemy import Boolean, DateTime, Engine, Float, Integer, String, Text, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from radpacs.archive.index import Base
from radpacs.errors import NotFound, StorageError

__all__ = ["Job", "JobState", "JobStore"]


def _now() -> datetime:
    return datetime.now(UTC)


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


class AiJob(Base):
    """One AI job: what to run on what, and everything that happened to it."""

    __tablename__ = "ai_job"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), default="")
    parameters_json: Mapped[str] = mapped_column(Text, default="{}")
    trigger: Mapped[str] = mapped_column(String(16), default="demand")
    state: Mapped[str] = mapped_column(String(16), index=True, default=JobState.QUEUED.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    result_series_json: Mapped[str] = mapped_column(Text, default="[]")
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    timings_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class Job:
    """A snapshot of one job row, as the API shows it."""

    id: str
    model: str
    study_uid: str
    series_uid: str
    parameters: dict[str, Any]
    trigger: str
    state: JobState
    progress: float
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error: str
    result_series: list[dict[str, Any]]
    timings: dict[str, float]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, row: AiJob) -> Job:
        return cls(
            id=row.id,
            model=row.model,
            study_uid=row.study_uid,
            series_uid=row.series_uid,
            parameters=json.loads(row.parameters_json or "{}"),
            trigger=row.trigger,
            state=JobState(row.state),
            progress=row.progress,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            cancel_requested=row.cancel_requested,
            error=row.error,
            result_series=json.loads(row.result_series_json or "[]"),
            timings=json.loads(row.timings_json or "{}"),
            created_at=_aware(row.created_at) or _now(),
            started_at=_aware(row.started_at),
            finished_at=_aware(row.finished_at),
            heartbeat_at=_aware(row.heartbeat_at),
            next_attempt_at=_aware(row.next_attempt_at),
        )

    @property
    def pending(self) -> bool:
        return self.state.value in PENDING

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "model": self.model,
            "study": self.study_uid,
            "series": self.series_uid or None,
            "parameters": self.parameters,
            "trigger": self.trigger,
            "state": self.state.value,
            "progress": round(self.progress, 4),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "cancel_requested": self.cancel_requested,
            "error": self.error or None,
            "result_series": self.result_series,
            "timings": self.timings,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "next_attempt_at": iso(self.next_attempt_at),
        }


class JobStore:
    """Reads and writes the ``ai_job`` table on the archive's engine."""

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

    def submit(
        self,
        model: str,
        study_uid: str,
        series_uid: str = "",
        parameters: dict[str, Any] | None = None,
        trigger: str = "demand",
        max_attempts: int = 3,
    ) -> tuple[Job, bool]:
        """A new queued job, or the pending one with the same request; True when new."""
        parameters_json = json.dumps(parameters or {}, sort_keys=True)
        with self._transaction() as session:
            existing = session.scalar(
                select(AiJob)
                .where(
                    AiJob.model == model,
                    AiJob.study_uid == study_uid,
                    AiJob.series_uid == series_uid,
                    AiJob.parameters_json == parameters_json,
                    AiJob.state.in_(PENDING),
                )
                .order_by(AiJob.created_at)
                .limit(1)
            )
            if existing is not None:
                return Job.of(existing), False
            row = AiJob(
                id=str(uuid.uuid4()),
                model=model,
                study_uid=study_uid,
                series_uid=series_uid,
                parameters_json=parameters_json,
                trigger=trigger,
                state=JobState.QUEUED.value,
                progress=0.0,
                attempts=0,
                max_attempts=max_attempts,
                cancel_requested=False,
                error="",
                result_series_json="[]",
                timings_json="{}",
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            return Job.of(row), True

    def get(self, job_id: str) -> Job:
        with self._read() as session:
            row = session.get(AiJob, job_id)
            if row is None:
                raise NotFound(f"no AI job {job_id}")
            return Job.of(row)

    def result_json(self, job_id: str) -> str | None:
        with self._read() as session:
            row = session.get(AiJob, job_id)
            if row is None:
                raise NotFound(f"no AI job {job_id}")
            return row.result_json

    def find(
        self,
        state: str | None = None,
        study_uid: str | None = None,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        statement = select(AiJob).order_by(AiJob.created_at.desc(), AiJob.id)
        if state:
            statement = statement.where(AiJob.state == JobState(state).value)
        if study_uid:
            statement = statement.where(AiJob.study_uid == study_uid)
        if model:
            statement = statement.where(AiJob.model == model)
        with self._read() as session:
            rows = session.scalars(statement.offset(offset).limit(limit)).all()
            return [Job.of(row) for row in rows]

    def queued_ids(self) -> list[str]:
        with self._read() as session:
            return list(
                session.scalars(
                    select(AiJob.id)
                    .where(AiJob.state == JobState.QUEUED.value)
                    .order_by(AiJob.created_at)
                )
            )

    def stale_running_ids(self, older_than: timedelta) -> list[str]:
        """Running jobs whose worker stopped sending heartbeats (it died)."""
        limit = _now() - older_than
        with self._read() as session:
            rows = session.execute(
                select(AiJob.id, AiJob.heartbeat_at).where(AiJob.state == JobState.RUNNING.value)
            ).all()
        return [job_id for job_id, beat in rows if (_aware(beat) or limit) <= limit]

    def claim(self, job_id: str) -> Job | None:
        """Mark a queued job running (one more attempt); None if it is not queued any more."""
        now = _now()
        with self._transaction() as session:
            claimed: Any = session.execute(
                update(AiJob)
                .where(
                    AiJob.id == job_id,
                    AiJob.state == JobState.QUEUED.value,
                    AiJob.cancel_requested.is_(False),
                )
                .values(
                    state=JobState.RUNNING.value,
                    attempts=AiJob.attempts + 1,
                    started_at=now,
                    heartbeat_at=now,
                    next_attempt_at=None,
                    progress=0.0,
                )
            )
            if not claimed.rowcount:
                return None
            row = session.get(AiJob, job_id)
            assert row is not None
            return Job.of(row)

    def heartbeat(self, job_id: str, progress: float | None = None) -> bool:
        """Record that the job is alive; True when a cancel was asked for."""
        values: dict[str, Any] = {"heartbeat_at": _now()}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        with self._transaction() as session:
            session.execute(update(AiJob).where(AiJob.id == job_id).values(**values))
            return bool(session.scalar(select(AiJob.cancel_requested).where(AiJob.id == job_id)))

    def succeed(
        self,
        job_id: str,
        result_series: list[dict[str, Any]],
        timings: dict[str, float],
        result_json: str | None,
    ) -> None:
        with self._transaction() as session:
            session.execute(
                update(AiJob)
                .where(AiJob.id == job_id)
                .values(
                    state=JobState.SUCCEEDED.value,
                    progress=1.0,
                    error="",
                    result_series_json=json.dumps(result_series),
                    timings_json=json.dumps(timings),
                    result_json=result_json,
                    finished_at=_now(),
                )
            )

    def fail(self, job_id: str, error: str, retry_in: float | None) -> Job:
        """Record a failed attempt: back to queued after ``retry_in`` seconds, else failed."""
        now = _now()
        with self._transaction() as session:
            row = session.get(AiJob, job_id)
            if row is None:
                raise NotFound(f"no AI job {job_id}")
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
            session.flush()
            return Job.of(row)

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop. Finished jobs are kept."""
        with self._transaction() as session:
            row = session.get(AiJob, job_id)
            if row is None:
                raise NotFound(f"no AI job {job_id}")
            if row.state == JobState.QUEUED.value:
                row.state = JobState.CANCELLED.value
                row.cancel_requested = True
                row.finished_at = _now()
            elif row.state == JobState.RUNNING.value:
                row.cancel_requested = True
            session.flush()
            return Job.of(row)

    def mark_cancelled(self, job_id: str) -> None:
        with self._transaction() as session:
            session.execute(
                update(AiJob)
                .where(AiJob.id == job_id)
                .values(state=JobState.CANCELLED.value, finished_at=_now())
            )

    def requeue_stale(self, job_id: str) -> None:
        """Put a running job whose worker died back in the queue (counts as a failed attempt)."""
        self.fail(job_id, "the worker running this job stopped", retry_in=0.0)
