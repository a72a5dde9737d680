"""Structural limits checked on the bytes of a DICOM file before any recursive parser sees it.

pydicom reads, converts and writes nested sequences (PS3.5 7.5) recursively, and so do the JSON
encoders: a few kilobytes of hand-made nesting exhaust the stack or the memory of the process.
:func:`check_structure` walks the element headers of a PS3.10 file (or a bare data set) without
building anything, its own recursion bounded by the limit, and raises :class:`StructureLimit`
when sequences nest deeper than ``max_depth`` or the file holds more than ``max_elements``
data elements (items and their contents included).

Every path that parses uploaded DICOM (ingest, /api/anonymize, /api/dvh) calls it first.
Files whose structure it cannot follow (they are damaged) are left to the parser, except that
the part it could not follow may hold no more sequence items than the depth limit: the item
tag is the only way to nest.

Example::

    check_structure(open("ct.dcm", "rb").read())  # None, or StructureLimit
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from functools import lru_cache

from pydicom.datadict import dictionary_VR
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

from radpacs.errors import InvalidInput

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "MAX_INFLATED_BYTES", "StructureLimit", "check_structure"]

MAX_DEPTH = 64
"""Sequences nested deeper than this are refused (real objects nest fewer than 16 levels;
the JSON encoders give up near 85)."""
MAX_ELEMENTS = 1_000_000
"""Data elements (at every level) beyond this are refused: pydicom keeps about 1 KB each."""
MAX_INFLATED_BYTES = 1 << 30
"""A deflated data set (PS3.5 A.5) that inflates beyond this is refused."""

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_VRS = {str(vr).encode() for vr in STANDARD_VR}
_LONG_VRS = {str(vr).encode() for vr in EXPLICIT_VR_LENGTH_32}
_ITEM_BYTES = {True: b"\xfe\xff\x00\xe0", False: b"\xff\xfe\xe0\x00"}


class StructureLimit(InvalidInput):
    """The file nests sequences too deeply or holds too many elements; the message names the
    limit."""


class _Malformed(Exception):
    """The walk cannot follow the structure from here."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


@lru_cache(maxsize=4096)
def _is_sequence(tag: int) -> bool | None:
    """True if the data dictionary says SQ, False if another VR, None for unknown tags."""
    try:
        return str(dictionary_VR(tag)) == "SQ"
    except KeyError:
        return None


class _Walker:
    def __init__(self, data: bytes, max_depth: int, max_elements: int) -> None:
        self.data = data
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.elements = 0

    def header(self, position: int, implicit: bool, little: bool) -> tuple[int, bytes, int, int]:
        """Tag, VR bytes (b'' when implicit or for item tags), length and value position."""
        data = self.data
        if position + 8 > len(data):
            raise _Malformed(position)
        order = "<" if little else ">"
        group, element = struct.unpack_from(order + "HH", data, position)
        tag = group << 16 | element
        if implicit or group == 0xFFFE:
            (length,) = struct.unpack_from(order + "I", data, position + 4)
            return tag, b"", length, position + 8
        vr = bytes(data[position + 4 : position + 6])
        if vr not in _VRS:
            raise _Malformed(position)
        if vr in _LONG_VRS:
            if position + 12 > len(data):
                raise _Malformed(position)
            (length,) = struct.unpack_from(order + "I", data, position + 8)
            return tag, vr, length, position + 12
        (length,) = struct.unpack_from(order + "H", data, position + 6)
        return tag, vr, length, position + 8

    def dataset(
        self, position: int, end: int, implicit: bool, little: bool, depth: int, delimited: bool
    ) -> int:
        """Walk elements up to ``end`` (or the item delimiter); the position after them."""
        while position < end:
            if not delimited and position + 8 > end:
                return end  # trailing padding, as pydicom tolerates
            tag, vr, length, value = self.header(position, implicit, little)
            if tag >> 16 == 0xFFFE:
                if tag == _ITEM_END and delimited:
                    return value
                raise _Malformed(position)
            self.elements += 1
            if self.elements > self.max_elements:
                raise StructureLimit(
                    f"the data set holds more than {self.max_elements} data elements "
                    f"(limit max_elements={self.max_elements})"
                )
            known = _is_sequence(tag) if (implicit or vr == b"UN") else None
            if vr == b"SQ" or (known and vr in (b"", b"UN")):
                items_implicit = implicit or vr == b"UN"  # UN holds implicit VR (PS3.5 6.2.2)
                position = self.sequence(value, length, items_implicit, little, depth + 1, end)
            elif length == _UNDEFINED:
                if tag == _PIXEL_DATA and not implicit:
                    position = self.fragments(value, end, little)
                else:  # an unknown or UN element of undefined length: a sequence (PS3.5 6.2.2)
                    position = self.sequence(value, length, True, little, depth + 1, end)
            else:
                if value + length > end:
                    raise _Malformed(position)
                guessed = vr == b"UN" or (vr == b"" and known is None)
                if guessed and self.data[value : value + 4] == _ITEM_BYTES[little]:
                    self.maybe_sequence(value, length, little, depth + 1)
                position = value + length
        if delimited:
            raise _Malformed(position)
        return position

    def maybe_sequence(self, value: int, length: int, little: bool, depth: int) -> None:
        """A value a parser may read as a sequence of implicit VR items (a UN or private one)."""
        with contextlib.suppress(_Malformed):
            self.sequence(value, length, True, little, depth, value + length)

    def sequence(
        self, position: int, length: int, implicit: bool, little: bool, depth: int, end: int
    ) -> int:
        """Walk the items of a sequence; the position after it."""
        if depth > self.max_depth:
            raise StructureLimit(
                f"sequences nest more than {self.max_depth} levels deep "
                f"(limit max_depth={self.max_depth})"
            )
        delimited = length == _UNDEFINED
        stop = end if delimited else position + length
        if stop > end:
            raise _Malformed(position)
        while position < stop:
            tag, _vr, item_length, value = self.header(position, True, little)
            if tag == _SEQUENCE_END and delimited:
                return value
            if tag != _ITEM:
                raise _Malformed(position)
            if item_length == _UNDEFINED:
                position = self.dataset(value, stop, implicit, little, depth, True)
            else:
                if value + item_length > stop:
                    raise _Malformed(position)
                self.dataset(value, value + item_length, implicit, little, depth, False)
                position = value + item_length
        if delimited:
            raise _Malformed(position)
        return position

    def fragments(self, position: int, end: int, little: bool) -> int:
        """Skip encapsulated pixel data items up to the sequence delimiter."""
        while True:
            tag, _vr, length, value = self.header(position, True, little)
            if tag == _SEQUENCE_END:
                return value
            if tag != _ITEM or length == _UNDEFINED or value + length > end:
                raise _Malformed(position)
            position = value + length


