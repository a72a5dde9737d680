"""The Redis that several radpacs processes share (setting ``redis_url``; docs/deploy.md).

With ``redis_url`` unset each process keeps this state in its own memory, which is right for
one process. With it set, every API process on every machine shares through this Redis:
login failure counts (:mod:`radpacs.auth.ratelimit`), UPS-RS event reports
(:mod:`radpacs.http.events`), the AI arrival times and one leader for the arrival rules
(:mod:`radpacs.ai.triggers`). Every key starts with :data:`PREFIX`.

Example::

    client = connect("redis://10.0.0.5:6379/2")
    lease = LeaderLease(client, "ai-arrivals", ttl_seconds=10)
    if lease.held():      # acquired or renewed: this process leads for ttl_seconds more
        ...
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from radpacs.errors import StorageError

__all__ = ["PREFIX", "LeaderLease", "connect", "redis_errors"]

PREFIX = "radpacs:"

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def connect(url: str) -> Any:
    """A Redis client for ``url`` (connections are opened at first use; replies as bytes)."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Turn a Redis failure during ``action`` into StorageError (HTTP 503), keeping the cause."""
    try:
        yield
    except redis.RedisError as exc:
        raise StorageError(f"{action}: the shared Redis failed ({exc})") from exc


class LeaderLease:
    """A lease on the key ``radpacs:leader:<name>`` that at most one process holds.

    :meth:`held` takes the free lease (SET NX PX) or renews the one this object holds; a
    holder that stops renewing (killed, cut off from Redis) loses it after ``ttl_seconds``
    and another process takes it at its next call.
    """

    def __init__(self, client: Any, name: str, ttl_seconds: float) -> None:
        self.client = client
        self.key = f"{PREFIX}leader:{name}"
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def held(self) -> bool:
        """True when this process holds the lease for ``ttl_seconds`` from now."""
        if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        """Give the lease up at once if this process holds it."""
        self._release(keys=[self.key], args=[self.token])
