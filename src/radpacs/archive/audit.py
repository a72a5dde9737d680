"""AuditLog: who read or changed what, written in batches off the request path.

:meth:`AuditLog.record` only queues the event; a writer thread inserts queued events in
one transaction per batch (every ``interval`` seconds or ``batch_size`` events), so a
request pays for a queue put, not a database write. :meth:`flush` waits until everything
queued so far is written (the audit listing calls it, so it always sees its own
process's events); :meth:`close` flushes and stops the writer. Events queued in the last
``interval`` before a crash of the process can be lost; every event is also written to
the ``radpacs.audit`` logger at once.

Example::

    log = AuditLog(archive.engine)
    log.record(AuditRecord(action="retrieve", username="ana", status=200, ...))
    log.flush()
    log.query(AuditQuery(username="ana"))
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, Integer, String, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from radpacs.archive.index import Base

__all__ = ["AuditEvent", "AuditLog", "AuditQuery", "AuditRecord"]

log = logging.getLogger("radpacs.audit")


class AuditEvent(Base):
    """One access to patient data or accounts: who, when, from where, what, which UIDs, outcome."""

    __tablename__ = "audit_event"

    pk: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str] = mapped_column(String(64), default="", index=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(32), index=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1000))
    study_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    series_uid: Mapped[str] = mapped_column(String(64), default="")
    sop_uid: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(1000), default="")


def _clip(value: str, size: int) -> str:
    return value if len(value) <= size else value[: size - 1] + "…"


@dataclass
class AuditRecord:
    """One audited access; ``status`` is the HTTP status the request ended with."""

    action: str
    method: str
    path: str
    status: int
    username: str = ""
    client: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    detail: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, object]:
        values = asdict(self)
        values["path"] = _clip(self.path, 1000)
        values["detail"] = _clip(self.detail, 1000)
        for key, size in (("username", 64), ("client", 64), ("action", 32), ("method", 8)):
            values[key] = _clip(str(values[key]), size)
        return values


@dataclass(frozen=True)
class AuditQuery:
    """Filters of :meth:`AuditLog.query`; None means any."""

    username: str | None = None
    study_uid: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


def _urgent(item: object) -> bool:
    """A flush or a stop: write what is gathered now."""
    return item is _STOP or isinstance(item, _Flush)


class AuditLog:
    """Queues audit records and writes them in batches from one writer thread."""

    def __init__(self, engine: Engine, interval: float = 0.2, batch_size: int = 500) -> None:
        self._engine = engine.execution_options(sqlite_immediate=True)
        self._read_engine = engine
        self._interval = interval
        self._batch_size = batch_size
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="radpacs-audit", daemon=True)
        self._thread.start()

    def record(self, event: AuditRecord) -> None:
        """Queue ``event`` for writing; never blocks on the database."""
        log.info(
            "%s %s %s %s study=%s series=%s sop=%s status=%d %s",
            event.username or "-",
            event.client or "-",
            event.action,
            event.path,
            event.study_uid or "-",
            event.series_uid or "-",
            event.sop_uid or "-",
            event.status,
            event.detail,
        )
        self._queue.put(event)

    def flush(self, timeout: float = 10) -> None:
        """Return once every event queued before this call is in the database."""
        if not self._thread.is_alive():
            return
        marker = _Flush()
        self._queue.put(marker)
        marker.done.wait(timeout)

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            items = [first]
            deadline = time.monotonic() + self._interval
            while len(items) < self._batch_size and not _urgent(items[-1]):
                try:  # gather for one interval: one transaction per batch, not per event
                    items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            records = [item for item in items if isinstance(item, AuditRecord)]
            if records:
                self._write(records)
            for item in items:
                if isinstance(item, _Flush):
                    item.done.set()
                elif item is _STOP:
                    stopping = True

    def _write(self, records: list[AuditRecord]) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(AuditEvent), [record.row() for record in records])
        except SQLAlchemyError:
            log.exception("could not write %d audit events to the database", len(records))

    def query(self, filters: AuditQuery) -> tuple[list[dict[str, object]], int]:
        """Events matching ``filters``, newest first, and how many match in all."""
        conditions = []
        if filters.username:
            conditions.append(AuditEvent.username == filters.username)
        if filters.study_uid:
            conditions.append(AuditEvent.study_uid == filters.study_uid)
        if filters.action:
            conditions.append(AuditEvent.action == filters.action)
        if filters.since:
            conditions.append(AuditEvent.at >= filters.since)
        if filters.until:
            conditions.append(AuditEvent.at < filters.until)
        statement = (
            select(AuditEvent)
            .where(*conditions)
            .order_by(AuditEvent.at.desc(), AuditEvent.pk.desc())
            .limit(filters.limit)
            .offset(filters.offset)
        )
        total_statement = select(func.count()).select_from(AuditEvent).where(*conditions)
        with self._read_engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
            total = int(connection.scalar(total_statement) or 0)
        events = []
        for row in rows:
            at = row["at"]
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            event = {key: row[key] for key in row.keys() if key != "pk"}  # noqa: SIM118
            event["id"] = row["pk"]
            event["at"] = at.isoformat()
            events.append(event)
        return events, total
