"""A large object read around its Pixel Data (radpacs.dicom.large, ingest.parse_file): the same
index rows, JSON and digest as reading it whole, damaged files refused, and the folder store
copying it from its file."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_file

from conftest import PYDICOM_FILES, make_ct, to_bytes
from radpacs.archive.blobs import FileBlob, FolderBlobStore
from radpacs.archive.ingest import CANNOT_UNDERSTAND, parse_file, parse_instance
from radpacs.dicom import large
from radpacs.dicom.json import BULK_DATA_THRESHOLD
from radpacs.errors import InvalidInstance


def _blob(data: bytes) -> FileBlob:
    return FileBlob(io.BytesIO(data), len(data))


def _same(data: bytes) -> None:
    """Both give the same index rows, digest and JSON, but the Pixel Data of a file read in
    parts is always a BulkDataURI (read whole, a value under the threshold is inline)."""
    whole = parse_instance(data)
    parted = parse_file(_blob(data))
    whole_json, parted_json = json.loads(whole.metadata_json), json.loads(parted.metadata_json)
    pixels = parted_json.pop("7FE00010")
    assert pixels["BulkDataURI"].endswith("/bulkdata/7FE00010")
    assert pixels["vr"] == whole_json.pop("7FE00010")["vr"]
    assert parted_json == whole_json
    if _pixel_data_bulk(data):
        assert parted.metadata_json == whole.metadata_json
    assert parted.digest == whole.digest
    assert parted.instance == whole.instance
    assert parted.size == len(data)
    assert isinstance(parted.data, FileBlob)


def _pixel_data_bulk(data: bytes) -> bool:
    metadata = json.loads(parse_instance(data).metadata_json)
    return "BulkDataURI" in metadata.get("7FE00010", {})


# explicit and implicit little endian, big endian, native and encapsulated (JPEG 2000, RLE),
# a nested Pixel Data in an icon sequence before the top-level one
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_rle.dcm",
    "rtdose_1frame.dcm",
]


@pytest.mark.parametrize("name", FILES)
def test_a_file_read_around_its_pixel_data_is_indexed_as_when_read_whole(name: str) -> None:
    path = PYDICOM_FILES / name if (PYDICOM_FILES / name).exists() else None
    if path is None:
        found = get_testdata_file(name)
        if found is None:
            pytest.skip(f"{name} is not available offline")
        path = Path(str(found))
    _same(path.read_bytes())


def test_an_icon_pixel_data_before_the_top_level_one_is_not_taken_for_it() -> None:
    dataset = make_ct()
    item = Dataset()
    item.Rows, item.Columns, item.BitsAllocated = 4, 4, 8
    item.SamplesPerPixel, item.BitsStored, item.HighBit = 1, 8, 7
    item.PixelRepresentation, item.PhotometricInterpretation = 0, "MONOCHROME2"
    item.PixelData = bytes(16)
    dataset.IconImageSequence = [item]
    dataset["IconImageSequence"].is_undefined_length = True  # walked up to its delimiter
    item.is_undefined_length_sequence_item = True
    _same(to_bytes(dataset))


def test_a_file_cut_inside_its_pixel_data_is_refused_as_truncated() -> None:
    data = to_bytes(make_ct())
    with pytest.raises(InvalidInstance, match="truncated") as caught:
        parse_file(_blob(data[:-100]))
    assert caught.value.failure_reason == CANNOT_UNDERSTAND


def test_encapsulated_fragments_running_past_the_end_are_refused() -> None:
    data = Path(str(get_testdata_file("JPEG2000.dcm"))).read_bytes()
    with pytest.raises(InvalidInstance, match="truncated"):
        parse_file(_blob(data[:-20]))


def test_a_large_file_without_pixel_data_is_refused_and_a_small_one_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = make_ct()
    del dataset.PixelData
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture: still an image
    data = to_bytes(dataset)
    with pytest.raises(InvalidInstance, match="Secondary Capture Image Storage instance without"):
        parse_file(_blob(data))  # read whole, refused by ingest as an image without pixels
    monkeypatch.setattr(large, "MAX_HEAD_BYTES", len(data) - 1)
    with pytest.raises(InvalidInstance, match="has no top-level Pixel Data"):
        parse_file(_blob(data))


def test_a_long_tail_after_pixel_data_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = to_bytes(make_ct())
    padding = struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, 64) + bytes(64)
    _same(data + padding)  # Data Set Trailing Padding is read with the elements around
    monkeypatch.setattr(large, "MAX_TAIL_BYTES", 32)
    with pytest.raises(InvalidInstance, match="after Pixel Data"):
        parse_file(_blob(data + padding))


def test_the_folder_store_copies_a_file_blob_in_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    store = FolderBlobStore(tmp_path)
    blob = FileBlob(io.BytesIO(data), len(data))
    assert len(list(blob.chunks(4096))) == -(-len(data) // 4096)
    store.put("ab/cd/x.dcm", blob)
    assert (tmp_path / "ab/cd/x.dcm").read_bytes() == data
    assert not list(store.temporaries())


def test_the_threshold_of_bulk_values_is_what_this_relies_on() -> None:
    assert BULK_DATA_THRESHOLD <= 16 * 1024 * 1024  # a stored part over 16 MiB is always bulk
