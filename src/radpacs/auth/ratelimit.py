"""Login rate limiting: after N failures for one (name, address) within a window, refuse.

In memory, per process: each API worker counts on its own, which bounds guessing to
``workers * max_failures`` attempts per window. A success clears the count.

Example::

    limiter = LoginLimiter(max_failures=5, window_seconds=300)
    limiter.check(("ana", "10.0.0.7"))    # raises TooManyAttempts when locked out
    limiter.failed(("ana", "10.0.0.7"))
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

from radpacs.errors import TooManyAttempts

__all__ = ["LoginLimiter"]


class LoginLimiter:
    """Counts failed logins per key in a sliding window."""

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: Hashable, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, key: Hashable, max_failures: int | None = None) -> None:
        """TooManyAttempts (with the seconds to wait) if ``key`` is locked out: it failed
        ``max_failures`` times (the limiter's own number unless given) within the window."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if len(times) >= (max_failures or self.max_failures):
                wait = max(1, math.ceil(times[0] + self.window - now))
                raise TooManyAttempts(
                    f"too many failed logins; try again in {wait} s", retry_after=wait
                )

    def failed(self, key: Hashable) -> None:
        """Count one failed login for ``key``."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            if len(self._failures) > self._max_keys:
                self._prune(now)

    def succeeded(self, key: Hashable) -> None:
        """Forget the failures of ``key``."""
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            if not self._recent(key, now):
                del self._failures[key]
