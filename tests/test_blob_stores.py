"""One conformance suite for every BlobStore: the folder and S3 (moto's server on loopback)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from _s3_support import S3Server, s3_server  # noqa: F401 - the fixture
from radpacs.archive.backends import open_blob_store
from radpacs.archive.blobs import BlobStore, FileBlob, FolderBlobStore
from radpacs.archive.s3blobs import S3BlobStore
from radpacs.errors import ConfigurationError, NotFound, StorageError
from radpacs.settings import load_settings


@pytest.fixture(params=["folder", "s3"])
def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
) -> Iterator[BlobStore]:
    if request.param == "folder":
        yield open_blob_store(load_settings(data_dir=tmp_path))
    else:
        yield open_blob_store(s3_server.settings(tmp_path, s3_server.new_bucket()))


def test_the_settings_choose_the_backend(store: BlobStore, request: pytest.FixtureRequest) -> None:
    expected = S3BlobStore if "s3" in request.node.callspec.id else FolderBlobStore
    assert isinstance(store, expected)
    assert isinstance(store, BlobStore)


def test_put_then_open_size_exists(store: BlobStore) -> None:
    store.put("ab/cd/x.dcm", b"DICM" * 10)
    with store.open("ab/cd/x.dcm") as stream:
        assert stream.read() == b"DICM" * 10
    assert store.size("ab/cd/x.dcm") == 40
    assert store.exists("ab/cd/x.dcm")
    assert not store.exists("ab/cd/y.dcm")


def test_put_replaces(store: BlobStore) -> None:
    store.put("k/a.dcm", b"old")
    store.put("k/a.dcm", b"newer")
    with store.open("k/a.dcm") as stream:
        assert stream.read() == b"newer"


def test_put_many_and_keys(store: BlobStore) -> None:
    items = [(f"s/{i:02d}/{i}.dcm", bytes([i]) * (i + 1)) for i in range(40)]
    store.put_many(items)
    assert sorted(store.keys()) == sorted(key for key, _ in items)
    for key, data in items:
        with store.open(key) as stream:
            assert stream.read() == data


def test_a_file_blob_is_copied_from_its_file(store: BlobStore, tmp_path: Path) -> None:
    """A large object comes as a FileBlob (STOW part, zip member, C-STORE): each store copies
    it in chunks; the folder never holds it whole (moto, in this process, keeps what it gets)."""
    data = os.urandom(24 * 1024 * 1024)
    (tmp_path / "large").write_bytes(data)
    with (tmp_path / "large").open("rb") as file:
        tracemalloc.start()
        try:
            store.put_many([("l/a.dcm", b"small"), ("l/b.dcm", FileBlob(file, len(data)))])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    with store.open("l/b.dcm") as stream:
        assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(data).digest()
    assert store.size("l/b.dcm") == len(data)
    if isinstance(store, FolderBlobStore):
        assert peak < 4 * 1024 * 1024


def test_reads_stream_in_chunks(store: BlobStore) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB
    store.put("big/one.dcm", data)
    digest = hashlib.sha256()
    largest = 0
    with store.open("big/one.dcm") as stream:
        while chunk := stream.read(1024 * 1024):
            largest = max(largest, len(chunk))
            digest.update(chunk)
    assert largest <= 1024 * 1024
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_missing_blob_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound, match=r"blob no/such\.dcm is missing"):
        store.open("no/such.dcm")
    with pytest.raises(NotFound, match="missing"):
        store.size("no/such.dcm")


def test_delete_is_idempotent(store: BlobStore) -> None:
    store.put("d/x.dcm", b"x")
    store.delete("d/x.dcm")
    store.delete("d/x.dcm")
    assert not store.exists("d/x.dcm")
    assert list(store.keys()) == []


@pytest.mark.parametrize("key", ["", "/abs.dcm", "a/../b.dcm", "a//b.dcm", "./a.dcm"])
def test_keys_outside_the_store_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(StorageError, match="outside the store"):
        store.put(key, b"x")


def test_no_temporaries_after_complete_writes(store: BlobStore) -> None:
    store.put_many([("t/a.dcm", b"a"), ("t/b.dcm", b"b")])
    assert list(store.temporaries()) == []


def test_s3_prefix_keeps_other_objects_apart(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="someone-else/file", Body=b"z")
    store = open_blob_store(s3_server.settings(tmp_path, bucket))
    store.put("a/b.dcm", b"x")
    assert list(store.keys()) == ["a/b.dcm"]
    names = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert names == {"someone-else/file", "archive/a/b.dcm"}


def test_s3_unknown_bucket_is_a_clear_configuration_error(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match=r"S3 bucket 'absent-bucket' .* cannot be used"):
        open_blob_store(s3_server.settings(tmp_path, "absent-bucket"))


def test_s3_unreachable_server_is_a_clear_configuration_error(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        blob_backend="s3",
        s3_bucket="b",
        s3_endpoint_url="http://127.0.0.1:9",
        s3_access_key_id="a",
        s3_secret_access_key="b",
        s3_timeout=2,
    )
    with pytest.raises(ConfigurationError, match=r"cannot be reached|cannot be used"):
        open_blob_store(settings)


def test_s3_settings_need_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs s3_bucket"):
        load_settings(data_dir=tmp_path, blob_backend="s3")


def test_s3_failures_are_storage_errors_naming_the_key(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    bucket = s3_server.new_bucket()
    store = open_blob_store(s3_server.settings(tmp_path, bucket))
    store.put("a/b.dcm", b"x")
    client = s3_server.client()
    client.delete_object(Bucket=bucket, Key="archive/a/b.dcm")
    client.delete_bucket(Bucket=bucket)  # the bucket is gone under a running server
    with pytest.raises(StorageError, match=r"could not write blob a/c\.dcm to S3: NoSuchBucket"):
        store.put_many([("a/c.dcm", b"y"), ("a/d.dcm", b"z")])
    with pytest.raises(StorageError, match=r"could not read blob a/b\.dcm from S3: NoSuchBucket"):
        store.open("a/b.dcm")
    with pytest.raises(StorageError, match="could not list"):
        list(store.keys())
