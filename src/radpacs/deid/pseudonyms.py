"""Deterministic pseudonyms under a per-installation secret (PS3.15 E.1.1 note 3).

Every replacement value is a keyed hash (HMAC-SHA256) of the original under the
installation's secret, so the same original gives the same pseudonym in every object and
every upload, and nobody without the secret can compute or reverse it:

- a UID becomes ``2.25.<decimal of the first 128 bits>`` (a UUID-derived UID under the
  ``2.25`` root of PS3.5 B.2; at most 44 characters);
- a patient, keyed by Issuer of Patient ID and Patient ID (or, when the ID is empty, by
  the Patient's Name), becomes ``RP`` + 16 hex digits for Patient ID and
  ``ANONYMOUS^RP...`` for Patient's Name;
- dates of one patient shift by one number of days, between 365 and 3652 days back.

Originals are never stored by this module. A :class:`PseudonymStore` records which
original patient a pseudonym stands for, so that an administrator can look it up;
:class:`MemoryPseudonymStore` is the in-memory backend.

Example::

    pseudonyms = Pseudonyms(b"installation secret")
    pseudonyms.uid("1.2.3")          # '2.25.…', the same every time for this secret
    pseudonyms.patient("PAT-1", "DOE^JOHN").patient_id   # 'RP…'
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

__all__ = [
    "MemoryPseudonymStore",
    "PatientPseudonym",
    "PatientRecord",
    "PseudonymStore",
    "Pseudonyms",
    "shift_date",
    "shift_datetime",
]

_MIN_SECRET_BYTES = 16
_MIN_SHIFT_DAYS = 365
_MAX_SHIFT_DAYS = 3652


@dataclass(frozen=True, slots=True)
class PatientPseudonym:
    """The replacement identity of one patient and the date shift of their records."""

    patient_id: str
    patient_name: str
    date_shift_days: int

    def __post_init__(self) -> None:
        if not self.patient_id:
            raise ValueError("a patient pseudonym needs a non-empty patient_id")
        if self.date_shift_days > 0:
            raise ValueError(f"date_shift_days must move dates back, got {self.date_shift_days}")


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """What a :class:`PseudonymStore` keeps: a pseudonym and the original it stands for."""

    pseudonym: str
    original_patient_id: str
    original_patient_name: str
    issuer_of_patient_id: str = ""


class PseudonymStore(Protocol):
    """Where patient pseudonyms and their originals are kept (a database in production).

    ``record`` is idempotent for one pseudonym. ``lookup`` is the admin-only reverse
    mapping; callers are responsible for checking the role before calling it.
    """

    def record(self, record: PatientRecord) -> None: ...

    def lookup(self, pseudonym: str) -> PatientRecord | None: ...


class MemoryPseudonymStore:
    """A :class:`PseudonymStore` in a dict, for tests and one-shot command-line runs."""

    def __init__(self) -> None:
        self._records: dict[str, PatientRecord] = {}
        self._lock = threading.Lock()

    def record(self, record: PatientRecord) -> None:
        with self._lock:
            self._records.setdefault(record.pseudonym, record)

    def lookup(self, pseudonym: str) -> PatientRecord | None:
        with self._lock:
            return self._records.get(pseudonym)

    def __len__(self) -> int:
        return len(self._records)


class Pseudonyms:
    """Keyed, deterministic replacements for UIDs, patients and dates.

    ``secret`` must hold at least 16 bytes (``str`` is encoded as UTF-8); a shorter one
    raises ``ValueError``. UID results are cached, so one instance per secret serves a
    whole study quickly.
    """

    def __init__(self, secret: bytes | str) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, bytes):
            raise TypeError(f"secret must be bytes or str, not {type(secret).__name__}")
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(
                f"the de-identification secret must hold at least {_MIN_SECRET_BYTES} bytes"
            )
        self._key = secret
        self._uids: dict[str, str] = {}

    def _digest(self, domain: str, value: str) -> bytes:
        message = f"{domain}\x00{value}".encode("utf-8", "surrogateescape")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The replacement UID for ``original`` (surrounding spaces and NULs ignored)."""
        original = original.strip(" \x00")
        cached = self._uids.get(original)
        if cached is None:
            number = int.from_bytes(self._digest("uid", original)[:16], "big")
            cached = f"2.25.{number}"
            self._uids[original] = cached
        return cached

    def patient(
        self, patient_id: str, patient_name: str = "", issuer: str = ""
    ) -> PatientPseudonym:
        """The pseudonym of a patient known by ID (and issuer), or by name when the ID is empty."""
        key = f"id\x00{issuer.strip()}\x00{patient_id.strip()}"
        if not patient_id.strip():
            key = f"name\x00{patient_name.strip().upper()}"
        digest = self._digest("patient", key)
        pseudonym = "RP" + digest[:8].hex().upper()
        span = _MAX_SHIFT_DAYS - _MIN_SHIFT_DAYS + 1
        shift = _MIN_SHIFT_DAYS + int.from_bytes(digest[8:12], "big") % span
        return PatientPseudonym(pseudonym, f"ANONYMOUS^{pseudonym}", -shift)

    def value(self, domain: str, original: str, length: int = 16) -> str:
        """A short upper-case hex pseudonym of ``original`` in ``domain`` (e.g. accession)."""
        return self._digest(domain, original).hex()[:length].upper()


def shift_date(value: str, days: int) -> str:
    """Shift a DA value (YYYYMMDD) by ``days``; other forms (ranges, partial) are emptied."""
    text = value.strip()
    try:
        parsed = datetime.strptime(text[:8], "%Y%m%d").date() if len(text) == 8 else None
    except ValueError:
        parsed = None
    if parsed is None:
        return ""
    try:
        return (parsed + timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return date.min.strftime("%Y%m%d")


def shift_datetime(value: str, days: int) -> str:
    """Shift the date part of a DT value by ``days``; time, fraction and offset are kept.

    A DT with fewer than 8 digits of date (a year, a month) is emptied.
    """
    text = value.strip()
    if len(text) < 8:
        return ""
    shifted = shift_date(text[:8], days)
    return shifted + text[8:] if shifted else ""
