"""A large STOW-RS body made on the fly: many distinct ~5 MB CT instances from one template, so
neither the test nor the bench holds the body (shared by tests/test_stow_memory.py and
bench/stow_memory_bench.py)."""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from conftest import make_ct, to_bytes

BOUNDARY = "radpacs-load"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
_UID_STEM = "1.2.826.0.1.3680043.8.498.4"
_PLACEHOLDER = _UID_STEM + "9" * 20
_CHUNK = 8 * 1024 * 1024


def template(part_bytes: int, study_uid: str) -> tuple[bytes, int]:
    """A CT of about ``part_bytes`` bytes whose SOP Instance UID is a fixed-width placeholder:
    its bytes up to the Pixel Data value, and that value's length (zeros, made on the fly).
    One frame of 512 rows; frames of 512 x 512 past 64 MiB, as Columns has 16 bits."""
    rows = columns = 512
    frames = part_bytes // (2 * rows * columns)
    if frames <= 128:
        frames, columns = 1, max(1, part_bytes // (2 * rows))
    dataset = make_ct(study_uid, sop_uid=_PLACEHOLDER, Rows=rows, Columns=columns)
    if frames > 1:
        dataset.NumberOfFrames = frames
    dataset.PixelData = b"\0\0"
    if 0xFFFCFFFC in dataset:  # CT_small's Data Set Trailing Padding follows Pixel Data
        del dataset[0xFFFCFFFC]
    data = to_bytes(dataset)
    length = rows * columns * 2 * frames
    assert data.endswith(b"\xe0\x7f\x10\0OW\0\0\x02\0\0\0\0\0")  # explicit VR: Pixel Data last
    return data[:-6] + struct.pack("<I", length), length


def parts(count: int, part_bytes: int, study_uid: str) -> Iterator[bytes]:
    """The body in chunks: ``count`` parts, each a new instance of one study and series."""
    head, length = template(part_bytes, study_uid)
    first = random.randrange(10**19)
    zeros = bytes(min(length, _CHUNK))
    for number in range(first, first + count):
        uid = f"{_UID_STEM}{number:020d}".encode()
        yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        yield head.replace(_PLACEHOLDER.encode(), uid)
        for offset in range(0, length, _CHUNK):
            yield zeros[: min(_CHUNK, length - offset)]
        yield b"\r\n"
    yield f"--{BOUNDARY}--\r\n".encode()


def peak_rss_bytes(pid: int) -> int:
    """VmHWM of a process: the most resident memory it has used."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) * 1024


def address_space_bytes(pid: int) -> int:
    """VmSize of a process: its address space now."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmSize:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) * 1024
