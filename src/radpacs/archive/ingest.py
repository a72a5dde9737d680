"""Reading one uploaded object into what the index stores: no I/O, no database.

:func:`parse_instance` checks that the bytes are a PS3.10 file the archive can serve (file meta
with a transfer syntax, the four identifying UIDs, values readable to the end), and extracts the
query attributes and the DICOM JSON metadata. Common little-endian files are read in one pass
over their bytes (:mod:`radpacs.dicom.scan`); pydicom reads the others, and every file that pass
is unsure of, with the same result. Anything wrong raises InvalidInstance with the PS3.18
FailureReason to report.

:func:`parse_file` does the same for an object in a file (a large STOW part, zip member or
C-STORE data set): the elements around its Pixel Data are read (:mod:`radpacs.dicom.large`),
the value itself only hashed in chunks, so the object is never whole in memory.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import UID

from radpacs.archive.blobs import BlobData, FileBlob
from radpacs.dicom.json import attribute, dataset_to_json, json_to_bytes
from radpacs.dicom.large import ElidedPixelData, LargeFileError, split_pixel_data
from radpacs.dicom.limits import StructureLimit, check_structure
from radpacs.dicom.scan import Scanned, scan
from radpacs.errors import InvalidInstance

__all__ = [
    "CANNOT_UNDERSTAND",
    "PROCESSING_FAILURE",
    "STUDY_UID_MISMATCH",
    "ParsedInstance",
    "normalize_datetime",
    "normalize_time",
    "parse_file",
    "parse_instance",
]

CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
STUDY_UID_MISMATCH = 0xC409  # dcm4chee's code for a StudyInstanceUID other than the target's
_UID = re.compile(r"^[0-9.]{1,64}$")


@dataclass
class ParsedInstance:
    """An uploaded object, checked, with what the index needs from it."""

    data: BlobData
    digest: str
    sop_class_uid: str
    sop_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str
    patient: dict[str, str] = field(default_factory=dict)
    study: dict[str, str] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    instance: dict[str, Any] = field(default_factory=dict)
    metadata_json: str = ""

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return len(self.data) if isinstance(self.data, bytes) else self.data.size

    @property
    def storage_key(self) -> str:
        """Content-addressed within a folder per series: identical bytes share one file, and
        a batch of one series touches one folder (one directory fsync, not one per file)."""
        folder = hashlib.sha256(self.series_uid.encode()).hexdigest()[:24]
        return f"{folder[:2]}/{folder}/{self.digest}.dcm"


def _uid(dataset: Dataset, tag: int) -> str:
    """A UID attribute's text, from the raw bytes when the element is still unconverted."""
    value = getattr(dataset._dict.get(BaseTag(tag)), "value", None)
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")[:64]
    return _text(dataset, tag, 64)


def _text(dataset: Dataset, keyword: str | int, limit: int = 400) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        text = "\\".join(str(item) for item in value)
    else:
        text = str(value)
    return text.strip()[:limit]


def _json_text(metadata: dict[str, Any], tag: str, limit: int = 400) -> str:
    """An attribute of the DICOM JSON as DICOM text (values joined by backslashes)."""
    values = metadata.get(tag, {}).get("Value") or []
    texts = []
    for value in values:
        if isinstance(value, dict):  # a person name: its alphabetic group
            value = value.get("Alphabetic", "")
        texts.append("" if value is None else str(value))
    return "\\".join(texts).strip()[:limit]


def _json_int(metadata: dict[str, Any], tag: str) -> int | None:
    values = metadata.get(tag, {}).get("Value") or [None]
    try:
        return int(values[0]) if values[0] not in (None, "") else None
    except (TypeError, ValueError):
        return None


