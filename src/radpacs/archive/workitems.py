"""Unified Procedure Step workitems and their subscriptions (PS3.4 Annex CC, PS3.18 11).

A workitem is one UPS instance kept as DICOM JSON beside the columns its search matches on.
:class:`WorkitemStore` enforces the state machine of PS3.4 Table CC.1.1-2:

- create: ProcedureStepState must be SCHEDULED and no Transaction UID given; missing
  SOP Class, priority and readiness are filled (``modified`` says so);
- SCHEDULED -> IN PROGRESS with a new Transaction UID (the claim); IN PROGRESS ->
  COMPLETED or CANCELED only with that UID; COMPLETED needs the Unified Procedure Step
  Performed Procedure Sequence with its start and end date-times (final state, CC.2.5.1.3);
- update (N-SET): without Transaction UID while SCHEDULED, with it while IN PROGRESS, never
  once COMPLETED or CANCELED; the state itself is not updated this way;
- request cancellation (N-ACTION): a SCHEDULED item is canceled at once, an IN PROGRESS one
  gets a Cancel Requested event for its performer.

Each change returns the :class:`Event` reports (PS3.4 CC.2.4) and :meth:`recipients` names
the subscribed AE titles (one workitem, global, or filtered with the QIDO-RS rules of
:mod:`radpacs.archive.query`). Refusals raise :class:`WorkitemError` carrying the words
PS3.18 prescribes for the Warning header.

Example::

    store = WorkitemStore(archive.engine)
    uid, _ = store.create({"00741000": {"vr": "CS", "Value": ["SCHEDULED"]}, ...})
    store.change_state(uid, "IN PROGRESS", transaction_uid)
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydicom.uid import generate_uid
from sqlalchemy import Boolean, DateTime, Engine, Integer, String, Text, delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from radpacs.archive.index import Base, utc_now
from radpacs.archive.query import _person_name_condition, _range_condition
from radpacs.archive.query import _text_condition as text_condition
from radpacs.errors import Conflict, InvalidInput, InvalidQuery, NotFound, StorageError

__all__ = [
    "CANCEL_REQUESTED",
    "FILTERED_SUBSCRIPTION_UID",
    "GLOBAL_SUBSCRIPTION_UID",
    "STATE",
    "STATE_REPORT",
    "UPS_PUSH_SOP_CLASS",
    "WORKITEM_KEYS",
    "Event",
    "WorkitemConflict",
    "WorkitemError",
    "WorkitemStore",
    "job_workitem_uid",
    "mirror_job",
]

UPS_PUSH_SOP_CLASS = "1.2.840.10008.5.1.4.34.6.1"
GLOBAL_SUBSCRIPTION_UID = "1.2.840.10008.5.1.4.34.5"  # PS3.4 CC.3.1.4
FILTERED_SUBSCRIPTION_UID = "1.2.840.10008.5.1.4.34.5.1"

SCHEDULED, IN_PROGRESS, COMPLETED, CANCELED = "SCHEDULED", "IN PROGRESS", "COMPLETED", "CANCELED"
_FINAL = (COMPLETED, CANCELED)

# tags (DICOM JSON keys)
STATE = "00741000"
TRANSACTION = "00081195"
SOP_CLASS = "00080016"
SOP_INSTANCE = "00080018"
PRIORITY = "00741200"
READINESS = "00404041"
PERFORMED = "00741216"
PROGRESS = "00741002"
_PERFORMED_START = "00404050"
_PERFORMED_END = "00404051"

# event types, PS3.4 Table CC.2.4-1 (Event Type ID 0000,1002)
STATE_REPORT, CANCEL_REQUESTED, PROGRESS_REPORT = 1, 2, 3

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_WORKLIST_OWN = '"radpacs AI"'
_OWN_JOB = (
    "The UPS is performed by radpacs's own AI worker: it cannot be claimed or updated "
    "(cancel it with POST /workitems/{uid}/cancelrequest or /api/ai/jobs/{id}/cancel)"
)
_AE = re.compile(r"^[ -~]{1,16}$")


class WorkitemError(InvalidInput):
    """A refused request that PS3.18 answers with 400 and a Warning: the message says why."""


class WorkitemConflict(Conflict):
    """A request inconsistent with the workitem's state (PS3.18: 409 with a Warning)."""


