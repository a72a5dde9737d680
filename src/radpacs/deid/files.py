"""DICOM files in and out of the anonymizer: bytes -> Dataset -> bytes, errors translated.

Shared by the HTTP route and the command line. A Part 10 file is expected (PS3.10 7.1);
a bare dataset without preamble and File Meta Information is accepted as pydicom reads
it with ``force=True`` and written back the same way.
"""

from __future__ import annotations

import io

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID

from radpacs.deid.anonymizer import Anonymizer
from radpacs.dicom.limits import check_structure
from radpacs.errors import InvalidInput

__all__ = ["anonymize_bytes", "read_dataset", "write_dataset"]

_VALUE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    BytesLengthException,
)


def read_dataset(data: bytes, name: str = "input") -> Dataset:
    """Parse DICOM bytes; :class:`InvalidInput` when they are not a DICOM dataset, or nest
    too deeply for the reader and writer (:func:`radpacs.dicom.limits.check_structure`)."""
    if not data:
        raise InvalidInput(f"{name} is empty")
    check_structure(data)
    try:
        try:
            ds = dcmread(io.BytesIO(data))
        except InvalidDicomError:
            ds = dcmread(io.BytesIO(data), force=True)
        if "SOPClassUID" not in ds:
            raise InvalidInput(f"{name} is not a DICOM instance: it has no SOP Class UID")
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and not UID(syntax).is_transfer_syntax:
            raise InvalidInput(
                f"{name} declares Transfer Syntax UID {str(syntax)[:64]!r} in its file meta, "
                "which is not a transfer syntax"
            )
        return ds
    except InvalidInput:
        raise
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise InvalidInput(f"{name} cannot be read as DICOM: {exc}") from exc


def write_dataset(ds: Dataset, name: str = "input") -> bytes:
    """Encode ``ds`` as a DICOM file (PS3.10 when it has File Meta Information);
    :class:`InvalidInput` when a value or the declared transfer syntax cannot be written."""
    buffer = io.BytesIO()
    has_meta = bool(getattr(ds, "file_meta", None)) and "TransferSyntaxUID" in ds.file_meta
    try:
        dcmwrite(buffer, ds, enforce_file_format=has_meta)
    except _VALUE_ERRORS as exc:
        raise InvalidInput(f"{name} cannot be written back as DICOM: {exc}") from exc
    return buffer.getvalue()


def anonymize_bytes(
    anonymizer: Anonymizer, data: bytes, *, pixels_checked: bool = False, name: str = "input"
) -> bytes:
    """Read, de-identify in place and write one DICOM file."""
    ds = read_dataset(data, name)
    try:
        anonymizer.anonymize(ds, pixels_checked=pixels_checked, copy_first=False)
    except _VALUE_ERRORS as exc:  # pydicom converts values lazily, on first access
        raise InvalidInput(f"{name} holds a value that cannot be read: {exc}") from exc
    return write_dataset(ds, name)
