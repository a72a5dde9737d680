"""The S3-compatible blob store: DICOM files as objects of one bucket, through botocore.

Any server that speaks the S3 API works (AWS S3, MinIO, SeaweedFS, Ceph RGW, moto). Keys are
the same relative POSIX paths as in :class:`~radpacs.archive.blobs.FolderBlobStore`, stored as
``prefix + key``. A PUT is durable when the server answers 200 (S3's own guarantee), so
``put_many`` returning means every object is stored before the index commits, as with the
folder. Objects are read as streams (``GetObject``'s body), never whole into memory, except
the few that :meth:`S3BlobStore.open_many` reads ahead within a bounded budget.

Every botocore error leaves as :class:`~radpacs.errors.NotFound` (no such object, as the folder
store raises for a missing file) or :class:`~radpacs.errors.StorageError` naming the key and
the server's message. Objects are written in one PUT each, never as multipart uploads, so an
interrupted write leaves nothing behind: :meth:`S3BlobStore.temporaries` is always empty. A
large object (a :class:`~radpacs.archive.blobs.FileBlob`) is sent as a streamed PUT from its
file, read in chunks by botocore (S3 takes up to 5 GB in one PUT, more than
``max_upload_bytes`` allows by default).
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from radpacs.archive.blobs import BlobData, FolderBlobStore
from radpacs.archive.readahead import read_ahead
from radpacs.errors import ConfigurationError, NotFound, StorageError
from radpacs.settings import Settings

__all__ = ["S3BlobStore"]

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    """Blobs as objects of ``bucket`` below ``prefix`` (see the module docstring).

    Example::

        store = S3BlobStore.from_settings(load_settings(blob_backend="s3", s3_bucket="pacs"))
        store.put("ab/cd/x.dcm", b"DICM")
        store.open("ab/cd/x.dcm").read()  # b'DICM'
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        max_connections: int = 32,
        read_ahead: int = 8,
        read_ahead_bytes: int = 64 * 1024 * 1024,
    ):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._max_connections = max_connections
        self.read_ahead = min(read_ahead, max_connections)
        self.read_ahead_bytes = read_ahead_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        """A store on the bucket the settings name; ConfigurationError if it cannot be reached."""
        if not settings.s3_bucket:
            raise ConfigurationError("blob_backend s3 needs s3_bucket")
        config = Config(
            s3={"addressing_style": settings.s3_addressing.value},
            max_pool_connections=settings.s3_max_connections,
            connect_timeout=settings.s3_timeout,
            read_timeout=settings.s3_timeout,
            retries={"mode": "standard", "max_attempts": 5},
            # only compute/verify checksums where the operation requires them: not every
            # S3-compatible server accepts the newer flexible checksum headers
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
        store = cls(
            client,
            settings.s3_bucket,
            settings.s3_prefix,
            settings.s3_max_connections,
            settings.s3_read_ahead,
            settings.s3_read_ahead_mb * 1024 * 1024,
        )
        store.check_bucket(settings.s3_endpoint_url or "AWS S3")
        return store

    def check_bucket(self, where: str) -> None:
        """ConfigurationError naming the bucket and the server's answer unless it is usable."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ConfigurationError(
                f"S3 bucket {self.bucket!r} at {where} cannot be used ({code or exc}); "
                "check s3_bucket, s3_endpoint_url and the credentials"
            ) from exc
        except NoCredentialsError as exc:
            raise ConfigurationError(
                "no S3 credentials: set s3_access_key_id and s3_secret_access_key "
                "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            ) from exc
        except BotoCoreError as exc:
            raise ConfigurationError(f"S3 server at {where} cannot be reached: {exc}") from exc

    def _name(self, key: str) -> str:
        FolderBlobStore._check(key)
        return self.prefix + key

    def put(self, key: str, data: BlobData) -> None:
        self.put_many([(key, data)])

    def put_many(self, items: Sequence[tuple[str, BlobData]]) -> None:
        """PUT each object, several at once; returns when every one is stored (StorageError
        naming the first that failed otherwise; those stored are orphans for ``check``)."""
        names = [(self._name(key), key, data) for key, data in items]
        if len(names) <= 1:
            for name, key, data in names:
                self._put(name, key, data)
            return
        workers = min(len(names), self._max_connections)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-put") as pool:
            futures = [pool.submit(self._put, name, key, data) for name, key, data in names]
            for future in futures:
                future.result()

    def _put(self, name: str, key: str, data: BlobData) -> None:
        try:
            if isinstance(data, bytes):
                self.client.put_object(Bucket=self.bucket, Key=name, Body=data)
            else:  # streamed from the file: botocore reads (and signs) it in chunks
                data.file.seek(0)
                self.client.put_object(
                    Bucket=self.bucket, Key=name, Body=data.file, ContentLength=data.size
                )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"could not write blob {key} to S3: {_message(exc)}") from exc

    def open(self, key: str) -> IO[bytes]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _is_missing(exc):
                raise NotFound(f"blob {key} is missing from the store") from exc
            raise StorageError(f"could not read blob {key} from S3: {_message(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read blob {key} from S3: {exc}") from exc
        return io.BufferedReader(_ObjectStream(answer["Body"], key), buffer_size=256 * 1024)

    def open_many(self, items: Sequence[tuple[str, int]]) -> Generator[IO[bytes]]:
        """The objects ``(key, size)`` opened in order, the next ``read_ahead`` of them (within
        ``read_ahead_bytes``) fetched concurrently meanwhile (:func:`~radpacs.archive.readahead.
        read_ahead`): one round trip per object no longer adds up over a study."""
        return read_ahead(self.open, items, self.read_ahead, self.read_ahead_bytes)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"could not delete blob {key} from S3: {_message(exc)}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def _head(self, key: str) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self._name(key)
            )
        except ClientError as exc:
            if _is_missing(exc):
                raise NotFound(f"blob {key} is missing from the store") from exc
            raise StorageError(f"could not read blob {key} from S3: {_message(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read blob {key} from S3: {exc}") from exc
        return answer

    def keys(self) -> Iterator[str]:
        """Every key below the prefix (ListObjectsV2, 1000 a page)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"could not list the S3 bucket {self.bucket}: {exc}") from exc

    def temporaries(self) -> Iterator[tuple[str, float]]:
        """None: objects are written in one PUT, which either stores all or nothing."""
        return iter(())

    def remove_temporary(self, name: str) -> None:
        raise StorageError(f"{name!r} is not a temporary file of the store (S3 has none)")


class _ObjectStream(io.RawIOBase):
    """A GetObject body as a readable file; network errors mid-read become StorageError."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            data: bytes = self._body.read() if size is None or size < 0 else self._body.read(size)
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"could not read blob {self._key} from S3: {exc}") from exc
        return data

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _is_missing(exc: ClientError) -> bool:
    """No such object; not NoSuchBucket, which is also a 404 but a storage failure (a HEAD
    answer has no body, so there a missing bucket reads as a missing object)."""
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING


def _message(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '')} {error.get('Message', '')}".strip() or str(exc)
    return str(exc)
