"""The Redis-backed state of several processes (radpacs.shared and its users), against the
local Redis: login limits, the leader lease, arrival book and UPS-RS event fan-out."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from radpacs.ai.triggers import RedisArrivals
from radpacs.archive.workitems import Event
from radpacs.auth.ratelimit import RedisLoginLimiter
from radpacs.errors import StorageError, TooManyAttempts
from radpacs.http.events import EventChannels
from radpacs.settings import load_settings
from radpacs.shared import LeaderLease, connect

REDIS_URL = os.environ.get("RADPACS_TEST_SHARED_REDIS_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture
def client() -> Iterator[Any]:
    shared = connect(REDIS_URL)
    try:
        shared.flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield shared
    shared.flushdb()


def test_login_failures_counted_by_two_limiters_are_one_count(client: Any) -> None:
    now = [1000.0]
    first = RedisLoginLimiter(client, max_failures=3, window_seconds=60, clock=lambda: now[0])
    second = RedisLoginLimiter(client, max_failures=3, window_seconds=60, clock=lambda: now[0])
    key = ("account", f"ana-{uuid.uuid4().hex}")
    first.failed(key)
    second.failed(key)
    first.check(key)
    second.failed(key)
    with pytest.raises(TooManyAttempts) as refused:
        first.check(key)
    assert refused.value.retry_after == 60
    second.check(key, max_failures=4)  # the per-address limit is higher
    now[0] += 61  # the window slid past every failure
    first.check(key)
    second.failed(key)
    first.succeeded(key)
    second.check(key, max_failures=1)


def test_an_unreachable_redis_refuses_logins_with_a_storage_error() -> None:
    limiter = RedisLoginLimiter(connect("redis://127.0.0.1:1/0"), max_failures=3)
    with pytest.raises(StorageError, match="shared Redis"):
        limiter.check(("account", "ana"))


def test_one_process_holds_the_lease_until_it_releases_or_stops_renewing(client: Any) -> None:
    first = LeaderLease(client, "test", ttl_seconds=0.3)
    second = LeaderLease(client, "test", ttl_seconds=0.3)
    assert first.held()
    assert first.held()  # renewed
    assert not second.held()
    first.release()
    assert second.held()
    assert not first.held()
    client.delete(second.key)  # as if its lease had expired: the next call takes it
    assert first.held()


def test_the_arrival_book_is_shared_and_a_pair_is_triggered_once(client: Any) -> None:
    first, second = RedisArrivals(client), RedisArrivals(client)
    first.seen([("1.2.3", "1.2.3.4")], 100.0)
    second.seen([("1.2.3", "1.2.3.5")], 101.0)
    assert first.waiting() == {("1.2.3", "1.2.3.4"): 100.0, ("1.2.3", "1.2.3.5"): 101.0}
    second.seen([("1.2.3", "1.2.3.4")], 102.0)  # grew again meanwhile
    first.forget(("1.2.3", "1.2.3.4"), 100.0)
    assert ("1.2.3", "1.2.3.4") in second.waiting()
    second.forget(("1.2.3", "1.2.3.4"), 102.0)
    assert second.waiting() == {("1.2.3", "1.2.3.5"): 101.0}
    key = ("segmenter", "1.2.3", "1.2.3.5")
    assert not first.is_done(key)
    assert second.mark_done(key)
    assert not first.mark_done(key)
    assert first.is_done(key)
    assert first.leads() != second.leads()


def test_an_event_sent_by_one_process_reaches_the_channel_of_another(client: Any) -> None:
    sender, receiver = EventChannels(REDIS_URL), EventChannels(REDIS_URL)
    receiver.start()

    async def exchange() -> str:
        queue = receiver.open("PERFORMER")
        other = receiver.open("SOMEONE")
        sender.send({"PERFORMER"}, Event("1.2.3.9", 1, {}))
        text = await asyncio.wait_for(queue.get(), 10)
        assert other.empty()
        receiver.close("PERFORMER", queue)
        return text

    try:
        text = asyncio.run(exchange())
    finally:
        receiver.stop()
    assert '"00001000": {"vr": "UI", "Value": ["1.2.3.9"]}' in text


def test_workers_default_to_the_cores_only_with_redis(tmp_path: Any) -> None:
    assert load_settings(data_dir=tmp_path).resolved_workers == 1
    shared = load_settings(data_dir=tmp_path, redis_url=REDIS_URL)
    assert shared.resolved_workers == (os.cpu_count() or 1)
    assert load_settings(data_dir=tmp_path, redis_url=REDIS_URL, workers=3).resolved_workers == 3
