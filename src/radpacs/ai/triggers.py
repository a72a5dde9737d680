"""On-arrival triggers: run a model when a matching series has been stable for N seconds.

Rules come from the ``ai_rules`` setting, e.g. in settings.yml::

    ai_rules:
      - {model: classical-segmenter, modality: CT, description: "*abdo*", stable_seconds: 30}
      - {model: xray-exposure, modality: DX}

``modality`` matches exactly (case-insensitive), ``description`` is a shell-style pattern
on SeriesDescription (case-insensitive; default any), ``body_part`` matches
BodyPartExamined exactly (case-insensitive; default any). The rules may be a callable asked
at each check (callback apps, :mod:`radpacs.apps.service`, whose rules change at run time);
the service is anything with ``archive`` and ``submit(name, study, series, trigger=...)``.
The watcher hears every committed store batch (:meth:`Archive.add_listener`), remembers
when each series last grew, and a background thread (not the event loop) submits a job
once a series has not grown for ``stable_seconds`` (default 10). A series is triggered
once per rule.

Where arrivals are remembered is an :class:`ArrivalBook`: :class:`MemoryArrivals` (one
process, the default) or :class:`RedisArrivals` (setting ``redis_url``): every API process
writes the arrivals it commits into Redis, and only the process holding the leader lease
(:class:`radpacs.shared.LeaderLease`) checks them and submits jobs, so a series stored
through several processes is triggered once, and a new leader takes over within 10 s
when the old one dies.

Every store path reports arrivals the same way: STOW-RS and uploads through the server's
archive, C-STORE to the DICOM node through the archive of the process that runs it (the
server, or the parent of several workers, which opens its own watchers), and a C-GET job,
which runs in a job process, through :func:`shared_arrivals` into the Redis books; without
``redis_url`` the server's watchers read the series that finished C-GET jobs name in their
result (:class:`JobSeriesFeed`) and note them as arrived.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from radpacs.archive import Level, StoreResult, parse_query
from radpacs.archive.jobs import JobState, JobStore
from radpacs.errors import ConfigurationError, RadpacsError
from radpacs.shared import PREFIX, LeaderLease

__all__ = [
    "AI_BOOK",
    "APPS_BOOK",
    "ArrivalBook",
    "ArrivalRule",
    "ArrivalWatcher",
    "JobSeriesFeed",
    "MemoryArrivals",
    "RedisArrivals",
    "note_arrivals",
    "shared_arrivals",
]

SeriesKey = tuple[str, str]  # (study UID, series UID)
RuleKey = tuple[str, str, str]  # (model, study UID, series UID)

log = logging.getLogger(__name__)

AI_BOOK, APPS_BOOK = "ai-arrivals", "app-arrivals"  # the AI rules' book, the callback apps'


@dataclass(frozen=True)
class ArrivalRule:
    model: str
    modality: str = ""
    description: str = "*"
    stable_seconds: float = 10.0
    body_part: str = ""

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ArrivalRule:
        try:
            return cls(
                model=str(raw["model"]),
                modality=str(raw.get("modality", "")),
                description=str(raw.get("description", "*")),
                stable_seconds=float(raw.get("stable_seconds", 10.0)),
                body_part=str(raw.get("body_part", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"AI rule {raw!r} is invalid: {exc}") from exc

    def matches(self, modality: str, description: str, body_part: str = "") -> bool:
        if self.modality and modality.upper() != self.modality.upper():
            return False
        if self.body_part and body_part.upper() != self.body_part.upper():
            return False
        return fnmatch.fnmatch(description.lower(), self.description.lower())


class ArrivalBook(Protocol):
    """When each series last grew, which (rule, series) pairs were triggered, who leads."""

    def now(self) -> float: ...

    def seen(self, keys: list[SeriesKey], at: float) -> None: ...

    def waiting(self) -> dict[SeriesKey, float]: ...

    def forget(self, key: SeriesKey, seen: float) -> None:
        """Drop ``key`` unless it grew again after ``seen``."""

    def is_done(self, key: RuleKey) -> bool: ...

    def mark_done(self, key: RuleKey) -> bool:
        """Record ``key`` as triggered; False when it already was (by any process)."""

    def leads(self) -> bool:
        """True when this process is the one that submits jobs now."""

    def close(self) -> None: ...


class MemoryArrivals:
    """The book of one process (monotonic clock); it always leads."""

    def __init__(self) -> None:
        self._last_seen: dict[SeriesKey, float] = {}
        self._done: set[RuleKey] = set()
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic()

    def seen(self, keys: list[SeriesKey], at: float) -> None:
        with self._lock:
            for key in keys:
                self._last_seen[key] = at

    def waiting(self) -> dict[SeriesKey, float]:
        with self._lock:
            return dict(self._last_seen)

    def forget(self, key: SeriesKey, seen: float) -> None:
        with self._lock:
            if self._last_seen.get(key) == seen:
                del self._last_seen[key]

    def is_done(self, key: RuleKey) -> bool:
        return key in self._done

    def mark_done(self, key: RuleKey) -> bool:
        with self._lock:
            fresh = key not in self._done
            self._done.add(key)
            return fresh

    def leads(self) -> bool:
        return True

    def close(self) -> None:
        pass


_FORGET = """
if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('hdel', KEYS[1], ARGV[1])
end
return 0
"""
_SEP = "\x1f"
_DONE_SECONDS = 30 * 24 * 3600  # a series stored again a month later is triggered again


class RedisArrivals:
    """The book named ``name`` in Redis (wall clock): the hash ``radpacs:<name>`` of series to
    the time they last grew, one key ``radpacs:<name>-done:<model> <study> <series>`` per
    triggered pair (kept 30 days), and the lease ``radpacs:leader:<name>``. Each watcher
    has its own name (``ai-arrivals``, ``app-arrivals``)."""

    def __init__(self, client: Any, name: str = "ai-arrivals", lease_seconds: float = 10.0) -> None:
        self.client = client
        self.key = PREFIX + name
        self.lease = LeaderLease(client, name, lease_seconds)
        self._forget = client.register_script(_FORGET)

    def now(self) -> float:
        return time.time()

    def seen(self, keys: list[SeriesKey], at: float) -> None:
        if keys:
            self.client.hset(self.key, mapping={_SEP.join(key): repr(at) for key in keys})

    def waiting(self) -> dict[SeriesKey, float]:
        found: dict[SeriesKey, float] = {}
        for field, value in self.client.hgetall(self.key).items():
            study, _, series = field.decode().partition(_SEP)
            found[(study, series)] = float(value)
        return found

    def forget(self, key: SeriesKey, seen: float) -> None:
        self._forget(keys=[self.key], args=[_SEP.join(key), repr(seen)])

    def _done_key(self, key: RuleKey) -> str:
        return self.key + "-done:" + _SEP.join(key)

    def is_done(self, key: RuleKey) -> bool:
        return bool(self.client.exists(self._done_key(key)))

    def mark_done(self, key: RuleKey) -> bool:
        return bool(self.client.set(self._done_key(key), b"1", nx=True, ex=_DONE_SECONDS))

    def leads(self) -> bool:
        return self.lease.held()

    def close(self) -> None:
        self.lease.release()


class ArrivalWatcher:
    """Collects arrivals and submits jobs for stable, matching series (see the module)."""

    def __init__(
        self,
        service: Any,
        rules: list[ArrivalRule] | Callable[[], list[ArrivalRule]],
        poll_seconds: float = 0.5,
        book: ArrivalBook | None = None,
        feed: Callable[[], list[SeriesKey]] | None = None,
    ) -> None:
        self.service = service
        self.rules = rules
        self.poll_seconds = poll_seconds
        self.feed = feed  # series stored by other processes, asked at each poll
        self.book: ArrivalBook = book if book is not None else MemoryArrivals()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="radpacs-ai-arrivals", daemon=True)

    def current_rules(self) -> list[ArrivalRule]:
        """The rules now: the list given, or what the callable given answers."""
        return self.rules() if callable(self.rules) else self.rules

    def start(self) -> None:
        if callable(self.rules) or self.rules:
            self.service.archive.add_listener(self.on_stored)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
            try:
                self.book.close()
            except Exception:  # a lease left behind expires on its own
                log.warning("could not release the arrival-rules lease", exc_info=True)

    def on_stored(self, results: list[StoreResult]) -> None:
        note_arrivals(self.book, results)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                if self.feed is not None and (keys := self.feed()):
                    self.book.seen(keys, self.book.now())
                if self.book.leads():
                    self.check(self.book.now())
            except Exception:  # the watcher must outlive a bad series
                log.exception("arrival trigger failed")

    def check(self, now: float) -> None:
        waiting = self.book.waiting()
        if not waiting:
            return
        rules = self.current_rules()
        if not rules:
            for series, seen in waiting.items():
                self.book.forget(series, seen)
            return
        shortest = min(rule.stable_seconds for rule in rules)
        for (study_uid, series_uid), seen in waiting.items():
            if now - seen < shortest:
                continue
            matches = self.service.archive.search(
                parse_query(
                    Level.SERIES,
                    [("SeriesInstanceUID", series_uid), ("includefield", "BodyPartExamined")],
                    study_uid=study_uid,
                )
            ).matches
            if not matches:
                self.book.forget((study_uid, series_uid), seen)
                continue
            modality = (matches[0].get("00080060", {}).get("Value") or [""])[0]
            description = (matches[0].get("0008103E", {}).get("Value") or [""])[0]
            body_part = (matches[0].get("00180015", {}).get("Value") or [""])[0]
            pending = False
            for rule in rules:
                key = (rule.model, study_uid, series_uid)
                if self.book.is_done(key) or not rule.matches(modality, description, body_part):
                    continue
                if now - seen < rule.stable_seconds:
                    pending = True
                    continue
                if not self.book.mark_done(key):
                    continue
                try:
                    self.service.submit(rule.model, study_uid, series_uid, trigger="arrival")
                except RadpacsError as exc:
                    log.warning("rule for %s skipped series %s: %s", rule.model, series_uid, exc)
            if not pending:
                self.book.forget((study_uid, series_uid), seen)


def note_arrivals(book: ArrivalBook, results: list[StoreResult]) -> None:
    """Record in ``book`` that the series of ``results`` grew now; a failure is logged only
    (the store is committed; losing a trigger must not fail it)."""
    keys = sorted({(result.study_uid, result.series_uid) for result in results})
    try:
        book.seen(keys, book.now())
    except Exception:
        log.exception("could not record the arrival of %d series", len(keys))


def shared_arrivals(client: Any) -> Callable[[list[StoreResult]], None]:
    """An archive listener that records arrivals in both shared books (AI rules, callback
    apps) of the Redis ``client``, for a process that runs no watcher of its own (a C-GET
    job): the leading server process triggers them as if they had been stored through it."""
    books = [RedisArrivals(client, name) for name in (AI_BOOK, APPS_BOOK)]

    def listener(results: list[StoreResult]) -> None:
        for book in books:
            note_arrivals(book, results)

    return listener


class JobSeriesFeed:
    """The series named by the result (``"series": [[study, series], ...]``) of each job of
    ``kind`` that succeeded since this feed was made, each job once: how a process without
    Redis hears what its job processes stored (C-GET jobs)."""

    def __init__(self, store: JobStore, kind: str, window: int = 50) -> None:
        self.store = store
        self.kind = kind
        self.window = window  # jobs looked at per call, newest first
        self._known = {job.id for job in self._succeeded()}

    def _succeeded(self) -> list[Any]:
        return self.store.find(self.kind, JobState.SUCCEEDED.value, limit=self.window)

    def __call__(self) -> list[SeriesKey]:
        keys: set[SeriesKey] = set()
        for job in self._succeeded():
            if job.id in self._known:
                continue
            self._known.add(job.id)
            for study, series in (job.result or {}).get("series", []):
                keys.add((str(study), str(series)))
        return sorted(keys)
