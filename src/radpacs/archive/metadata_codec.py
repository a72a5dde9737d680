"""How the index keeps each instance's DICOM JSON (PS3.18 F.2): one zstd frame per instance.

A CT instance's DICOM JSON is 3-6 KB of text that repeats the same keys and VRs; a zstd frame
(level 3, content size in the header) holds it in a third or less and decodes in a few
microseconds, so study metadata stays as fast as reading the text (docs/decisions.md,
"Index metadata compressed with zstd"). Frames are self-describing: ``unpack`` refuses bytes
that are not one.

Example::

    frame = pack(b'{"00100010": {"vr": "PN"}}')
    unpack(frame)  # b'{"00100010": {"vr": "PN"}}'
"""

from __future__ import annotations

import zstandard

from radpacs.errors import StorageError

__all__ = ["LEVEL", "pack", "unpack"]

LEVEL = 3  # zstd's default: level 9 saves ~3 % more for 3x the ingest CPU (bench/README.md)


def pack(document: bytes) -> bytes:
    """One instance's DICOM JSON (UTF-8 bytes) as a zstd frame."""
    return zstandard.compress(document, LEVEL)


def unpack(frame: bytes) -> bytes:
    """The DICOM JSON bytes of a frame made by :func:`pack`; StorageError if it is not one."""
    try:
        return zstandard.decompress(frame)
    except zstandard.ZstdError as exc:
        raise StorageError(f"the index holds damaged metadata: {exc}") from exc
