"""DICOM files in and out of the anonymizer: bytes -> Dataset -> bytes, errors translated.

Shared by the HTTP route and the command line. A Part 10 file is expected (PS3.10 7.1);
a bare dataset without preamble and File Meta Information is accepted as pydicom reads
it with ``force=True`` and written back the same way.
"""

from __future__ import annotations

import io

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite

from radpacs.deid.anonymizer import Anonymizer
from radpacs.errors import InvalidInput

__all__ = ["anonymize_bytes", "read_dataset", "write_dataset"]


def read_dataset(data: bytes, name: str = "input") -> Dataset:
    """Parse DICOM bytes; :class:`InvalidInput` when they are not a DICOM dataset."""
    try:
        try:
            ds = dcmread(io.BytesIO(data))
        except InvalidDicomError:
            ds = dcmread(io.BytesIO(data), force=True)
        if "SOPClassUID" not in ds:
            raise InvalidInput(f"{name} is not a DICOM instance: it has no SOP Class UID")
        return ds
    except InvalidInput:
        raise
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise InvalidInput(f"{name} cannot be read as DICOM: {exc}") from exc


def write_dataset(ds: Dataset) -> bytes:
    """Encode ``ds`` as a DICOM file (PS3.10 when it has File Meta Information)."""
    buffer = io.BytesIO()
    has_meta = bool(getattr(ds, "file_meta", None)) and "TransferSyntaxUID" in ds.file_meta
    dcmwrite(buffer, ds, enforce_file_format=has_meta)
    return buffer.getvalue()


def anonymize_bytes(
    anonymizer: Anonymizer, data: bytes, *, pixels_checked: bool = False, name: str = "input"
) -> bytes:
    """Read, de-identify in place and write one DICOM file."""
    ds = read_dataset(data, name)
    anonymizer.anonymize(ds, pixels_checked=pixels_checked, copy_first=False)
    return write_dataset(ds)
