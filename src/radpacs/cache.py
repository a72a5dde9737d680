"""A small thread-safe LRU cache of prepared JSON bodies (raw and gzipped), keyed by ETag."""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["BodyCache"]


class BodyCache:
    """Keeps the newest ``capacity`` bodies; an ETag names one exact body, so no invalidation."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[key] = body
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
