"""Hand-made hostile DICOM files for the robustness tests (written byte by byte: pydicom's own
writer recurses, so it cannot make the files these tests need)."""

from __future__ import annotations

import struct

from conftest import make_ct, to_bytes

_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQUENCE_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def content_sequence(depth: int, defined: bool = False) -> bytes:
    """A Content Sequence (0040,A730) element nested ``depth`` levels, explicit VR LE."""
    body = struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 2) + b"X "
    for _ in range(depth):
        if defined:
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
            body = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, len(item)) + item
        else:
            item = _ITEM + body + _ITEM_END
            body = (
                struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + item + _SEQUENCE_END
            )
    return body


def nested_ct(depth: int, defined: bool = False, **attributes: object) -> bytes:
    """A CT (new UIDs) holding a Content Sequence nested ``depth`` levels."""
    data = to_bytes(make_ct(**attributes))
    at = data.find(b"\xe0\x7f\x10\x00")  # Pixel Data; (0040,A730) sorts before it
    return data[:at] + content_sequence(depth, defined) + data[at:]


def with_element(data: bytes, before_tag: bytes, element: bytes) -> bytes:
    """``data`` with ``element`` (encoded bytes) inserted before the element whose tag bytes
    are ``before_tag``."""
    at = data.find(before_tag)
    assert at > 0
    return data[:at] + element + data[at:]