def _file_meta(data: bytes) -> tuple[str, int]:
    """The transfer syntax of the file meta (group 0002) and where the data set starts."""
    position = 132 if data[128:132] == b"DICM" else 0
    syntax = ""
    while position + 8 <= len(data) and data[position : position + 2] == b"\x02\x00":
        (element,) = struct.unpack_from("<H", data, position + 2)
        vr = bytes(data[position + 4 : position + 6])
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, position + 8)
            value = position + 12
        elif vr in _VRS:
            (length,) = struct.unpack_from("<H", data, position + 6)
            value = position + 8
        else:  # implicit VR file meta, as some writers do
            (length,) = struct.unpack_from("<I", data, position + 4)
            value = position + 8
        if length == _UNDEFINED or value + length > len(data):
            break
        if element == 0x0010:
            syntax = data[value : value + length].decode("latin-1").strip("\x00 ")
        position = value + length
    return syntax, position


def _looks_explicit(data: bytes, position: int) -> bool:
    return bytes(data[position + 4 : position + 6]) in _VRS


def check_structure(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
    max_inflated_bytes: int = MAX_INFLATED_BYTES,
) -> None:
    """Raise :class:`StructureLimit` if ``data`` (a PS3.10 file or a bare data set) nests
    sequences deeper than ``max_depth`` or holds more than ``max_elements`` elements.

    Runs in time linear in the number of element headers; reads no values but the file meta.
    """
    syntax, start = _file_meta(data)
    uid = UID(syntax) if syntax else None
    little = not (uid is not None and uid.is_transfer_syntax and not uid.is_little_endian)
    if uid is not None and uid.is_transfer_syntax and uid.is_deflated:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            body = inflater.decompress(data[start:], max_inflated_bytes + 1)
        except zlib.error:
            return  # not deflate data: the parser refuses the file
        if len(body) > max_inflated_bytes or inflater.unconsumed_tail:
            raise StructureLimit(
                f"the deflated data set inflates to more than {max_inflated_bytes} bytes "
                f"(limit max_inflated_bytes={max_inflated_bytes})"
            )
        data, start = body, 0
    implicit = not _looks_explicit(data, start)  # what the bytes say, as pydicom checks too
    walker = _Walker(data, max_depth, max_elements)
    try:
        walker.dataset(start, len(data), implicit, little, 0, False)
    except _Malformed as exc:
        items = data.count(_ITEM_BYTES[little], exc.position)
        if items > max_depth:
            raise StructureLimit(
                f"the data set cannot be followed from byte {exc.position} on, and that part "
                f"holds {items} sequence items, more than could be nested safely "
                f"(limit max_depth={max_depth})"
            ) from None
