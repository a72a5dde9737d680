"""The client's retries and timeouts.

Against real HTTP servers on 127.0.0.1 (one that fails a given number of times then
succeeds, one that never does, one that drops connections, a closed port); the retry rules
themselves (idempotence, Retry-After, DELETE after a lost answer) through httpx's
MockTransport, which is meant for exactly that.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from _client_support import ScriptedServer
from conftest import free_port
from radpacs.client import AsyncRadpacsClient, Call, RadpacsClient, RetryPolicy
from radpacs.client._retry import retry_after_seconds
from radpacs.errors import RadpacsError, RadpacsRequestError

FAST = RetryPolicy(attempts=4, timeout=5, initial_wait=0.01, max_wait=0.05)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_fails_then_succeeds(status: int) -> None:
    with (
        ScriptedServer(failures=2, status=status) as server,
        RadpacsClient(server.url, retry=FAST) as client,
    ):
        answer = client.request(Call("GET", "/api/health")).json()
    assert answer == {"status": "ok", "version": "scripted"}
    assert server.hits == 3


def test_never_succeeds_raises_after_the_configured_attempts() -> None:
    policy = RetryPolicy(attempts=3, timeout=5, initial_wait=0.01, max_wait=0.02)
    with (
        ScriptedServer(failures=None, status=503) as server,
        RadpacsClient(server.url, retry=policy) as client,
        pytest.raises(RadpacsRequestError) as caught,
    ):
        client.status()
    assert server.hits == 3
    error = caught.value
    assert isinstance(error, RadpacsError)
    assert (error.method, error.path, error.status_code) == ("GET", "/api/health", 503)
    assert "scripted failure" in error.text


def test_other_errors_are_not_retried() -> None:
    with (
        ScriptedServer(failures=None, status=400) as server,
        RadpacsClient(server.url, retry=FAST) as client,
        pytest.raises(RadpacsRequestError) as caught,
    ):
        client.request(Call("GET", "/dicom-web/studies"))
    assert server.hits == 1
    assert caught.value.status_code == 400


def test_dropped_connections_are_retried() -> None:
    with (
        ScriptedServer(failures=2, status=0) as server,
        RadpacsClient(server.url, retry=FAST) as client,
    ):
        assert client.request(Call("GET", "/api/health")).status_code == 200
    assert server.hits == 3


def test_backoff_grows_between_attempts() -> None:
    policy = RetryPolicy(attempts=4, timeout=5, initial_wait=0.05, max_wait=1)
    with (
        ScriptedServer(failures=3, status=503) as server,
        RadpacsClient(server.url, retry=policy) as client,
    ):
        client.request(Call("GET", "/api/health"))
    gaps = [later - earlier for earlier, later in zip(server.times, server.times[1:], strict=False)]
    # equal jitter: retry n waits between half and all of 0.05 * 2**(n-1)
    assert gaps[0] >= 0.025 and gaps[2] >= 0.1
    assert gaps[2] > gaps[0]


def test_retry_after_is_honoured() -> None:
    slow_backoff = RetryPolicy(attempts=2, timeout=5, initial_wait=30, max_wait=30)
    with ScriptedServer(failures=1, status=503, headers={"Retry-After": "0"}) as server:
        started = time.monotonic()
        with RadpacsClient(server.url, retry=slow_backoff) as client:
            client.request(Call("GET", "/api/health"))
        assert time.monotonic() - started < 5  # Retry-After: 0, not 15-30 s of backoff
    assert server.hits == 2


def test_refused_connection_has_no_status() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with RadpacsClient(url, retry=FAST) as client, pytest.raises(RadpacsRequestError) as caught:
        client.request(Call("GET", "/api/health"))
    assert caught.value.status_code is None
    assert "ConnectError" in caught.value.text


def test_async_client_retries_the_same_way() -> None:
    async def run(url: str) -> int:
        async with AsyncRadpacsClient(url, retry=FAST) as client:
            return (await client.request(Call("GET", "/api/health"))).status_code

    with ScriptedServer(failures=2, status=502) as server:
        assert asyncio.run(run(server.url)) == 200
    assert server.hits == 3
    with (
        ScriptedServer(failures=None, status=504) as server,
        pytest.raises(RadpacsRequestError) as caught,
    ):
        asyncio.run(run(server.url))
    assert caught.value.status_code == 504 and server.hits == 4


# ------------------------------------------------------------ the rules, via MockTransport


def _scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), seen


def test_a_non_idempotent_call_is_retried_only_when_surely_not_processed() -> None:
    transport, seen = _scripted(httpx.Response(503), httpx.Response(200))
    with (
        RadpacsClient("http://radpacs.test", retry=FAST, transport=transport) as client,
        pytest.raises(RadpacsRequestError),
    ):
        client.request(Call("POST", "/x", idempotent=False))
    assert seen == ["POST"]  # a 503 may come after the work was done

    transport, seen = _scripted(httpx.Response(429), httpx.Response(200))
    with RadpacsClient("http://radpacs.test", retry=FAST, transport=transport) as client:
        client.request(Call("POST", "/x", idempotent=False))
    assert seen == ["POST", "POST"]  # 429: refused before any work

    timeout = httpx.ReadTimeout("slow")
    transport, seen = _scripted(timeout, httpx.Response(200))
    with (
        RadpacsClient("http://radpacs.test", retry=FAST, transport=transport) as client,
        pytest.raises(RadpacsRequestError),
    ):
        client.request(Call("POST", "/x", idempotent=False))
    assert seen == ["POST"]

    refused = httpx.ConnectError("refused")
    transport, seen = _scripted(refused, httpx.Response(200))
    with RadpacsClient("http://radpacs.test", retry=FAST, transport=transport) as client:
        client.request(Call("POST", "/x", idempotent=False))
    assert seen == ["POST", "POST"]  # never sent


def test_an_idempotent_call_is_retried_after_a_read_timeout() -> None:
    transport, seen = _scripted(httpx.ReadTimeout("slow"), httpx.Response(200))
    with RadpacsClient("http://radpacs.test", retry=FAST, transport=transport) as client:
        client.request(Call("POST", "/dicom-web/studies"))  # STOW: idempotent in radpacs
    assert seen == ["POST", "POST"]


def test_a_retried_delete_that_finds_nothing_is_done() -> None:
    transport, seen = _scripted(httpx.Response(502), httpx.Response(404))
    with RadpacsClient("http://radpacs.test", retry=FAST, transport=transport) as client:
        client.delete("1.2.3")
    assert seen == ["DELETE", "DELETE"]
    transport, _ = _scripted(httpx.Response(404))
    with (
        RadpacsClient("http://radpacs.test", retry=FAST, transport=transport) as client,
        pytest.raises(RadpacsRequestError) as caught,
    ):
        client.delete("1.2.3")
    assert caught.value.status_code == 404


def test_retry_after_is_capped_and_parsed() -> None:
    capped = RetryPolicy(attempts=2, timeout=5, initial_wait=30, max_wait=30, max_retry_after=0.01)
    transport, seen = _scripted(
        httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200)
    )
    started = time.monotonic()
    with RadpacsClient("http://radpacs.test", retry=capped, transport=transport) as client:
        client.request(Call("GET", "/api/health"))
    assert time.monotonic() - started < 2 and seen == ["GET", "GET"]
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_seconds("soon") is None


def test_policy_validates_and_bounds_backoff() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    policy = RetryPolicy(initial_wait=1, max_wait=4)
    for number, ceiling in [(1, 1), (2, 2), (3, 4), (10, 4)]:
        assert ceiling / 2 <= policy.backoff(number) <= ceiling


def test_every_request_has_a_timeout() -> None:
    with RadpacsClient("http://radpacs.test", retry=RetryPolicy(timeout=7)) as client:
        assert client._http.timeout == httpx.Timeout(7)
