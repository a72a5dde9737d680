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
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from radpacs.archive import Level, StoreResult, parse_query
from radpacs.errors import ConfigurationError, RadpacsError

__all__ = ["ArrivalRule", "ArrivalWatcher"]

log = logging.getLogger(__name__)


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


class ArrivalWatcher:
    """Collects arrivals and submits jobs for stable, matching series (see the module)."""

    def __init__(
        self,
        service: Any,
        rules: list[ArrivalRule] | Callable[[], list[ArrivalRule]],
        poll_seconds: float = 0.5,
    ) -> None:
        self.service = service
        self.rules = rules
        self.poll_seconds = poll_seconds
        self._last_seen: dict[tuple[str, str], float] = {}
        self._done: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
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

    def on_stored(self, results: list[StoreResult]) -> None:
        now = time.monotonic()
        with self._lock:
            for result in results:
                self._last_seen[(result.study_uid, result.series_uid)] = now

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check(time.monotonic())
            except Exception:  # the watcher must outlive a bad series
                log.exception("arrival trigger failed")

    def check(self, now: float) -> None:
        with self._lock:
            waiting = dict(self._last_seen)
        if not waiting:
            return
        rules = self.current_rules()
        if not rules:
            with self._lock:
                self._last_seen.clear()
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
                with self._lock:
                    self._last_seen.pop((study_uid, series_uid), None)
                continue
            modality = (matches[0].get("00080060", {}).get("Value") or [""])[0]
            description = (matches[0].get("0008103E", {}).get("Value") or [""])[0]
            body_part = (matches[0].get("00180015", {}).get("Value") or [""])[0]
            pending = False
            for rule in rules:
                key = (rule.model, study_uid, series_uid)
                if key in self._done or not rule.matches(modality, description, body_part):
                    continue
                if now - seen < rule.stable_seconds:
                    pending = True
                    continue
                try:
                    self.service.submit(rule.model, study_uid, series_uid, trigger="arrival")
                except RadpacsError as exc:
                    log.warning("rule for %s skipped series %s: %s", rule.model, series_uid, exc)
                self._done.add(key)
            if not pending:
                with self._lock:
                    if self._last_seen.get((study_uid, series_uid)) == seen:
                        del self._last_seen[(study_uid, series_uid)]
