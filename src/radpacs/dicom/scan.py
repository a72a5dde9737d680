"""DICOM JSON in one pass over the bytes of a PS3.10 file, for the common little-endian files.

Storing an instance needs its DICOM JSON and a few attributes, not a pydicom data set: reading
one costs as much again as encoding it. :func:`scan` walks the element headers itself (file
meta, then the data set in implicit or explicit VR little endian, sequences and encapsulated
pixel data included) and encodes each value with :func:`radpacs.dicom._fastjson.value_to_json`.
It returns None, and the caller reads the file with pydicom instead, at the first thing it does
not handle exactly as pydicom would: no ``DICM`` prefix, big endian or deflated syntaxes,
character sets other than the default, Latin-1 or UTF-8, private or unknown tags in implicit
VR, UN values, values pydicom would convert differently, lengths that run past the end of the
file. tests/test_dicom_scan.py checks that both give the same JSON on every file pydicom ships.

Attributes of short values are cached and shared between scans: read and serialise
:attr:`Scanned.metadata`, never change its attributes in place.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

from radpacs.dicom._fastjson import CHARSETS, implicit_vr, value_to_json
from radpacs.dicom.tags import tag_hex

__all__ = ["Scanned", "scan"]

_TAG_LENGTH = struct.Struct("<HHI")  # group, element, 32-bit length (implicit VR, items)
_EXPLICIT = struct.Struct("<HH2sH")  # group, element, VR, 16-bit length
_LONG_LENGTH = struct.Struct("<I")
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD
_PIXEL_DATA = 0x7FE00010
_CHARSET = 0x00080005
_VRS = {str(vr).encode(): str(vr) for vr in STANDARD_VR}  # the VR bytes of explicit VR data
_LONG_VRS = {str(vr) for vr in EXPLICIT_VR_LENGTH_32}


# Most short values repeat from one instance of a series to the next (patient, study,
# equipment, acquisition settings): their attributes are kept here and shared between scans,
# which is why :attr:`Scanned.metadata` must be read and serialised, never changed in place.
# Bounded, and emptied when full; values up to 64 bytes are never bulk data.
_SHORT_VALUE = 64
_SEEN_MAX = 8192
_SEEN: dict[tuple[str, bytes, str], dict[str, Any]] = {}


class _Unsupported(Exception):
    """Something :func:`scan` leaves to pydicom."""


@dataclass
class Scanned:
    """What :func:`scan` read: the file meta values it needs and the data set's DICOM JSON."""

    transfer_syntax_uid: str
    media_storage_sop_class_uid: str
    metadata: dict[str, Any]  # its attributes may be shared with other scans: do not mutate
    pixel_data_length: int | None = None  # native (not encapsulated) Pixel Data only
    bulk: list[dict[str, Any]] = field(default_factory=list)

    def set_bulk_prefix(self, prefix: str) -> None:
        """Prefix every BulkDataURI (relative paths such as ``7FE00010``) with ``prefix``."""
        for attribute in self.bulk:
            attribute["BulkDataURI"] = prefix + attribute["BulkDataURI"]


@lru_cache(maxsize=64)
def _implicit(transfer_syntax: str) -> bool | None:
    """True for implicit VR little endian, False for explicit little endian, None otherwise."""
    uid = UID(transfer_syntax)
    if not uid.is_transfer_syntax or uid.is_deflated or not uid.is_little_endian:
        return None
    return bool(uid.is_implicit_VR)


def _text(value: bytes) -> str:
    return value.decode("latin-1").strip("\x00 ")


