"""What to upload: DICOM files named directly, found in folders (recursively) or inside zips.

Nothing is read when the inputs are collected; each :class:`Source` reads its bytes when a
batch is sent, so memory holds at most the batches in flight.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from radpacs.errors import InvalidInput

__all__ = ["Source", "batches", "collect", "looks_like_dicom"]


@dataclass(frozen=True)
class Source:
    """One file to upload: a path on disk, or a member of a zip (``archive.zip!member``)."""

    name: str
    size: int
    path: Path
    member: str | None = None

    def read(self) -> bytes:
        """The file's bytes (a zip is opened per read, so threads may read members at once)."""
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


def looks_like_dicom(data: bytes) -> bool:
    """A PS3.10 file ('DICM' at 128) or a bare dataset opening with group 0002 or 0008."""
    if data[128:132] == b"DICM":
        return True
    return len(data) > 8 and data[:2] in (b"\x08\x00", b"\x02\x00")


def _zip_sources(path: Path) -> Iterator[Source]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.is_dir():
                yield Source(f"{path}!{info.filename}", info.file_size, path, info.filename)


def _path_sources(path: Path) -> Iterator[Source]:
    if path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        yield from _zip_sources(path)
    else:
        yield Source(str(path), path.stat().st_size, path)


def collect(paths: Iterable[str | Path | Source]) -> list[Source]:
    """Every file under ``paths`` (folders walked in name order, zips opened; a Source is
    kept as it is); InvalidInput names a path that does not exist."""
    sources: list[Source] = []
    for given in paths:
        if isinstance(given, Source):
            sources.append(given)
            continue
        path = Path(given)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    sources.extend(_path_sources(child))
        elif path.is_file():
            sources.extend(_path_sources(path))
        else:
            raise InvalidInput(f"{path} is neither a file nor a folder")
    return sources


def batches(
    sources: Sequence[Source], max_instances: int, max_bytes: int
) -> Iterator[list[Source]]:
    """Consecutive groups of at most ``max_instances`` files and ``max_bytes`` bytes (a larger
    file goes alone)."""
    if max_instances < 1 or max_bytes < 1:
        raise ValueError("a batch needs room for at least one instance and one byte")
    batch: list[Source] = []
    size = 0
    for source in sources:
        if batch and (len(batch) >= max_instances or size + source.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(source)
        size += source.size
    if batch:
        yield batch
