"""Blob stores: where the DICOM files live. The index holds only their keys and digests.

Every store is a :class:`BlobStore`; :class:`FolderBlobStore` is the default. ``put`` is
durable before it returns: the bytes are written to a temporary name, flushed, fsynced and
renamed into place, so a crash leaves either the whole file or an orphan temporary file,
never a truncated blob under a real key. :meth:`BlobStore.temporaries` lists such leftovers
for ``radpacs check``.

A blob's bytes come as ``bytes`` or, for a large object, as a :class:`FileBlob` (a spooled
temporary file) that every store copies in chunks, so a large object is never whole in memory.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from radpacs.errors import NotFound, StorageError

__all__ = ["BlobData", "BlobStore", "FileBlob", "FolderBlobStore"]

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FileBlob:
    """A blob's bytes in a file: its first ``size`` bytes, read in chunks, never whole.

    >>> import io
    >>> b"".join(FileBlob(io.BytesIO(b"DICM"), 4).chunks())
    b'DICM'
    """

    file: IO[bytes]
    size: int

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The bytes from the start of the file, ``chunk_bytes`` at a time."""
        self.file.seek(0)
        left = self.size
        while left > 0:
            chunk = self.file.read(min(chunk_bytes, left))
            if not chunk:
                raise StorageError(f"the file ended {left} bytes before its declared size")
            left -= len(chunk)
            yield chunk


BlobData = bytes | FileBlob
"""What a store writes: the bytes, or a file holding them."""


@runtime_checkable
class BlobStore(Protocol):
    """A flat key -> bytes store with durable writes."""

    def put(self, key: str, data: BlobData) -> None:
        """Store ``data`` under ``key`` durably, replacing what was there."""

    def put_many(self, items: Sequence[tuple[str, BlobData]]) -> None:
        """Store several blobs durably; cheaper than one ``put`` each where the store can."""

    def open(self, key: str) -> IO[bytes]:
        """A readable binary file for ``key``; NotFound if there is none."""

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is already gone."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""

    def keys(self) -> Iterator[str]:
        """Every stored key (temporary files excluded)."""

    def size(self, key: str) -> int:
        """The size in bytes of ``key``; NotFound if there is none."""

    def temporaries(self) -> Iterator[tuple[str, float]]:
        """Temporary files that interrupted writes left: (name, seconds since last written)."""

    def remove_temporary(self, name: str) -> None:
        """Remove a temporary file :meth:`temporaries` listed; no error if it is gone."""


class FolderBlobStore:
    """Blobs as files below a folder; keys are relative POSIX paths.

    >>> import tempfile
    >>> store = FolderBlobStore(Path(tempfile.mkdtemp()))
    >>> store.put("ab/cd/x.dcm", b"DICM")
    >>> store.open("ab/cd/x.dcm").read()
    b'DICM'
    """

    _TEMP_SUFFIX = ".partial"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _check(key: str) -> list[str]:
        parts = key.split("/")
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise StorageError(f"blob key {key!r} points outside the store")
        return parts

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*self._check(key))

    def _path_text(self, key: str) -> str:
        """:meth:`_path` as a string, without building a Path (this runs for every file a
        retrieve reads)."""
        self._check(key)
        return f"{self._root_text}/{key}"

    def put(self, key: str, data: BlobData) -> None:
        self.put_many([(key, data)])

    def put_many(self, items: Sequence[tuple[str, BlobData]]) -> None:
        """Write each blob to a temporary name, fsync it, rename it into place, then fsync
        each folder once: the renames are durable before this returns."""
        folders: set[str] = set()
        current = ""
        try:
            for key, data in items:
                current = key
                path = self._path_text(key)
                folder = path.rpartition("/")[0]
                if folder not in folders:
                    os.makedirs(folder, exist_ok=True)
                    folders.add(folder)
                _write_durably(path, data, self._TEMP_SUFFIX)
            for folder in folders:
                _fsync_dir(folder)
        except OSError as exc:
            raise StorageError(f"could not write blob {current}: {exc}") from exc

    def open(self, key: str) -> IO[bytes]:
        try:
            return open(self._path_text(key), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from the store") from exc
        except OSError as exc:
            raise StorageError(f"could not read blob {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"could not delete blob {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(f"blob {key} is missing from the store") from exc

    def keys(self) -> Iterator[str]:
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.endswith(self._TEMP_SUFFIX):
                yield path.relative_to(self.root).as_posix()

    def temporaries(self) -> Iterator[tuple[str, float]]:
        now = time.time()
        for path in self.root.rglob(f"*{self._TEMP_SUFFIX}"):
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:  # its write just finished
                continue
            yield path.relative_to(self.root).as_posix(), age

    def remove_temporary(self, name: str) -> None:
        if not name.endswith(self._TEMP_SUFFIX):
            raise StorageError(f"{name!r} is not a temporary file of the store")
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"could not delete temporary file {name}: {exc}") from exc

    def local_path(self, key: str) -> Path:
        """The file's path, for zero-copy serving."""
        return self._path(key)


def _write_durably(path: str, data: BlobData, suffix: str) -> None:
    """Write ``data`` to a new temporary file beside ``path``, fsync it, rename it to ``path``."""
    temp_name = f"{path}.{os.urandom(6).hex()}{suffix}"
    fd = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            for chunk in [data] if isinstance(data, bytes) else data.chunks():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