def normalize_time(value: str) -> str:
    """DICOM TM as ``HHMMSS.ffffff`` (missing digits as zeros); '' if it is not a time."""
    value = value.strip().replace(":", "")
    match = re.match(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$", value)
    if not match:
        return ""
    hours, minutes, seconds, fraction = match.groups()
    return f"{hours}{minutes or '00'}{seconds or '00'}.{(fraction or '').ljust(6, '0')}"


def normalize_datetime(value: str) -> str:
    """DICOM DT as ``YYYYMMDDHHMMSS.ffffff`` (offset dropped); '' if it is not a datetime."""
    value = re.split(r"[+-]", value.strip(), maxsplit=1)[0]
    match = re.match(r"^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?$", value)
    if not match:
        return ""
    date, time = match.groups()
    return date + (normalize_time(time) if time else "000000.000000")


def _check_uid(value: str, keyword: str, sop_class: str = "", sop_uid: str = "") -> str:
    if not value:
        raise InvalidInstance(f"{keyword} is missing", CANNOT_UNDERSTAND, sop_class, sop_uid)
    if not _UID.match(value):
        raise InvalidInstance(
            f"{keyword} {value[:80]!r} is not a valid UID", CANNOT_UNDERSTAND, sop_class, sop_uid
        )
    return value


def _read(data: bytes) -> Dataset:
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise InvalidInstance(f"not a DICOM PS3.10 file: {exc}", CANNOT_UNDERSTAND) from exc
    except Exception as exc:  # pydicom raises many types on damaged files
        raise InvalidInstance(f"unreadable DICOM: {exc}", CANNOT_UNDERSTAND) from exc
    transfer_syntax = getattr(dataset.file_meta, "TransferSyntaxUID", None)
    if not transfer_syntax:
        raise InvalidInstance("the file meta has no TransferSyntaxUID", CANNOT_UNDERSTAND)
    if not UID(transfer_syntax).is_transfer_syntax:
        raise InvalidInstance(
            f"TransferSyntaxUID {str(transfer_syntax)[:64]!r} is not a transfer syntax",
            CANNOT_UNDERSTAND,
        )
    return dataset


def _check_complete(
    dataset: Dataset,
    metadata: dict[str, Any],
    sop_class: str,
    sop_uid: str,
    elided: ElidedPixelData | None = None,
) -> None:
    """Check declared lengths against the values read, so a file cut short fails here.

    pydicom reads a file cut inside its last element without complaint; comparing each
    top-level value with its declared length, and native pixel data with the size the image
    attributes imply, catches such files without converting every value.
    """
    for tag, raw in dataset._dict.items():  # as read, without conversion
        declared = getattr(raw, "length", None)
        value = getattr(raw, "value", None)
        if (
            isinstance(value, bytes)
            and declared not in (None, 0xFFFFFFFF)
            and len(value) < declared
        ):
            raise InvalidInstance(
                f"attribute ({tag >> 16:04X},{tag & 0xFFFF:04X}) declares {declared} bytes but "
                f"the file holds {len(value)}: file truncated",
                CANNOT_UNDERSTAND,
                sop_class,
                sop_uid,
            )
    pixel_data = getattr(dataset.get_item("PixelData"), "value", None)
    length = len(pixel_data) if isinstance(pixel_data, bytes) else None
    if elided is not None:
        length = elided.length
    if length is not None:
        transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
        _check_pixel_data(metadata, length, transfer_syntax, sop_class, sop_uid)


def _check_pixel_data(
    metadata: dict[str, Any], length: int, transfer_syntax: str, sop_class: str, sop_uid: str
) -> None:
    """Native Pixel Data must hold as many bytes as its image attributes imply."""
    if UID(transfer_syntax).is_compressed:
        return
    rows, columns = _json_int(metadata, "00280010"), _json_int(metadata, "00280011")
    bits = _json_int(metadata, "00280100")
    samples = _json_int(metadata, "00280002") or 1
    frames = _json_int(metadata, "00280008") or 1
    if rows and columns and bits:
        expected = (rows * columns * samples * frames * bits + 7) // 8
        if length < expected:
            raise InvalidInstance(
                f"PixelData holds {length} bytes, {expected} expected: file truncated",
                CANNOT_UNDERSTAND,
                sop_class,
                sop_uid,
            )


_PIXEL_VALUES = ("7FE00010", "7FE00008", "7FE00009", "00287FE0")  # or a Pixel Data Provider URL
_IMAGE_PIXEL = (("00280010", "Rows"), ("00280011", "Columns"), ("00280100", "BitsAllocated"))


def _check_image(metadata: dict[str, Any], sop_class: str, sop_uid: str) -> None:
    """An instance of an image storage SOP class must have the Image Pixel module (PS3.3
    C.7.6.3): Rows, Columns, Bits Allocated and pixel data. A file cut short on an element
    boundary reads without error but lacks them; refusing it lets the complete file be
    stored when the upload is retried."""
    if "Image Storage" not in UID(sop_class).name:
        return
    missing = [keyword for tag, keyword in _IMAGE_PIXEL if _json_int(metadata, tag) is None]
    if not any(tag in metadata for tag in _PIXEL_VALUES):
        missing.append("PixelData")
    if missing:
        raise InvalidInstance(
            f"a {UID(sop_class).name} instance without {', '.join(missing)}: "
            "file truncated or not an image",
            CANNOT_UNDERSTAND,
            sop_class,
            sop_uid,
        )


@dataclass
class _Identity:
    """The four UIDs that place an instance in the archive, checked."""

    sop_class: str
    sop_uid: str
    study_uid: str
    series_uid: str

    @property
    def instance_path(self) -> str:
        return f"/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop_uid}"


def _identify(
    sop_class: str, sop_uid: str, study_uid: str, series_uid: str, expected_study_uid: str | None
) -> _Identity:
    """Check the four identifying UIDs (and the study the request names)."""
    _check_uid(sop_uid, "SOPInstanceUID", sop_class)
    _check_uid(sop_class, "SOPClassUID", sop_class, sop_uid)
    _check_uid(study_uid, "StudyInstanceUID", sop_class, sop_uid)
    _check_uid(series_uid, "SeriesInstanceUID", sop_class, sop_uid)
    if expected_study_uid and study_uid != expected_study_uid:
        raise InvalidInstance(
            f"StudyInstanceUID {study_uid} differs from the study {expected_study_uid} "
            "named in the request",
            STUDY_UID_MISMATCH,
            sop_class,
            sop_uid,
        )
    return _Identity(sop_class, sop_uid, study_uid, series_uid)


def _from_scan(
    scanned: Scanned, expected_study_uid: str | None, elided: ElidedPixelData | None
) -> tuple[_Identity, dict[str, Any], str]:
    """Identity, JSON and transfer syntax from :func:`radpacs.dicom.scan.scan`."""
    metadata = scanned.metadata
    identity = _identify(
        _json_text(metadata, "00080016", 64) or scanned.media_storage_sop_class_uid,
        _json_text(metadata, "00080018", 64),
        _json_text(metadata, "0020000D", 64),
        _json_text(metadata, "0020000E", 64),
        expected_study_uid,
    )
    scanned.set_bulk_prefix(f"{identity.instance_path}/bulkdata/")
    length = scanned.pixel_data_length if elided is None else elided.length
    if length is not None:
        _check_pixel_data(
            metadata,
            length,
            scanned.transfer_syntax_uid,
            identity.sop_class,
            identity.sop_uid,
        )
    return identity, metadata, scanned.transfer_syntax_uid


def _from_pydicom(
    data: bytes, expected_study_uid: str | None, elided: ElidedPixelData | None
) -> tuple[_Identity, dict[str, Any], str]:
    """Identity, JSON and transfer syntax through pydicom, for the files :func:`scan` leaves."""
    dataset = _read(data)
    identity = _identify(
        _uid(dataset, 0x00080016) or _text(dataset.file_meta, "MediaStorageSOPClassUID", 64),
        _uid(dataset, 0x00080018),
        _uid(dataset, 0x0020000D),
        _uid(dataset, 0x0020000E),
        expected_study_uid,
    )
    try:
        metadata = dataset_to_json(dataset, identity.instance_path)
    except Exception as exc:
        raise InvalidInstance(
            f"cannot express the data set as DICOM JSON: {exc}",
            PROCESSING_FAILURE,
            identity.sop_class,
            identity.sop_uid,
        ) from exc
    _check_complete(dataset, metadata, identity.sop_class, identity.sop_uid, elided)
    return identity, metadata, str(dataset.file_meta.TransferSyntaxUID)


def parse_instance(data: bytes, expected_study_uid: str | None = None) -> ParsedInstance:
    """Check and index one uploaded PS3.10 file; InvalidInstance says what is wrong.

    The structure is checked first (:func:`radpacs.dicom.limits.check_structure`: nesting
    depth, element count). Common little-endian files are then read in one pass
    (:mod:`radpacs.dicom.scan`); the others, and every file that pass is unsure of, through
    pydicom. An error of a library on a file no check foresaw fails this file alone with
    0x0110 (processing failure), never the request.
    """
    return _parse(data, expected_study_uid, data, None)


def parse_file(blob: FileBlob, expected_study_uid: str | None = None) -> ParsedInstance:
    """:func:`parse_instance` for the object in ``blob``'s file, whose Pixel Data value is
    hashed and later copied in chunks but never read whole (:mod:`radpacs.dicom.large`). A
    file that has no top-level Pixel Data, or is deflated, is read whole if it is at most 64
    MiB and refused (0xC000) otherwise."""
    try:
        split = split_pixel_data(blob.file, blob.size)
    except LargeFileError as exc:
        raise InvalidInstance(str(exc), CANNOT_UNDERSTAND) from exc
    if split is None:
        return parse_instance(b"".join(blob.chunks()), expected_study_uid)
    return _parse(split.head, expected_study_uid, blob, split.pixel_data)


def _parse(
    data: bytes, expected_study_uid: str | None, payload: BlobData, elided: ElidedPixelData | None
) -> ParsedInstance:
    """Check and read ``data`` (the object, or its stand-in without the Pixel Data value
    ``elided``); the result stores ``payload``."""
    if not data:
        raise InvalidInstance("empty body", CANNOT_UNDERSTAND)
    if data[128:132] != b"DICM":
        raise InvalidInstance(
            "not a DICOM file (no DICM prefix at byte 128, PS3.10 7.1)", CANNOT_UNDERSTAND
        )
    try:
        check_structure(data)
    except StructureLimit as exc:
        raise InvalidInstance(str(exc), CANNOT_UNDERSTAND) from exc
    try:
        return _parse_checked(data, expected_study_uid, payload, elided)
    except InvalidInstance:
        raise
    except Exception as exc:  # a library failing on a file fails that file alone
        raise InvalidInstance(
            f"the file could not be processed ({type(exc).__name__}: {str(exc)[:200]})",
            PROCESSING_FAILURE,
        ) from exc


def _digest(payload: BlobData) -> str:
    if isinstance(payload, bytes):
        return hashlib.sha256(payload).hexdigest()
    digest = hashlib.sha256()
    for chunk in payload.chunks():
        digest.update(chunk)
    return digest.hexdigest()


def _parse_checked(
    data: bytes, expected_study_uid: str | None, payload: BlobData, elided: ElidedPixelData | None
) -> ParsedInstance:
    scanned = scan(data)
    if scanned is not None:
        identity, metadata, transfer_syntax = _from_scan(scanned, expected_study_uid, elided)
    else:
        identity, metadata, transfer_syntax = _from_pydicom(data, expected_study_uid, elided)
    if elided is not None:  # the value left in the file is bulk data, as any large value
        metadata["7FE00010"] = {
            "vr": elided.vr,
            "BulkDataURI": f"{identity.instance_path}/bulkdata/7FE00010",
        }
    sop_class, sop_uid = identity.sop_class, identity.sop_uid
    _check_image(metadata, sop_class, sop_uid)
    metadata["00083002"] = attribute("UI", transfer_syntax)  # AvailableTransferSyntaxUID

    def text(tag: str, limit: int = 400) -> str:
        return _json_text(metadata, tag, limit)

    patient_name = text("00100010")
    referring = text("00080090")
    return ParsedInstance(
        data=payload,
        digest=_digest(payload),
        sop_class_uid=sop_class,
        sop_uid=sop_uid,
        study_uid=identity.study_uid,
        series_uid=identity.series_uid,
        transfer_syntax_uid=transfer_syntax,
        patient={
            "patient_id": text("00100020", 64),
            "issuer": text("00100021", 64),
            "patient_name": patient_name,
            "patient_name_lower": patient_name.lower(),
            "birth_date": text("00100030", 8),
            "sex": text("00100040", 16),
        },
        study={
            "study_date": text("00080020", 8),
            "study_time": normalize_time(text("00080030")),
            "accession_number": text("00080050", 64),
            "study_id": text("00200010", 64),
            "study_description": text("00081030"),
            "referring_physician": referring,
            "referring_physician_lower": referring.lower(),
        },
        series={
            "modality": text("00080060", 16),
            "series_number": _json_int(metadata, "00200011"),
            "series_description": text("0008103E"),
            "body_part": text("00180015", 64),
            "pps_start_date": text("00400244", 8),
            "pps_start_time": normalize_time(text("00400245")),
        },
        instance={
            "sop_class_uid": sop_class,
            "instance_number": _json_int(metadata, "00200013"),
            "transfer_syntax_uid": transfer_syntax,
            "rows": _json_int(metadata, "00280010"),
            "columns": _json_int(metadata, "00280011"),
            "bits_allocated": _json_int(metadata, "00280100"),
            "number_of_frames": _json_int(metadata, "00280008")
            or (1 if "7FE00010" in metadata else None),
            "content_date": text("00080023", 8),
            "content_time": normalize_time(text("00080033")),
            "acquisition_datetime": normalize_datetime(text("0008002A")),
        },
        metadata_json=json_to_bytes(metadata).decode(),
    )
