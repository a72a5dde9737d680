"""Read-ahead: open a sequence of blobs in order while the next ones are fetched concurrently.

A remote store (S3) answers each GET after a round trip; a WADO-RS study retrieve (PS3.18
10.4) that opened its instances one after the other spent its time waiting. :func:`read_ahead`
yields the objects in the order given, each as a readable file, while background threads
already read the next ones whole into memory, within two bounds: at most ``ahead`` objects
fetched or in flight beyond the one being read, and at most ``budget_bytes`` of them in
memory (besides the one being read). An object larger than the budget is not fetched ahead:
it is opened at its turn and streamed, as without read-ahead.

An error of a background read (NotFound, StorageError) is raised at that object's turn, so
the objects before it are served as usual. Closing the iterator early (a client that went
away) cancels what has not started.

Example::

    for stream in read_ahead(store.open, [("a.dcm", 40_000), ("b.dcm", 41_000)], ahead=8):
        with stream:
            send(stream.read())
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

__all__ = ["read_ahead"]


def _fetch(open_blob: Callable[[str], IO[bytes]], key: str) -> IO[bytes]:
    with open_blob(key) as stream:
        return io.BytesIO(stream.read())


def read_ahead(
    open_blob: Callable[[str], IO[bytes]],
    items: Sequence[tuple[str, int]],
    ahead: int,
    budget_bytes: int = 64 * 1024 * 1024,
) -> Generator[IO[bytes]]:
    """The blobs ``items`` names (``(key, size in bytes)``), opened in order, the next up to
    ``ahead`` of them read concurrently within ``budget_bytes`` (see the module docstring)."""
    if ahead < 1 or len(items) < 2:
        for key, _ in items:
            yield open_blob(key)
        return
    pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="read-ahead")
    window: deque[tuple[int, Future[IO[bytes]]]] = deque()  # (size, read), in order
    held = 0  # bytes of the window
    following = 0  # index of the next item not yet in the window
    try:
        for index, (key, _size) in enumerate(items):
            following = max(following, index + 1)
            if window:
                size_read, read = window.popleft()
                held -= size_read
                stream = read.result()
            else:
                stream = open_blob(key)  # nothing fetched ahead: stream it
            while following < len(items) and len(window) < ahead:
                next_key, next_size = items[following]
                if next_size > budget_bytes or held + next_size > budget_bytes:
                    break  # a large object waits for its turn; it is then streamed
                window.append((next_size, pool.submit(_fetch, open_blob, next_key)))
                held += next_size
                following += 1
            yield stream
    finally:
        for _, read in window:
            read.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
