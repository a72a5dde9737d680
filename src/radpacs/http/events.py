"""The UPS-RS event channels of this process (PS3.18 11.11): open WebSockets by AE title.

Each event report (PS3.4 CC.2.4) goes out as one text message, a DICOM JSON dataset with
Affected SOP Class UID (0000,0002), Affected SOP Instance UID (0000,1000), Event Type ID
(0000,1002) and the event information. Reports for an AE title with no open channel are
dropped: subscribers that were away learn the current state by searching.
"""

from __future__ import annotations

import asyncio
import json

from radpacs.archive.workitems import UPS_PUSH_SOP_CLASS, Event
from radpacs.dicom.json import attribute

__all__ = ["EventChannels"]


class EventChannels:
    """The open WebSocket channels of this process, by AE title (PS3.18 11.11)."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[str]]] = {}

    def open(self, ae_title: str) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.setdefault(ae_title, set()).add(queue)
        return queue

    def close(self, ae_title: str, queue: asyncio.Queue[str]) -> None:
        self._queues.get(ae_title, set()).discard(queue)

    def send(self, ae_titles: set[str], event: Event) -> None:
        message = {
            "00000002": attribute("UI", UPS_PUSH_SOP_CLASS),
            "00001000": attribute("UI", event.uid),
            "00001002": attribute("US", event.type_id),
            **event.info,
        }
        text = json.dumps(message)
        for ae_title in ae_titles:
            for queue in self._queues.get(ae_title, ()):
                queue.put_nowait(text)
