"""PS3.10 files from DICOM JSON data sets and their bulk data, for STOW-RS of metadata and bulk
data (PS3.18 10.5.1.2 and Annex F).

A STOW request of type ``application/dicom+json`` carries a JSON array of data sets and, in
further parts, the values their ``BulkDataURI`` attributes name (each part identified by its
``Content-Location``). :func:`instance_from_json` joins one data set with those values and
writes a PS3.10 file: Explicit VR Little Endian unless the Pixel Data part names a compressed
transfer syntax (``Content-Type: image/jpeg; transfer-syntax=...``), whose bytes then become one
encapsulated frame. Anything missing or malformed is InvalidInput naming it.

Example::

    data = instance_from_json(item, {"http://x/bulk/1": BulkPart(b"...", "")})
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian

from radpacs.errors import InvalidInput

__all__ = ["BulkPart", "instance_from_json"]

_PIXEL_DATA = "7FE00010"


@dataclass(frozen=True)
class BulkPart:
    """The bytes of one bulk data part and the transfer syntax its Content-Type names ('')."""

    data: bytes
    transfer_syntax: str = ""


def _find(bulk: Mapping[str, BulkPart], uri: str) -> BulkPart:
    """The part for ``uri``: by its exact Content-Location, else by the same path."""
    part = bulk.get(uri)
    if part is None:
        path = uri.split("://", 1)[-1].partition("/")[2] if "://" in uri else uri.lstrip("/")
        for location, candidate in bulk.items():
            other = location.split("://", 1)[-1].partition("/")[2] if "://" in location else ""
            if path and path == (other or location.lstrip("/")):
                return candidate
        raise InvalidInput(f"BulkDataURI {uri!r} names no part of the request (Content-Location)")
    return part


def instance_from_json(item: Any, bulk: Mapping[str, BulkPart]) -> bytes:
    """A PS3.10 file from one DICOM JSON data set; its BulkDataURIs are read from ``bulk``."""
    if not isinstance(item, dict):
        raise InvalidInput("a DICOM JSON data set must be an object")
    syntax = ""
    pixel = item.get(_PIXEL_DATA)
    if isinstance(pixel, dict) and isinstance(pixel.get("BulkDataURI"), str):
        syntax = _find(bulk, pixel["BulkDataURI"]).transfer_syntax
    transfer_syntax = UID(syntax) if syntax else ExplicitVRLittleEndian
    if not transfer_syntax.is_transfer_syntax:
        raise InvalidInput(f"transfer-syntax {syntax!r} of the Pixel Data part is not one")

    def value_of(tag: str, vr: str, uri: str) -> bytes:
        data = _find(bulk, uri).data
        if tag.upper() == _PIXEL_DATA and transfer_syntax.is_compressed:
            return encapsulate([data])
        return data

    try:
        dataset = Dataset.from_json(item, bulk_data_uri_handler=value_of)
    except InvalidInput:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        raise InvalidInput(f"the DICOM JSON data set cannot be read: {exc}") from exc
    sop_class = dataset.get("SOPClassUID")
    sop_uid = dataset.get("SOPInstanceUID")
    if not sop_class or not sop_uid:
        raise InvalidInput("the DICOM JSON data set has no SOPClassUID or SOPInstanceUID")
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = sop_class
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_uid
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    if "AvailableTransferSyntaxUID" in dataset:  # a WADO-RS answer's, not part of the object
        del dataset.AvailableTransferSyntaxUID
    buffer = io.BytesIO()
    try:
        dcmwrite(buffer, dataset, enforce_file_format=True)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise InvalidInput(f"the DICOM JSON data set cannot be written as DICOM: {exc}") from exc
    return buffer.getvalue()