@dataclass(frozen=True)
class Event:
    """One event report (PS3.4 CC.2.4): its type and the event information, DICOM JSON."""

    uid: str
    type_id: int
    info: dict[str, Any]


class WorkitemRow(Base):
    """One UPS instance: the dataset as DICOM JSON and the columns search matches on."""

    __tablename__ = "workitem"

    pk: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    transaction_uid: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    patient_name_lower: Mapped[str] = mapped_column(String(400), default="")
    study_uid: Mapped[str] = mapped_column(String(64), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    scheduled_start: Mapped[str] = mapped_column(String(14), default="", index=True)
    priority: Mapped[str] = mapped_column(String(16), default="")
    label: Mapped[str] = mapped_column(String(64), default="")
    worklist_label: Mapped[str] = mapped_column(String(64), default="")
    readiness: Mapped[str] = mapped_column(String(16), default="")
    dataset: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class EventRow(Base):
    """One event report made outside the HTTP routes (by :func:`mirror_job`, in the job's
    transaction), kept for a while so that every API process relays it to its channels."""

    __tablename__ = "workitem_event"

    pk: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(64))
    type_id: Mapped[int] = mapped_column(Integer)
    info: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, index=True
    )


class SubscriptionRow(Base):
    """A subscriber AE title to one workitem, to all (global) or to a filter."""

    __tablename__ = "workitem_subscription"

    pk: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), index=True)
    workitem_uid: Mapped[str] = mapped_column(String(64))
    filter: Mapped[str] = mapped_column(Text, default="")
    deletion_lock: Mapped[bool] = mapped_column(Boolean, default=False)


def _normalize_datetime(text: str) -> str:
    digits = text.strip().split("+")[0].split(".")[0]
    if not re.match(r"^\d{8}(\d{2}){0,3}$", digits):
        return ""
    return digits.ljust(14, "0")


# search keys: keyword or tag -> (column, how it is matched)
WORKITEM_KEYS: dict[str, tuple[str, str]] = {
    "SOPInstanceUID": ("uid", "text"),
    "ProcedureStepState": ("state", "text"),
    "PatientID": ("patient_id", "text"),
    "PatientName": ("patient_name_lower", "pn"),
    "StudyInstanceUID": ("study_uid", "text"),
    "AccessionNumber": ("accession_number", "text"),
    "ScheduledProcedureStepStartDateTime": ("scheduled_start", "datetime"),
    "ScheduledProcedureStepPriority": ("priority", "text"),
    "ProcedureStepLabel": ("label", "text"),
    "WorklistLabel": ("worklist_label", "text"),
    "InputReadinessState": ("readiness", "text"),
}
_TAGS = {
    "00080018": "SOPInstanceUID",
    STATE: "ProcedureStepState",
    "00100020": "PatientID",
    "00100010": "PatientName",
    "0020000D": "StudyInstanceUID",
    "00080050": "AccessionNumber",
    "00404005": "ScheduledProcedureStepStartDateTime",
    PRIORITY: "ScheduledProcedureStepPriority",
    "00741204": "ProcedureStepLabel",
    "00741202": "WorklistLabel",
    READINESS: "InputReadinessState",
}


def _value(dataset: dict[str, Any], tag: str) -> str:
    element = dataset.get(tag) or {}
    values = element.get("Value") or [""]
    first = values[0] if isinstance(values, list) else ""
    if isinstance(first, dict):  # PN
        return str(first.get("Alphabetic", ""))
    return str(first)


def _cs(value: str) -> dict[str, Any]:
    return {"vr": "CS", "Value": [value]}


def _now_dt() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _columns(dataset: dict[str, Any]) -> dict[str, str]:
    return {
        "patient_id": _value(dataset, "00100020")[:64],
        "patient_name_lower": _value(dataset, "00100010").lower()[:400],
        "study_uid": _value(dataset, "0020000D")[:64],
        "accession_number": _value(dataset, "00080050")[:64],
        "scheduled_start": _normalize_datetime(_value(dataset, "00404005")),
        "priority": _value(dataset, PRIORITY)[:16],
        "label": _value(dataset, "00741204")[:64],
        "worklist_label": _value(dataset, "00741202")[:64],
        "readiness": _value(dataset, READINESS)[:16],
    }