def scan(data: bytes) -> Scanned | None:
    """DICOM JSON of a PS3.10 file with BulkDataURIs relative to its bulkdata root, or None
    when pydicom must read this file (see the module docstring)."""
    if data[128:132] != b"DICM":
        return None
    try:
        meta, position = _file_meta(data)
        implicit = _implicit(_text(meta.get(0x00020010, b"")))
        if implicit is None:
            return None
        walker = _Walker(data, implicit)
        metadata = walker.dataset(position, len(data), "", top_level=True)
    except (_Unsupported, struct.error, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return Scanned(
        transfer_syntax_uid=_text(meta[0x00020010]),
        media_storage_sop_class_uid=_text(meta.get(0x00020002, b""))[:64],
        metadata=metadata,
        pixel_data_length=walker.pixel_data_length,
        bulk=walker.bulk,
    )


def _explicit_header(data: bytes, position: int) -> tuple[int, str, int, int]:
    """Tag, VR, value length and value position of the explicit VR element at ``position``;
    item and delimiter tags, which have no VR, come with VR ''."""
    group, element, vr_bytes, length = _EXPLICIT.unpack_from(data, position)
    if group == 0xFFFE:
        (length,) = _LONG_LENGTH.unpack_from(data, position + 4)
        return group << 16 | element, "", length, position + 8
    vr = _VRS.get(vr_bytes)
    if vr is None:
        raise _Unsupported
    if vr in _LONG_VRS:
        (length,) = _LONG_LENGTH.unpack_from(data, position + 8)
        return group << 16 | element, vr, length, position + 12
    return group << 16 | element, vr, length, position + 8


def _file_meta(data: bytes) -> tuple[dict[int, bytes], int]:
    """The group 0002 values (explicit VR little endian) and where the data set starts."""
    meta: dict[int, bytes] = {}
    position, size = 132, len(data)
    while position + 8 <= size and data[position : position + 2] == b"\x02\x00":
        tag, _vr, length, position = _explicit_header(data, position)
        if length == _UNDEFINED or position + length > size:
            raise _Unsupported
        meta[tag] = data[position : position + length]
        position += length
    return meta, position


class _Walker:
    """Walks one file's data set; collects bulk attributes and the native Pixel Data length."""

    def __init__(self, data: bytes, implicit: bool) -> None:
        self.data = data
        self.implicit = implicit
        self.codec = "latin-1"
        self.bulk: list[dict[str, Any]] = []
        self.pixel_data_length: int | None = None

    def dataset(
        self, position: int, end: int, prefix: str, top_level: bool = False
    ) -> dict[str, Any]:
        """The JSON of the elements from ``position`` up to ``end`` (a defined length)."""
        result, position, delimited = self._elements(position, end, prefix, top_level)
        if delimited or position != end:
            raise _Unsupported
        return result

    def _elements(
        self, position: int, end: int, prefix: str, top_level: bool
    ) -> tuple[dict[str, Any], int, bool]:
        """Read elements until ``end`` or an item delimiter: the JSON, the position after, and
        whether a delimiter ended them. Tags must ascend, as PS3.5 7.1 requires."""
        data, implicit = self.data, self.implicit
        result: dict[str, Any] = {}
        previous = -1
        while position < end:
            if implicit:
                group, element, length = _TAG_LENGTH.unpack_from(data, position)
                position += 8
                tag = group << 16 | element
                if group == 0xFFFE:
                    if element == _ITEM_END and not top_level and length == 0:
                        return result, position, True
                    raise _Unsupported
                vr = implicit_vr(tag)
                if vr is None:
                    if tag != _PIXEL_DATA or length == _UNDEFINED:
                        raise _Unsupported
                    vr = "OW"  # native pixel data in implicit VR (PS3.5 A.1), as pydicom says
            else:
                tag, vr, length, position = _explicit_header(data, position)
                if not vr:  # an item or delimiter tag
                    if tag & 0xFFFF == _ITEM_END and not top_level and length == 0:
                        return result, position, True
                    raise _Unsupported
            if tag <= previous:
                raise _Unsupported
            previous = tag
            key = tag_hex(tag)
            if vr == "SQ":
                result[key], position = self._sequence(position, length, f"{prefix}{key}/", end)
                continue
            if length == _UNDEFINED:
                if tag != _PIXEL_DATA or implicit:
                    raise _Unsupported
                result[key], position = self._encapsulated(vr, position, f"{prefix}{key}", end)
                continue
            value_end = position + length
            if value_end > end:
                raise _Unsupported  # cut short: pydicom reads it and ingest reports it
            value = data[position:value_end]
            position = value_end
            if tag == _CHARSET:
                if not top_level:
                    raise _Unsupported
                codec = CHARSETS.get(value.decode("latin-1").strip("\x00 "))
                if codec is None:
                    raise _Unsupported
                self.codec = codec
            attribute = self._encode(vr, value, prefix, key)
            if "BulkDataURI" in attribute:
                self.bulk.append(attribute)
            if tag == _PIXEL_DATA and top_level:
                self.pixel_data_length = length
            result[key] = attribute
        return result, position, False

    def _encode(self, vr: str, value: bytes, prefix: str, key: str) -> dict[str, Any]:
        """The attribute of one value; short ones from the cache of values seen before."""
        seen = (vr, value, self.codec) if len(value) <= _SHORT_VALUE else None
        attribute = _SEEN.get(seen) if seen else None
        if attribute is None:
            attribute = value_to_json(vr, value, self.codec, f"{prefix}{key}")
            if attribute is None:
                raise _Unsupported
            if seen:
                if len(_SEEN) >= _SEEN_MAX:
                    _SEEN.clear()
                _SEEN[seen] = attribute
        return attribute

    def _sequence(
        self, position: int, length: int, prefix: str, end: int
    ) -> tuple[dict[str, Any], int]:
        """A sequence's JSON (items by their index in the bulk paths) and the position after."""
        data = self.data
        stop = end if length == _UNDEFINED else position + length
        if stop > end:
            raise _Unsupported
        items: list[dict[str, Any]] = []
        closed = length != _UNDEFINED
        while position < stop:
            group, element, item_length = _TAG_LENGTH.unpack_from(data, position)
            position += 8
            if group != 0xFFFE:
                raise _Unsupported
            if element == _SEQUENCE_END and length == _UNDEFINED and item_length == 0:
                closed = True
                break
            if element != _ITEM:
                raise _Unsupported
            item_prefix = f"{prefix}{len(items)}/"
            if item_length == _UNDEFINED:
                item, position, delimited = self._elements(position, stop, item_prefix, False)
                if not delimited:
                    raise _Unsupported
            else:
                if position + item_length > stop:
                    raise _Unsupported
                item = self.dataset(position, position + item_length, item_prefix)
                position += item_length
            items.append(item)
        if not closed:
            raise _Unsupported  # no sequence delimiter, or items overrun the sequence
        return ({"vr": "SQ", "Value": items} if items else {"vr": "SQ"}), position

    def _encapsulated(
        self, vr: str, position: int, bulk_uri: str, end: int
    ) -> tuple[dict[str, Any], int]:
        """Encapsulated Pixel Data: its items as one value (without the sequence delimiter)."""
        data, start = self.data, position
        while True:
            group, element, length = _TAG_LENGTH.unpack_from(data, position)
            if group != 0xFFFE or length == _UNDEFINED:
                raise _Unsupported
            if element == _SEQUENCE_END:
                break
            if element != _ITEM or position + 8 + length > end:
                raise _Unsupported
            position += 8 + length
        attribute = value_to_json(vr, data[start:position], self.codec, bulk_uri)
        if attribute is None:
            raise _Unsupported
        if "BulkDataURI" in attribute:
            self.bulk.append(attribute)
        return attribute, position + 8
