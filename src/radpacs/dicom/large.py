"""A large PS3.10 file read without its Pixel Data value: the elements around it in memory, the
value left in the file.

Storing an object needs its attributes and a digest, not its pixels in memory. For a file in a
little or big endian syntax (not deflated), :func:`split_pixel_data` reads the elements before
the top-level Pixel Data (7FE0,0010) (at most :data:`MAX_HEAD_BYTES`), checks the value's extent
in the file (the declared length of native data; each fragment's item header of encapsulated
data, PS3.5 A.4) without reading it, and reads the elements after it (at most
:data:`MAX_TAIL_BYTES`). It returns a stand-in file: the same elements with an empty Pixel Data
value, which any parser reads as usual, and what the value was (VR, native length).

Example::

    with open("big.dcm", "rb") as file:
        split = split_pixel_data(file, os.path.getsize("big.dcm"))
    # split.head: bytes of a file with an empty Pixel Data; split.vr, split.length
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

from pydicom.uid import UID

from radpacs.dicom import limits
from radpacs.errors import InvalidInput

__all__ = ["MAX_HEAD_BYTES", "MAX_TAIL_BYTES", "ElidedPixelData", "Split", "split_pixel_data"]

MAX_HEAD_BYTES = 64 * 1024 * 1024
"""The elements before Pixel Data of a large file may take this much (they are read whole)."""
MAX_TAIL_BYTES = 1024 * 1024
"""The elements after Pixel Data (padding, signatures) may take this much."""

_FIRST_READ = 1024 * 1024
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD


class LargeFileError(InvalidInput):
    """A large file this module cannot read without holding it whole, or one cut short; the
    message says which."""


@dataclass(frozen=True)
class ElidedPixelData:
    """The top-level Pixel Data value left out of :attr:`Split.head`."""

    vr: str
    length: int | None  # native data's length; None when encapsulated


@dataclass(frozen=True)
class Split:
    """A file with an empty top-level Pixel Data value, and what that value was."""

    head: bytes
    pixel_data: ElidedPixelData


def _read_at(file: IO[bytes], position: int, size: int) -> bytes:
    file.seek(position)
    return file.read(size)


class _NeedMore(Exception):
    """The elements before Pixel Data run past the bytes read so far."""


def _pixel_data_position(
    data: bytes, start: int, implicit: bool, little: bool, complete: bool
) -> int | None:
    """Where the top-level Pixel Data element starts in ``data`` (a prefix of the file, or the
    whole of it when ``complete``); None if the data set ends without it; _NeedMore if the
    prefix ends first (or the file is damaged)."""
    walker = limits._Walker(data, limits.MAX_DEPTH, limits.MAX_ELEMENTS)
    position = start
    while position < len(data):
        try:
            tag, vr, length, value = walker.header(position, implicit, little)
        except limits._Malformed:
            raise _NeedMore from None
        if tag == _PIXEL_DATA:
            return position
        if length == _UNDEFINED:  # a sequence (or UN holding one) up to its delimiter
            try:
                items_implicit = implicit or vr == b"UN"
                position = walker.sequence(value, length, items_implicit, little, 1, len(data))
            except limits._Malformed:
                raise _NeedMore from None
        else:
            position = value + length
    if position > len(data) or not complete:
        raise _NeedMore
    return None


def _syntax(file: IO[bytes], size: int) -> tuple[str, int]:
    """The transfer syntax of the file meta and where the data set starts."""
    head = _read_at(file, 0, min(size, 64 * 1024))
    return limits._file_meta(head)


def split_pixel_data(file: IO[bytes], size: int) -> Split | None:
    """The file without its top-level Pixel Data value (see the module docstring); None when
    the file has no such value or is deflated and fits in :data:`MAX_HEAD_BYTES` (the caller
    reads it whole). LargeFileError for a large file this cannot read that way, or one whose
    Pixel Data runs past its end."""
    prefix = _read_at(file, 0, 132)
    if prefix[128:132] != b"DICM":
        _refuse_if_large(size, "it is not a PS3.10 file (no DICM prefix)")
        return None
    syntax, start = _syntax(file, size)
    uid = UID(syntax) if syntax else None
    if uid is None or not uid.is_transfer_syntax or uid.is_deflated:
        _refuse_if_large(size, f"its transfer syntax {syntax[:64]!r} is not read in parts")
        return None
    little, implicit = uid.is_little_endian, uid.is_implicit_VR
    read = min(size, _FIRST_READ)
    while True:
        data = _read_at(file, 0, read)
        try:
            found = _pixel_data_position(data, start, implicit, little, read >= size)
            break
        except _NeedMore:
            if read >= size:
                return None  # damaged: the parser reports it on the whole file
            if read >= MAX_HEAD_BYTES:
                raise LargeFileError(
                    f"the elements before Pixel Data take more than {MAX_HEAD_BYTES} bytes"
                ) from None
            read = min(size, read * 4, MAX_HEAD_BYTES)
    if found is None:
        _refuse_if_large(size, "it has no top-level Pixel Data")
        return None
    walker = limits._Walker(data, limits.MAX_DEPTH, limits.MAX_ELEMENTS)
    _tag, vr_bytes, length, value = walker.header(found, implicit, little)
    vr = vr_bytes.decode() if vr_bytes else "OW"
    order = "<" if little else ">"
    if length != _UNDEFINED:
        end = value + length
        if end > size:
            raise LargeFileError(
                f"PixelData declares {length} bytes but the file holds {size - value}: "
                "file truncated"
            )
        elided = ElidedPixelData(vr, length)
        stand_in = _element_header(order, implicit, vr_bytes, 0)
    elif implicit:
        raise LargeFileError("encapsulated Pixel Data in an implicit VR file (PS3.5 A.4)")
    else:
        end = _fragments_end(file, value, size, order)
        elided = ElidedPixelData(vr, None)
        stand_in = (
            _element_header(order, implicit, vr_bytes, _UNDEFINED)
            + struct.pack(order + "HHI", 0xFFFE, 0xE000, 0)  # an empty offset table
            + struct.pack(order + "HHI", 0xFFFE, 0xE0DD, 0)
        )
    if size - end > MAX_TAIL_BYTES:
        raise LargeFileError(
            f"the elements after Pixel Data take {size - end} bytes, more than "
            f"{MAX_TAIL_BYTES} bytes"
        )
    tail = _read_at(file, end, size - end)
    return Split(data[:found] + stand_in + tail, elided)


def _element_header(order: str, implicit: bool, vr: bytes, length: int) -> bytes:
    """The Pixel Data element's header with ``length``."""
    if implicit:
        return struct.pack(order + "HHI", 0x7FE0, 0x0010, length)
    return struct.pack(order + "HH2sHI", 0x7FE0, 0x0010, vr, 0, length)


def _fragments_end(file: IO[bytes], position: int, size: int, order: str) -> int:
    """Follow the item headers of encapsulated Pixel Data (PS3.5 A.4) in the file; the
    position after its sequence delimiter. LargeFileError if they run past the end."""
    header = struct.Struct(order + "HHI")
    while True:
        raw = _read_at(file, position, 8)
        if len(raw) < 8:
            raise LargeFileError(
                "the encapsulated Pixel Data has no sequence delimiter: file truncated"
            )
        group, element, length = header.unpack(raw)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            return position + 8
        if tag != _ITEM or length == _UNDEFINED:
            raise LargeFileError(
                f"the encapsulated Pixel Data has ({group:04X},{element:04X}) at byte "
                f"{position}, not an item (PS3.5 A.4)"
            )
        position += 8 + length
        if position > size:
            raise LargeFileError("a Pixel Data fragment runs past the end: file truncated")


def _refuse_if_large(size: int, why: str) -> None:
    """LargeFileError saying ``why`` unless the file is small enough to be read whole."""
    if size > MAX_HEAD_BYTES:
        raise LargeFileError(f"an object of {size} bytes cannot be stored because {why}")
