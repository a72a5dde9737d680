"""Property-based tests (hypothesis) of the readers that take untrusted bytes: the multipart
reader, the one-pass DICOM reader (dicom/scan.py), the structure check and ingest. Whatever the
bytes, only the documented exceptions come out, and nothing is stored from a refused part."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _hostile_support import nested_ct
from conftest import make_ct, to_bytes
from radpacs.archive import Archive, Outcome
from radpacs.archive.blobs import FileBlob
from radpacs.archive.ingest import parse_file, parse_instance
from radpacs.dicom.limits import StructureLimit, check_structure
from radpacs.dicom.multipart import MultipartError, MultipartParser
from radpacs.dicom.scan import scan
from radpacs.errors import InvalidInstance
from radpacs.settings import load_settings

SEEDS = [to_bytes(make_ct()), nested_ct(3), nested_ct(3, defined=True)]
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """A valid file with a few bytes changed, a range removed or repeated, or cut short."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    action = draw(st.sampled_from(["none", "cut", "remove", "repeat"]))
    start = draw(st.integers(0, len(data) - 1))
    stop = draw(st.integers(start, min(len(data), start + 600)))
    if action == "cut":
        del data[start:]
    elif action == "remove":
        del data[start:stop]
    elif action == "repeat":
        data[stop:stop] = data[start:stop]
    return bytes(data)


def _chunks(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    previous = 0
    for cut in sorted({min(cut, len(data)) for cut in cuts}):
        yield data[previous:cut]
        previous = cut
    yield data[previous:]


@PROPERTY
@given(
    bodies=st.lists(st.binary(max_size=300), max_size=6),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
)
def test_multipart_gives_back_each_part_whatever_the_chunking(
    bodies: list[bytes], cuts: list[int]
) -> None:
    boundary = b"b0undary-xyz"
    bodies = [body.replace(b"--" + boundary, b"") for body in bodies]
    message = b"".join(b"--" + boundary + b"\r\nX: 1\r\n\r\n" + body + b"\r\n" for body in bodies)
    message += b"--" + boundary + b"--\r\n"
    parser = MultipartParser(boundary, memory_limit=256)
    for chunk in _chunks(message, cuts):
        parser.feed(chunk)
    assert [part.read() for part in parser.close()] == bodies


@PROPERTY
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_multipart_raises_only_multipart_error_on_any_bytes(data: bytes, cuts: list[int]) -> None:
    parser = MultipartParser(b"b")
    try:
        for chunk in _chunks(b"--b\r\n" + data, cuts):
            parser.feed(chunk)
        parser.close()
    except MultipartError:
        pass


@PROPERTY
@given(data=damaged_files())
def test_scan_and_the_structure_check_never_raise_anything_else(data: bytes) -> None:
    scanned = scan(data)
    assert scanned is None or isinstance(scanned.metadata, dict)
    with contextlib.suppress(StructureLimit):
        check_structure(data)


@PROPERTY
@given(data=damaged_files())
def test_ingest_raises_only_invalid_instance(data: bytes) -> None:
    try:
        parsed = parse_instance(data)
    except InvalidInstance as exc:
        assert str(exc) and exc.failure_reason in (0xC000, 0x0110)
        return
    assert parsed.sop_uid and parsed.metadata_json


@PROPERTY
@given(data=damaged_files())
def test_reading_around_pixel_data_raises_only_invalid_instance(data: bytes) -> None:
    """parse_file (a large part, member or C-STORE) fails as parse_instance does, and where
    it stores, it stores the same object."""
    try:
        parsed = parse_file(FileBlob(io.BytesIO(data), len(data)))
    except InvalidInstance as exc:
        assert str(exc) and exc.failure_reason in (0xC000, 0x0110)
        return
    whole = parse_instance(data)  # what read whole succeeds on, read around succeeds on
    assert (parsed.sop_uid, parsed.digest, parsed.size) == (whole.sop_uid, whole.digest, len(data))


@pytest.fixture(scope="module")
def fuzz_archive() -> Iterator[Archive]:
    with tempfile.TemporaryDirectory() as folder:
        archive = Archive.from_settings(load_settings(data_dir=Path(folder)))
        yield archive
        archive.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(files=st.lists(damaged_files(), min_size=1, max_size=4))
def test_store_never_raises_and_refused_parts_leave_nothing(
    fuzz_archive: Archive, files: list[bytes]
) -> None:
    before_keys = set(fuzz_archive.blobs.keys())
    results = fuzz_archive.store_many(files)
    assert len(results) == len(files)
    new_keys = set(fuzz_archive.blobs.keys()) - before_keys
    written = {
        parse_instance(data).storage_key
        for data, result in zip(files, results, strict=True)
        if result.outcome in (Outcome.STORED, Outcome.REPLACED)
    }
    assert new_keys == written  # nothing from a refused part, nothing left over
    assert list(fuzz_archive.blobs.temporaries()) == []
