"""Read a DICOM dataset from bytes or a path, translating pydicom's errors into InvalidInput."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from radpacs.errors import InvalidInput

__all__ = ["read_dataset"]


def read_dataset(source: bytes | Path, label: str) -> pydicom.Dataset:
    """Parse one DICOM Part 10 file (PS3.10 7.1); ``label`` names the input in error messages.

    Raises :class:`InvalidInput` when the bytes are empty or are not DICOM.
    """
    try:
        if isinstance(source, Path):
            return pydicom.dcmread(source)
        if not source:
            raise InvalidInput(f"{label} is empty")
        return pydicom.dcmread(io.BytesIO(source))
    except InvalidDicomError as exc:
        raise InvalidInput(f"{label} is not a DICOM file ({exc})") from exc
    except (OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"{label} cannot be read as DICOM: {exc}") from exc