def _well_formed(dataset: Any, depth: int = 0) -> bool:
    """A DICOM JSON dataset (PS3.18 F.2): tag keys, elements with a list Value, SQ items
    datasets themselves (to a sane depth)."""
    if not isinstance(dataset, dict) or depth > 8:
        return False
    for key, element in dataset.items():
        if not re.match(r"^[0-9A-Fa-f]{8}$", key) or not isinstance(element, dict):
            return False
        values = element.get("Value", [])
        if not isinstance(values, list):
            return False
        if element.get("vr") == "SQ" and not all(_well_formed(i, depth + 1) for i in values):
            return False
    return True


def _check_dataset(dataset: Any) -> dict[str, Any]:
    if isinstance(dataset, list) and len(dataset) == 1:
        dataset = dataset[0]
    if not _well_formed(dataset):
        raise WorkitemError("the body is not a DICOM JSON dataset (PS3.18 F.2)")
    return {key.upper(): value for key, value in dataset.items()}


def _state_report(uid: str, state: str, readiness: str) -> Event:
    info = {STATE: _cs(state)}
    if readiness:
        info[READINESS] = _cs(readiness)
    return Event(uid, STATE_REPORT, info)


class WorkitemStore:
    """Creates, finds, updates and moves workitems through their states; keeps subscriptions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # writes take SQLite's lock up front (BEGIN IMMEDIATE, archive/database.py): a
        # deferred one fails at once with "database is locked" when a job worker wrote
        self._write = sessionmaker(engine.execution_options(sqlite_immediate=True))

    # -- workitems ---------------------------------------------------------------------

    def create(self, body: Any, uid: str | None = None) -> tuple[str, bool]:
        """Store a new SCHEDULED workitem; (its UID, whether radpacs filled attributes)."""
        dataset = _check_dataset(body)
        given = _value(dataset, SOP_INSTANCE)
        if uid and given and given != uid:
            raise WorkitemError(f"SOPInstanceUID {given} differs from the workitem UID {uid}")
        uid = uid or given or str(generate_uid())
        if not _UID.match(uid) or len(uid) > 64:
            raise WorkitemError(f"{uid!r} is not a UID")
        if uid in (GLOBAL_SUBSCRIPTION_UID, FILTERED_SUBSCRIPTION_UID):
            raise WorkitemError(f"{uid} is reserved for subscriptions")
        if _value(dataset, STATE) != SCHEDULED:
            raise WorkitemError(
                "The Procedure Step State (0074,1000) of a new workitem must be SCHEDULED"
            )
        if TRANSACTION in dataset:
            raise WorkitemError("A new workitem must not carry a Transaction UID (0008,1195)")
        modified = False
        for tag, element in (
            (SOP_CLASS, {"vr": "UI", "Value": [UPS_PUSH_SOP_CLASS]}),
            (SOP_INSTANCE, {"vr": "UI", "Value": [uid]}),
            (PRIORITY, _cs("MEDIUM")),
            (READINESS, _cs("READY")),
        ):
            if not _value(dataset, tag):
                dataset[tag] = element
                modified = modified or tag != SOP_INSTANCE
        row = WorkitemRow(uid=uid, state=SCHEDULED, dataset=json.dumps(dataset))
        for name, value in _columns(dataset).items():
            setattr(row, name, value)
        try:
            with self._write() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise WorkitemConflict(f"The workitem {uid} already exists") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot store the workitem: {exc}") from exc
        return uid, modified

    def get(self, uid: str) -> dict[str, Any]:
        """The workitem as DICOM JSON, without its Transaction UID (PS3.4 CC.2.8.3)."""
        with Session(self.engine) as session:
            row = self._row(session, uid)
            return json.loads(row.dataset)  # type: ignore[no-any-return]

    def state(self, uid: str) -> str:
        with Session(self.engine) as session:
            return self._row(session, uid).state

    @staticmethod
    def _row(session: Session, uid: str) -> WorkitemRow:
        row = session.scalars(select(WorkitemRow).where(WorkitemRow.uid == uid)).one_or_none()
        if row is None:
            raise NotFound(f"The workitem {uid} does not exist")
        return row

    def search(
        self, keys: list[tuple[str, str]], limit: int = 100, offset: int = 0, uid: str = ""
    ) -> list[dict[str, Any]]:
        """Workitems matching ``keys`` (keyword or tag, QIDO-RS rules), oldest first."""
        conditions = [] if not uid else [WorkitemRow.uid == uid]
        for key, raw in keys:
            keyword = _TAGS.get(key.upper(), key)
            if keyword not in WORKITEM_KEYS:
                raise InvalidQuery(
                    f"matching on {key} is not supported; supported keys: "
                    + ", ".join(WORKITEM_KEYS)
                )
            value = raw.strip()
            if not value or value == "*":
                continue
            column_name, kind = WORKITEM_KEYS[keyword]
            column = getattr(WorkitemRow, column_name)
            if kind == "pn":
                conditions.append(_person_name_condition(column, value, False))
            elif kind == "datetime":
                conditions.append(
                    _range_condition(column, value, keyword, _normalize_datetime, "99991231235959")
                )
            else:
                conditions.append(text_condition(column, value))
        statement = (
            select(WorkitemRow.dataset)
            .where(*conditions)
            .order_by(WorkitemRow.pk)
            .offset(offset)
            .limit(limit)
        )
        with Session(self.engine) as session:
            return [json.loads(text) for text in session.scalars(statement)]

    def update(self, uid: str, body: Any, transaction_uid: str | None) -> list[Event]:
        """Replace the given attributes (N-SET, PS3.4 CC.2.6); events if progress changed."""
        changes = _check_dataset(body)
        for tag, what in (
            (STATE, "Procedure Step State (change it with PUT .../state)"),
            (TRANSACTION, "Transaction UID"),
            (SOP_INSTANCE, "SOP Instance UID"),
            (SOP_CLASS, "SOP Class UID"),
        ):
            if tag in changes:
                raise WorkitemError(f"The {what} cannot be updated")
        with self._write() as session, session.begin():
            row = self._row(session, uid)
            if row.state in _FINAL:
                raise WorkitemConflict(f"The UPS may no longer be updated: it is {row.state}")
            if row.state == IN_PROGRESS or row.transaction_uid:
                self._check_transaction(row, transaction_uid)
            dataset = json.loads(row.dataset)
            dataset.update(changes)
            row.dataset = json.dumps(dataset)
            for name, value in _columns(dataset).items():
                setattr(row, name, value)
            row.updated_at = utc_now()
        events = []
        if PROGRESS in changes:
            events.append(Event(uid, PROGRESS_REPORT, {PROGRESS: changes[PROGRESS]}))
        return events

    @staticmethod
    def _check_transaction(row: WorkitemRow, given: str | None) -> None:
        if not given:
            raise WorkitemError(f"The Transaction UID is missing: {row.uid} is IN PROGRESS")
        if given != row.transaction_uid:
            raise WorkitemConflict("The Transaction UID is incorrect")

    def change_state(self, uid: str, body: Any) -> tuple[list[Event], str]:
        """Move the workitem to the state of ``body`` (N-ACTION Change State, CC.2.6);
        (the events, a warning for a request that changed nothing)."""
        request = _check_dataset(body)
        wanted = _value(request, STATE)
        transaction_uid = _value(request, TRANSACTION)
        if wanted not in (IN_PROGRESS, COMPLETED, CANCELED):
            raise WorkitemError(
                f"The requested state {wanted!r} is not IN PROGRESS, COMPLETED or CANCELED"
            )
        if not transaction_uid:
            raise WorkitemError("The Transaction UID (0008,1195) is missing")
        if not _UID.match(transaction_uid):
            raise WorkitemError(f"The Transaction UID {transaction_uid!r} is not a UID")
        with self._write() as session, session.begin():
            row = self._row(session, uid)
            if row.state == wanted and wanted in _FINAL:
                return [], f"The UPS is already in the requested state of {wanted}"
            if row.state in _FINAL:
                raise WorkitemConflict(f"The UPS may no longer be updated: it is {row.state}")
            if wanted == IN_PROGRESS:
                if row.state == IN_PROGRESS:
                    raise WorkitemConflict("The UPS is already IN PROGRESS")
                if row.transaction_uid:
                    raise WorkitemConflict(_OWN_JOB)
                row.transaction_uid = transaction_uid
            else:
                if row.state == SCHEDULED:
                    raise WorkitemConflict(
                        "The submitted request is inconsistent with the current state of the "
                        f"UPS Instance: it is SCHEDULED, not IN PROGRESS, and cannot be {wanted}"
                    )
                self._check_transaction(row, transaction_uid)
            dataset = json.loads(row.dataset)
            if wanted == COMPLETED:
                performed = (dataset.get(PERFORMED) or {}).get("Value") or [{}]
                missing = [
                    name
                    for tag, name in (
                        (_PERFORMED_START, "Performed Procedure Step Start DateTime"),
                        (_PERFORMED_END, "Performed Procedure Step End DateTime"),
                    )
                    if not _value(performed[0], tag)
                ]
                if missing:
                    raise WorkitemConflict(
                        "The UPS is not yet in a state to be completed (final state "
                        "requirements, PS3.4 CC.2.5.1.3.1): the Unified Procedure Step "
                        "Performed Procedure Sequence (0074,1216) lacks " + " and ".join(missing)
                    )
            if wanted == CANCELED:
                progress = (dataset.get(PROGRESS) or {}).get("Value") or [{}]
                progress[0]["00404052"] = {"vr": "DT", "Value": [_now_dt()]}
                dataset[PROGRESS] = {"vr": "SQ", "Value": progress}
            dataset[STATE] = _cs(wanted)
            row.state = wanted
            row.dataset = json.dumps(dataset)
            row.updated_at = utc_now()
            readiness = row.readiness
        return [_state_report(uid, wanted, readiness)], ""

    def request_cancel(self, uid: str, body: Any) -> list[Event]:
        """Ask for cancellation (N-ACTION Request Cancel, CC.2.2): a SCHEDULED workitem is
        canceled now, an IN PROGRESS one gets a Cancel Requested event for its performer."""
        reason = _check_dataset(body) if body else {}
        with self._write() as session, session.begin():
            row = self._row(session, uid)
            if row.state in _FINAL:
                raise WorkitemConflict(f"The UPS is already {row.state}")
            if self._is_own_job(row):
                raise WorkitemConflict(_OWN_JOB)
            if row.state == IN_PROGRESS:
                return [Event(uid, CANCEL_REQUESTED, reason)]
            dataset = json.loads(row.dataset)
            dataset[STATE] = _cs(CANCELED)
            progress = [{"00404052": {"vr": "DT", "Value": [_now_dt()]}}]
            if "00741238" in reason:
                progress[0]["00741238"] = reason["00741238"]
            dataset[PROGRESS] = {"vr": "SQ", "Value": progress}
            row.state = CANCELED
            row.dataset = json.dumps(dataset)
            row.updated_at = utc_now()
            readiness = row.readiness
        return [
            _state_report(uid, IN_PROGRESS, readiness),
            _state_report(uid, CANCELED, readiness),
        ]

    @staticmethod
    def _is_own_job(row: WorkitemRow) -> bool:
        return bool(row.transaction_uid) and _WORKLIST_OWN in row.dataset

    def own_job(self, uid: str) -> str | None:
        """The id of the radpacs AI job that ``uid`` mirrors, or None for other workitems."""
        with Session(self.engine) as session:
            row = self._row(session, uid)
            if not self._is_own_job(row):
                return None
        return str(uuid.UUID(int=int(uid.removeprefix("2.25."))))

    # -- subscriptions -----------------------------------------------------------------

    def subscribe(
        self,
        uid: str,
        ae_title: str,
        deletion_lock: bool = False,
        filter_keys: list[tuple[str, str]] | None = None,
    ) -> list[Event]:
        """Subscribe ``ae_title`` (CC.2.3.2); the initial State Reports of what it now sees."""
        if not _AE.match(ae_title) or ae_title != ae_title.strip():
            raise WorkitemError(f"{ae_title!r} is not an AE title (1 to 16 characters)")
        keys = list(filter_keys or [])
        if uid == FILTERED_SUBSCRIPTION_UID:
            self.search(keys, limit=1)  # refuses unknown keys now, not at the first event
        elif keys:
            raise WorkitemError("a filter is taken only with the filtered subscription UID")
        if uid not in (GLOBAL_SUBSCRIPTION_UID, FILTERED_SUBSCRIPTION_UID):
            self.state(uid)  # 404 for an unknown workitem
        with self._write() as session, session.begin():
            session.execute(
                delete(SubscriptionRow).where(
                    SubscriptionRow.ae_title == ae_title, SubscriptionRow.workitem_uid == uid
                )
            )
            session.add(
                SubscriptionRow(
                    ae_title=ae_title,
                    workitem_uid=uid,
                    filter=json.dumps(keys),
                    deletion_lock=deletion_lock,
                )
            )
        if uid in (GLOBAL_SUBSCRIPTION_UID, FILTERED_SUBSCRIPTION_UID):
            open_items = self.search([*keys, ("ProcedureStepState", SCHEDULED)], limit=1000)
            open_items += self.search([*keys, ("ProcedureStepState", IN_PROGRESS)], limit=1000)
        else:
            open_items = [self.get(uid)]
        return [
            _state_report(_value(item, SOP_INSTANCE), _value(item, STATE), _value(item, READINESS))
            for item in open_items
        ]

    def unsubscribe(self, uid: str, ae_title: str, suspend: bool = False) -> None:
        """Remove a subscription (CC.2.3.3). Unsubscribing from the global UID removes every
        subscription of ``ae_title``; ``suspend`` removes only the global one (CC.2.3.4)."""
        condition = SubscriptionRow.ae_title == ae_title
        with self._write() as session, session.begin():
            if uid == GLOBAL_SUBSCRIPTION_UID and not suspend:
                removed = session.execute(delete(SubscriptionRow).where(condition))
            else:
                removed = session.execute(
                    delete(SubscriptionRow).where(condition, SubscriptionRow.workitem_uid == uid)
                )
        if not removed.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"{ae_title} is not subscribed to {uid}")

    # -- events made outside the HTTP routes (the job mirror) ---------------------------

    def last_event(self) -> int:
        """The position of the newest recorded event (0 if none): relay from there on."""
        with Session(self.engine) as session:
            return int(session.scalar(select(func.max(EventRow.pk))) or 0)

    def events_after(self, position: int, limit: int = 500) -> tuple[int, list[Event]]:
        """The recorded events after ``position``, oldest first, and the new position."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(EventRow).where(EventRow.pk > position).order_by(EventRow.pk).limit(limit)
            ).all()
        events = [Event(row.uid, row.type_id, json.loads(row.info)) for row in rows]
        return (rows[-1].pk if rows else position), events

    def prune_events(self, older_than: timedelta) -> None:
        """Forget recorded events older than ``older_than`` (every relay has sent them)."""
        with self._write() as session, session.begin():
            session.execute(delete(EventRow).where(EventRow.created_at < utc_now() - older_than))

    def recipients(self, uid: str) -> set[str]:
        """The AE titles subscribed to ``uid``: by its UID, globally or by a matching filter."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(SubscriptionRow).where(
                    SubscriptionRow.workitem_uid.in_(
                        [uid, GLOBAL_SUBSCRIPTION_UID, FILTERED_SUBSCRIPTION_UID]
                    )
                )
            ).all()
        found = set()
        for row in rows:
            keys = [(str(k), str(v)) for k, v in json.loads(row.filter or "[]")]
            if row.workitem_uid != FILTERED_SUBSCRIPTION_UID or self.search(keys, 1, uid=uid):
                found.add(row.ae_title)
        return found


# -- radpacs's own AI jobs as workitems ----------------------------------------------------

_JOB_STATES = {
    "queued": SCHEDULED,
    "running": IN_PROGRESS,
    "succeeded": COMPLETED,
    "failed": CANCELED,
    "cancelled": CANCELED,
}
_ORDER = {SCHEDULED: 0, IN_PROGRESS: 1, COMPLETED: 2, CANCELED: 2}


def job_workitem_uid(job_id: str) -> str:
    """The UID of the workitem that mirrors job ``job_id`` (a UUID: PS3.5 B.2 ``2.25.``)."""
    return f"2.25.{uuid.UUID(job_id).int}"


def _dt(value: datetime | None) -> str:
    return (value or utc_now()).astimezone(UTC).strftime("%Y%m%d%H%M%S")


def mirror_job(session: Session, job: Any) -> None:
    """Keep the workitem of an ``ai`` job in step with it, in the job's own transaction:
    queued -> SCHEDULED, running -> IN PROGRESS, succeeded -> COMPLETED (with the performed
    start and end), failed or cancelled -> CANCELED (the error as the reason). A retried job
    stays IN PROGRESS; a workitem never moves back. An ``app-delivery`` job that failed for
    good cancels its workitem (``params["workitem"]``) with the reason. Other kinds are left
    alone. Each state entered records its State Report (``workitem_event``) for the API
    processes to relay to subscribers."""
    if job is not None and job.kind == "app-delivery" and job.state == "failed":
        _fail_app_workitem(session, job)
        return
    if job is None or job.kind != "ai":
        return
    wanted = _JOB_STATES.get(job.state)
    if wanted is None:
        return
    uid = job_workitem_uid(job.id)
    row = session.scalars(select(WorkitemRow).where(WorkitemRow.uid == uid)).one_or_none()
    if row is None:
        params = json.loads(job.params_json or "{}")
        item_input: dict[str, Any] = {"0020000D": {"vr": "UI", "Value": [job.study_uid]}}
        if params.get("series"):
            item_input["0020000E"] = {"vr": "UI", "Value": [params["series"]]}
        dataset: dict[str, Any] = {
            SOP_CLASS: {"vr": "UI", "Value": [UPS_PUSH_SOP_CLASS]},
            SOP_INSTANCE: {"vr": "UI", "Value": [uid]},
            STATE: _cs(SCHEDULED),
            PRIORITY: _cs("MEDIUM"),
            READINESS: _cs("READY"),
            "00741204": {"vr": "LO", "Value": [f"AI {params.get('model', '')}".strip()[:64]]},
            "00741202": {"vr": "LO", "Value": ["radpacs AI"]},
            "00404005": {"vr": "DT", "Value": [_dt(job.created_at)]},
            "0020000D": {"vr": "UI", "Value": [job.study_uid]},
            "00404021": {"vr": "SQ", "Value": [item_input]},
        }
        # a Transaction UID from the start: the job's own worker performs it, no one claims it
        row = WorkitemRow(
            uid=uid,
            state=SCHEDULED,
            transaction_uid=str(generate_uid()),
            dataset=json.dumps(dataset),
            **_columns(dataset),
        )
        session.add(row)
        _record(session, uid, SCHEDULED, row.readiness)
    if _ORDER[wanted] <= _ORDER[row.state] or row.state in _FINAL:
        return
    dataset = json.loads(row.dataset)
    dataset[STATE] = _cs(wanted)
    if wanted in _FINAL:
        dataset[PERFORMED] = {
            "vr": "SQ",
            "Value": [
                {
                    _PERFORMED_START: {"vr": "DT", "Value": [_dt(job.started_at)]},
                    _PERFORMED_END: {"vr": "DT", "Value": [_dt(job.finished_at)]},
                }
            ],
        }
    if wanted == CANCELED:
        progress: dict[str, Any] = {"00404052": {"vr": "DT", "Value": [_dt(job.finished_at)]}}
        if job.error:
            progress["00741238"] = {"vr": "LT", "Value": [job.error[:1024]]}
        dataset[PROGRESS] = {"vr": "SQ", "Value": [progress]}
    row.state = wanted
    row.dataset = json.dumps(dataset)
    row.updated_at = utc_now()
    _record(session, uid, wanted, row.readiness)


def _record(session: Session, uid: str, state: str, readiness: str) -> None:
    """Record the State Report of ``uid`` entering ``state`` for the API processes to relay
    (:meth:`WorkitemStore.events_after`)."""
    event = _state_report(uid, state, readiness)
    session.add(EventRow(uid=uid, type_id=event.type_id, info=json.dumps(event.info)))


def _fail_app_workitem(session: Session, job: Any) -> None:
    """CANCEL the IN PROGRESS workitem of a callback app whose request could not be
    delivered, with the delivery's last error as the Reason For Cancellation."""
    uid = str(json.loads(job.params_json or "{}").get("workitem", ""))
    row = session.scalars(select(WorkitemRow).where(WorkitemRow.uid == uid)).one_or_none()
    if row is None or row.state in _FINAL:
        return
    dataset = json.loads(row.dataset)
    dataset[STATE] = _cs(CANCELED)
    reason = f"the request could not be delivered to the app: {job.error or 'no reason'}"
    progress = {
        "00404052": {"vr": "DT", "Value": [_dt(job.finished_at)]},
        "00741238": {"vr": "LT", "Value": [reason[:1024]]},
    }
    dataset[PROGRESS] = {"vr": "SQ", "Value": [progress]}
    row.state = CANCELED
    row.dataset = json.dumps(dataset)
    row.updated_at = utc_now()
    _record(session, uid, CANCELED, row.readiness)
