"""The UPS-RS event channels (PS3.18 11.11): open WebSockets by AE title.

Each event report (PS3.4 CC.2.4) goes out as one text message, a DICOM JSON dataset with
Affected SOP Class UID (0000,0002), Affected SOP Instance UID (0000,1000), Event Type ID
(0000,1002) and the event information. Reports for an AE title with no open channel are
dropped: subscribers that were away learn the current state by searching.

Without Redis a report reaches the channels of this process only. With ``redis_url`` each
report is published on the Redis channel ``radpacs:ups-events`` and every API process
(:meth:`EventChannels.start` subscribes a thread) hands it to its own open channels, so a
subscriber connected to any process hears the events made on any other. While Redis is
unreachable reports are dropped (logged) and the subscriber thread reconnects.

State changes made outside the routes (radpacs's own AI jobs and failed app deliveries,
changed by a job worker in another process) are recorded in the ``workitem_event`` table
in the job's transaction; every API process relays them (a thread polling every
:data:`RELAY_INTERVAL` seconds, :meth:`EventChannels.start` given the store) to its own
channels, Redis or not. Recorded events are kept for :data:`KEEP_EVENTS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from datetime import timedelta
from typing import Any

import redis

from radpacs.archive.workitems import UPS_PUSH_SOP_CLASS, Event, WorkitemStore
from radpacs.dicom.json import attribute
from radpacs.shared import PREFIX, connect

__all__ = ["EventChannels"]

log = logging.getLogger(__name__)

CHANNEL = PREFIX + "ups-events"
RELAY_INTERVAL = 0.5  # seconds between looks for recorded events
KEEP_EVENTS = timedelta(hours=1)
_PRUNE_EVERY = 600  # relay rounds between prunes


class EventChannels:
    """The open WebSocket channels of this process, by AE title (PS3.18 11.11), fed by this
    process or, given ``redis_url``, by every process sharing that Redis."""

    def __init__(self, redis_url: str | None = None) -> None:
        self._queues: dict[str, set[tuple[asyncio.Queue[str], asyncio.AbstractEventLoop]]] = {}
        self._lock = threading.Lock()
        self._redis: Any = connect(redis_url) if redis_url else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._relay: threading.Thread | None = None

    def start(self, store: WorkitemStore | None = None) -> None:
        """Given ``store``, relay the events recorded in it from now on to the channels of
        this process. With Redis, subscribe to the shared channel (waits up to 5 s for the
        subscription, so that a report published after this returns is heard)."""
        if store is not None and self._relay is None:
            position = store.last_event()
            self._relay = threading.Thread(
                target=self._relay_recorded,
                args=(store, position),
                name="radpacs-ups-relay",
                daemon=True,
            )
            self._relay.start()
        if self._redis is None or self._thread is not None:
            return
        subscribed = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, args=(subscribed,), name="radpacs-ups-events", daemon=True
        )
        self._thread.start()
        if not subscribed.wait(5):
            log.warning("UPS-RS events: not subscribed to Redis yet; retrying in the background")

    def stop(self) -> None:
        """Stop the subscriber thread."""
        self._stop.set()
        for thread in (self._thread, self._relay):
            if thread is not None:
                thread.join(5)

    def open(self, ae_title: str) -> asyncio.Queue[str]:
        """A queue of the reports for ``ae_title``, filled on the running event loop."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        with self._lock:
            self._queues.setdefault(ae_title, set()).add((queue, asyncio.get_running_loop()))
        return queue

    def close(self, ae_title: str, queue: asyncio.Queue[str]) -> None:
        with self._lock:
            entries = self._queues.get(ae_title, set())
            for entry in [entry for entry in entries if entry[0] is queue]:
                entries.discard(entry)

    def send(self, ae_titles: set[str], event: Event) -> None:
        """Report ``event`` to the channels of ``ae_titles`` (of every process with Redis)."""
        text = _text(event)
        if self._redis is None:
            self._deliver(ae_titles, text)
            return
        try:
            self._redis.publish(CHANNEL, json.dumps({"to": sorted(ae_titles), "text": text}))
        except redis.RedisError:  # the change is committed; only its report is lost
            log.warning("UPS-RS event for %s dropped: Redis failed", event.uid, exc_info=True)

    def _relay_recorded(self, store: WorkitemStore, position: int) -> None:
        """Hand the events recorded after ``position`` to this process's channels (the
        other processes relay them to theirs); prune old ones now and then."""
        rounds = 0
        while not self._stop.wait(RELAY_INTERVAL):
            try:
                position, events = store.events_after(position)
                for event in events:
                    self._deliver(store.recipients(event.uid), _text(event))
                rounds += 1
                if rounds % _PRUNE_EVERY == 0:
                    store.prune_events(KEEP_EVENTS)
            except Exception:
                log.warning("UPS-RS events: cannot read the recorded events", exc_info=True)

    def _deliver(self, ae_titles: set[str] | list[str], text: str) -> None:
        with self._lock:
            targets = [entry for title in ae_titles for entry in self._queues.get(title, ())]
        for queue, loop in targets:
            with contextlib.suppress(RuntimeError):  # that channel's loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, text)

    def _listen(self, subscribed: threading.Event) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                pubsub.get_message(ignore_subscribe_messages=False, timeout=5)  # confirmation
                subscribed.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        payload = json.loads(message["data"])
                        self._deliver(payload["to"], payload["text"])
                pubsub.close()
            except (redis.RedisError, ValueError, KeyError):
                log.warning("UPS-RS events: Redis subscription failed; retrying", exc_info=True)
                self._stop.wait(1.0)


def _text(event: Event) -> str:
    """The WebSocket message of ``event``: a DICOM JSON dataset (PS3.18 11.11)."""
    message = {
        "00000002": attribute("UI", UPS_PUSH_SOP_CLASS),
        "00001000": attribute("UI", event.uid),
        "00001002": attribute("US", event.type_id),
        **event.info,
    }
    return json.dumps(message)
