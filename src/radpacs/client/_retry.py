"""When and how long the client waits before sending a request again (tenacity underneath).

Retried: transport errors (refused connection, timeout, a connection dropped mid-answer) and
the statuses 429, 502, 503 and 504, at most ``RetryPolicy.attempts`` times in all. The wait
grows exponentially with "equal jitter" (a random value between half and all of
``initial * 2**n``, capped at ``max_wait``); a ``Retry-After`` header (seconds or an HTTP
date) replaces it, capped at ``max_retry_after``.

A request that is not idempotent is retried only when the server surely did not act on it:
the connection was never made, or the answer is 429. Every call radpacs makes is safe to
repeat: STOW-RS stores a SOP Instance once however often it is sent, login, DVH and
anonymize compute without side effects, and DELETE is idempotent (a retried DELETE that
finds nothing counts as done).
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

__all__ = ["RETRY_STATUSES", "RetryPolicy", "RetryableStatus"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RetryableStatus(Exception):
    """Raised inside an attempt for a 429/502/503/504 answer, so tenacity sees it."""

    def __init__(self, response: httpx.Response, text: str) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.text = text


@dataclass(frozen=True)
class RetryPolicy:
    """How a client times out and retries.

    ``attempts`` counts the first try: 1 means no retry. ``timeout`` (seconds) bounds
    connecting and each read or write, not a whole download.
    """

    attempts: int = 4
    timeout: float = 30.0
    initial_wait: float = 0.5
    max_wait: float = 20.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if self.timeout <= 0 or self.initial_wait < 0 or self.max_wait < 0:
            raise ValueError("timeout must be positive and waits not negative")

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry), with jitter."""
        ceiling = min(self.max_wait, self.initial_wait * 2 ** (retry_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    def wait(self, state: RetryCallState) -> float:
        """tenacity's wait: Retry-After when the server sent one, else :meth:`backoff`."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableStatus):
            after = retry_after_seconds(error.response.headers.get("retry-after"))
            if after is not None:
                return min(after, self.max_retry_after)
        return self.backoff(state.attempt_number)

    def should_retry(self, error: BaseException, idempotent: bool) -> bool:
        """Whether an attempt that ended in ``error`` may be sent again."""
        if isinstance(error, RetryableStatus):
            return idempotent or error.response.status_code == 429
        if isinstance(error, _NOT_SENT):
            return True
        return idempotent and isinstance(error, httpx.TransportError)

    def _arguments(self, idempotent: bool) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.attempts),
            "wait": self.wait,
            "retry": retry_if_exception(lambda error: self.should_retry(error, idempotent)),
            "reraise": True,
        }

    def retrying(self, idempotent: bool) -> Retrying:
        """A tenacity controller for a blocking call."""
        return Retrying(**self._arguments(idempotent))

    def async_retrying(self, idempotent: bool) -> AsyncRetrying:
        """A tenacity controller for a coroutine."""
        return AsyncRetrying(**self._arguments(idempotent))


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (RFC 9110 10.2.3: delay-seconds or an HTTP-date) in seconds."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
