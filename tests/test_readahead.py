"""Read-ahead of blobs for WADO-RS retrieves: order and content exact, memory and concurrency
bounded, errors at their turn, early close; on moto's S3 server and through the archive."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path
from typing import IO

import pytest

from _s3_support import S3Server, s3_server  # noqa: F401 - the fixture
from conftest import make_ct, to_bytes
from radpacs.archive import Archive
from radpacs.archive.readahead import read_ahead
from radpacs.archive.s3blobs import S3BlobStore
from radpacs.errors import NotFound


class Recorder:
    """An opener over a dict that records how many objects and bytes are open at once.

    An object counts as open from the moment it is opened until its stream is closed, so a
    fetched-ahead object held in memory counts until the consumer is done with it.
    """

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.lock = threading.Lock()
        self.opened: list[str] = []
        self.open_now = 0
        self.bytes_now = 0
        self.most_open = 0
        self.most_bytes = 0

    def open(self, key: str) -> IO[bytes]:
        if key not in self.blobs:
            raise NotFound(f"blob {key} is missing from the store")
        data = self.blobs[key]
        with self.lock:
            self.opened.append(key)
            self.open_now += 1
            self.bytes_now += len(data)
            self.most_open = max(self.most_open, self.open_now)
            self.most_bytes = max(self.most_bytes, self.bytes_now)
        recorder = self

        class Stream(io.BytesIO):
            def close(self) -> None:
                if not self.closed:
                    with recorder.lock:
                        recorder.open_now -= 1
                        recorder.bytes_now -= len(data)
                super().close()

        return Stream(data)


def _blobs(sizes: list[int]) -> dict[str, bytes]:
    return {
        f"k/{i:03d}": hashlib.sha256(str(i).encode()).digest()[:1] * size
        for i, size in enumerate(sizes)
    }


def test_order_and_content_are_exact_and_memory_is_bounded() -> None:
    sizes = [1000, 3000, 500, 9000, 2000, 12_000, 700, 700, 4000, 100] * 3
    recorder = Recorder(_blobs(sizes))
    items = [(key, len(data)) for key, data in recorder.blobs.items()]
    budget = 10_000  # the 12,000-byte objects are larger: streamed at their turn
    received = []
    for stream in read_ahead(recorder.open, items, ahead=3, budget_bytes=budget):
        with stream:
            received.append(stream.read())
    assert received == list(recorder.blobs.values())
    assert sorted(recorder.opened) == sorted(recorder.blobs)
    # the one being read, plus at most `ahead` others within the budget
    assert recorder.most_open <= 1 + 3
    assert recorder.most_bytes <= max(sizes) + budget


def test_ahead_zero_or_one_item_opens_in_turn() -> None:
    recorder = Recorder(_blobs([10, 20, 30]))
    items = [(key, len(data)) for key, data in recorder.blobs.items()]
    for stream in read_ahead(recorder.open, items, ahead=0):
        with stream:
            assert recorder.open_now == 1
            stream.read()
    assert recorder.most_open == 1


def test_a_missing_object_fails_at_its_turn() -> None:
    recorder = Recorder(_blobs([10, 20, 30, 40]))
    items = [(key, len(data)) for key, data in recorder.blobs.items()]
    items.insert(2, ("k/missing", 15))
    streams = read_ahead(recorder.open, items, ahead=4)
    assert next(streams).read() == recorder.blobs["k/000"]
    assert next(streams).read() == recorder.blobs["k/001"]
    with pytest.raises(NotFound, match="k/missing"):
        next(streams)


def test_closing_early_fetches_no_further() -> None:
    recorder = Recorder(_blobs([10] * 50))
    items = [(key, len(data)) for key, data in recorder.blobs.items()]
    streams = read_ahead(recorder.open, items, ahead=2)
    next(streams).close()
    streams.close()
    assert len(recorder.opened) <= 1 + 2


def test_s3_open_many_reads_in_order_with_a_large_object_streamed(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = s3_server.settings(
        tmp_path, s3_server.new_bucket(), s3_read_ahead=4, s3_read_ahead_mb=1
    )
    store = S3BlobStore.from_settings(settings)
    sizes = [40_000] * 12 + [3 * 1024 * 1024] + [40_000] * 5  # one object over the budget
    blobs = _blobs(sizes)
    store.put_many(list(blobs.items()))
    items = [(key, len(data)) for key, data in blobs.items()]
    received = []
    for stream in store.open_many(items):
        with stream:
            received.append(stream.read())
    assert [hashlib.sha256(r).hexdigest() for r in received] == [
        hashlib.sha256(b).hexdigest() for b in blobs.values()
    ]


def test_archive_open_each_on_s3_matches_the_stored_files(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = s3_server.settings(tmp_path, s3_server.new_bucket(), s3_read_ahead=3)
    study = "1.2.826.0.1.3680043.8.498.4242"
    payloads = [to_bytes(make_ct(study_uid=study)) for _ in range(7)]
    with Archive.from_settings(settings) as archive:
        archive.store_many(payloads)
        files = archive.instance_files(study)
        read = []
        for stream in archive.open_each(files):
            with stream:
                read.append(stream.read())
        assert [len(data) for data in read] == [file.size for file in files]
        assert sorted(read) == sorted(payloads)
        for file, data in zip(files, read, strict=True):
            with archive.open(file) as stream:
                assert stream.read() == data
