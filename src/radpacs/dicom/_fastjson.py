"""DICOM JSON (PS3.18 F.2) straight from raw little-endian element bytes, for speed.

pydicom converts every value to Python objects before encoding it as JSON; at store time that
is most of the cost. Here the common cases are encoded from the raw bytes: text in ASCII,
Latin-1 or UTF-8, numbers, person names, binary values. ``raw_to_json`` returns None for
anything it does not handle with certainty (sequences, private or ambiguous tags, other
character sets, already converted elements), and the caller falls back to pydicom.
tests/test_dicom_json.py checks that both give the same JSON on every file pydicom ships.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement

__all__ = ["BULK_BYTES", "CHARSETS", "fast_encoding", "implicit_vr", "raw_to_json", "value_to_json"]

BULK_BYTES = (1024 // 4) * 3  # pydicom's rule: threshold on the base64 length
CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_MULTI_TEXT = {"AE", "AS", "CS", "DA", "DT", "TM", "UI", "LO", "SH", "UC"}
_SINGLE_TEXT = {"LT", "ST", "UT", "UR"}
_BINARY = {"OB", "OD", "OF", "OL", "OV", "OW"}
_STRUCTS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
_SIZES = {"H": 2, "h": 2, "I": 4, "i": 4, "f": 4, "d": 8, "Q": 8, "q": 8}


@lru_cache(maxsize=1024)
def _unpacker(code: str, count: int) -> Callable[[bytes], tuple[Any, ...]]:
    """A compiled little-endian unpacker for ``count`` values of ``code``."""
    return struct.Struct(f"<{count}{code}").unpack


def fast_encoding(dataset: Dataset) -> str | None:
    """The codec for the data set's text, or None when the fast path must not be used."""
    encoding = getattr(dataset, "original_encoding", (None, None))
    if encoding[1] is not True:  # big endian, or not read from a file
        return None
    charset = dataset.get_item(0x00080005)
    if charset is None:
        return "latin-1"
    value = getattr(charset, "value", None)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):  # several character sets: code extensions
        return None
    return CHARSETS.get(value.strip("\x00 "))


def _strip(text: str) -> str:
    return text.rstrip("\x00 ")


def _texts(raw: bytes, codec: str) -> list[str]:
    text = _strip(raw.decode(codec))
    if "\\" not in text:
        return [text]
    return [_strip(part) for part in text.split("\\")]


def _numbers(values: list[str], vr: str) -> list[Any] | None:
    out: list[Any] = []
    for value in values:
        text = value.strip()
        if not text:
            out.append(None)
            continue
        try:
            number: Any = int(text) if vr == "IS" else float(text)
        except ValueError:
            return None
        if isinstance(number, float) and not math.isfinite(number):
            return None
        out.append(number)
    return out


def _person_names(raw: bytes, codec: str) -> list[dict[str, str]]:
    names = []
    for value in _texts(raw, codec):
        groups = value.split("=")
        name = {"Alphabetic": groups[0]}
        if len(groups) > 1:
            name["Ideographic"] = groups[1]
        if len(groups) > 2:
            name["Phonetic"] = groups[2]
        names.append(name)
    return names


def raw_to_json(element: Any, codec: str, bulk_uri: str) -> dict[str, Any] | None:
    """The JSON attribute of an unconverted element, or None to let pydicom do it."""
    if not isinstance(element, RawDataElement):
        return None  # converted already
    vr = element.VR
    if vr is None:  # implicit VR: only public tags have a known VR
        vr = implicit_vr(element.tag)
        if vr is None:
            return None
    value = element.value
    if not isinstance(value, bytes) or element.length == 0xFFFFFFFF:
        return None  # encapsulated pixel data and the like: leave to pydicom
    return value_to_json(vr, value, codec, bulk_uri)


@lru_cache(maxsize=4096)
def implicit_vr(tag: int) -> str | None:
    """The VR of a public tag in implicit VR data, or None (private, unknown, ambiguous)."""
    if (tag >> 16) % 2:
        return None
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return None
    return None if " or " in vr else vr


def value_to_json(vr: str, value: bytes, codec: str, bulk_uri: str) -> dict[str, Any] | None:
    """The JSON attribute of a little-endian value of ``vr`` as stored, or None if unsure."""
    if vr in ("SQ", "UN") or " or " in vr:
        return None
    if not value:
        return {"vr": vr}
    if vr in _BINARY:
        if len(value) > BULK_BYTES:
            return {"vr": vr, "BulkDataURI": bulk_uri}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode()}
    if vr in _STRUCTS:
        code = _STRUCTS[vr]
        if len(value) % _SIZES[code]:
            return None
        numbers = list(_unpacker(code, len(value) // _SIZES[code])(value))
        if vr in ("FL", "FD") and not all(math.isfinite(n) for n in numbers):
            return None
        return {"vr": vr, "Value": numbers}
    if vr == "AT":
        if len(value) % 4:
            return None
        pairs = struct.unpack(f"<{len(value) // 2}H", value)
        return {
            "vr": vr,
            "Value": [f"{g:04X}{e:04X}" for g, e in zip(pairs[::2], pairs[1::2], strict=True)],
        }
    try:
        if vr in ("IS", "DS"):
            decimals = _numbers(_texts(value, "latin-1"), vr)
            if decimals == [None]:
                return {"vr": vr}
            return None if decimals is None else {"vr": vr, "Value": decimals}
        if vr == "PN":
            names = _person_names(value, codec)
            return {"vr": vr, "Value": names} if names != [{"Alphabetic": ""}] else {"vr": vr}
        texts = _texts(value, codec) if vr in _MULTI_TEXT else None
        if vr in _SINGLE_TEXT:
            texts = [_strip(value.decode(codec))]
        if texts is not None:
            return {"vr": vr, "Value": texts} if texts != [""] else {"vr": vr}
    except UnicodeDecodeError:
        return None
    return None
