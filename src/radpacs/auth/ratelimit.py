"""Login rate limiting: after N failures for one (name, address) within a window, refuse.

:class:`LoginLimiter` counts in memory, per process: right for one process (each of N
processes would allow ``N * max_failures`` attempts per window). :class:`RedisLoginLimiter`
counts in the shared Redis (setting ``redis_url``), so every process on every machine sees
the same counts. A success clears the count.

Example::

    limiter = LoginLimiter(max_failures=5, window_seconds=300)
    limiter.check(("ana", "10.0.0.7"))    # raises TooManyAttempts when locked out
    limiter.failed(("ana", "10.0.0.7"))
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from radpacs.errors import TooManyAttempts
from radpacs.shared import PREFIX, redis_errors

__all__ = ["Limiter", "LoginLimiter", "RedisLoginLimiter"]


class Limiter(Protocol):
    """What the login route needs from a limiter (either class of this module)."""

    max_failures: int

    def check(self, key: Hashable, max_failures: int | None = None) -> None: ...

    def failed(self, key: Hashable) -> None: ...

    def succeeded(self, key: Hashable) -> None: ...


def _too_many(oldest: float, window: float, now: float) -> TooManyAttempts:
    wait = max(1, math.ceil(oldest + window - now))
    return TooManyAttempts(f"too many failed logins; try again in {wait} s", retry_after=wait)


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
                raise _too_many(times[0], self.window, now)

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


class RedisLoginLimiter:
    """The same sliding window as :class:`LoginLimiter`, kept in Redis: one sorted set of
    failure times per key (``radpacs:login:<key>``), expiring with the window. The clock is
    the wall clock, shared by every machine."""

    def __init__(
        self,
        client: Any,
        max_failures: int = 5,
        window_seconds: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock

    @staticmethod
    def _name(key: Hashable) -> str:
        parts = key if isinstance(key, tuple) else (key,)
        return PREFIX + "login:" + "\x1f".join(str(part) for part in parts)

    def check(self, key: Hashable, max_failures: int | None = None) -> None:
        """TooManyAttempts (with the seconds to wait) if ``key`` failed ``max_failures``
        times (the limiter's own number unless given) within the window, on any process."""
        name, now = self._name(key), self._clock()
        with redis_errors("login rate limit"):
            pipe = self.client.pipeline()
            pipe.zremrangebyscore(name, "-inf", now - self.window)
            pipe.zcard(name)
            pipe.zrange(name, 0, 0, withscores=True)
            _, count, oldest = pipe.execute()
        if count >= (max_failures or self.max_failures) and oldest:
            raise _too_many(float(oldest[0][1]), self.window, now)

    def failed(self, key: Hashable) -> None:
        """Count one failed login for ``key``."""
        name, now = self._name(key), self._clock()
        with redis_errors("login rate limit"):
            pipe = self.client.pipeline()
            pipe.zadd(name, {uuid.uuid4().hex: now})
            pipe.expire(name, max(1, math.ceil(self.window)))
            pipe.execute()

    def succeeded(self, key: Hashable) -> None:
        """Forget the failures of ``key``."""
        with redis_errors("login rate limit"):
            self.client.delete(self._name(key))
