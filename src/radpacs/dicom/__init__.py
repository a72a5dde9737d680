"""DICOM format code with no I/O: tags, DICOM JSON (PS3.18 F), multipart/related, media types."""

from radpacs.dicom.json import attribute, dataset_to_json, json_to_bytes
from radpacs.dicom.multipart import MultipartError, MultipartParser, Part
from radpacs.dicom.tags import resolve_tag

__all__ = [
    "MultipartError",
    "MultipartParser",
    "Part",
    "attribute",
    "dataset_to_json",
    "json_to_bytes",
    "resolve_tag",
]
