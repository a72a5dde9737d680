"""Read a DICOM dataset from bytes or a path, translating pydicom's errors into InvalidInput."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from radpacs.dicom.limits import check_structure
from radpacs.errors import InvalidInput

__all__ = ["read_dataset"]


def read_dataset(source: bytes | Path, label: str) -> pydicom.Dataset:
    """Parse one DICOM Part 10 file (PS3.10 7.1); ``label`` names the input in error messages.

    Raises :class:`InvalidInput` when the bytes are empty or are not DICOM, or nest too
    deeply for the reader (:func:`radpacs.dicom.limits.check_structure`).
    """
    try:
        data = source.read_bytes() if isinstance(source, Path) else source
        if not data:
            raise InvalidInput(f"{label} is empty")
        if data[128:132] != b"DICM":
            raise InvalidInput(f"{label} is not a DICOM file (no DICM prefix at byte 128)")
        check_structure(data)
        return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise InvalidInput(f"{label} is not a DICOM file: {exc}") from exc
    except InvalidInput:
        raise
    except Exception as exc:  # pydicom raises many kinds on damaged input
        raise InvalidInput(f"{label} cannot be read as DICOM: {exc}") from exc
