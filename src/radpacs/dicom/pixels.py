"""Frames and transfer syntaxes (PS3.18 8.7.3, PS3.5 A.4): extract frames, convert instances.

Frames are served either as stored (native pixel slices, or the compressed bitstream of an
encapsulated frame) or decoded to native little-endian bytes. Whole instances are converted
with pydicom's decoders and encoders (pylibjpeg, openjpeg, RLE); :func:`can_transcode` says
beforehand whether a conversion is possible, so that a response never fails half-way.
"""

from __future__ import annotations

import io

import pydicom
from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from radpacs.errors import InvalidInput, NotAcceptable

__all__ = [
    "FRAME_MEDIA_TYPES",
    "can_transcode",
    "decoded_frames",
    "frame_count",
    "stored_frames",
    "transcode",
]

_NATIVE_TARGETS = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}

# PS3.18 Table 8.7.3-2: the image media types of compressed frames, by transfer syntax.
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
}


def _decodable(syntax: UID) -> bool:
    if not syntax.is_compressed:
        return True
    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:
        return False


def can_transcode(source: str, target: str, has_pixels: bool = True) -> bool:
    """Whether an instance stored in ``source`` can be served in ``target``."""
    source_uid, target_uid = UID(source), UID(target)
    if source_uid == target_uid:
        return True
    if not target_uid.is_transfer_syntax:
        return False
    if not has_pixels:
        return True
    if target_uid in _NATIVE_TARGETS:
        return _decodable(source_uid)
    try:
        encoder = get_encoder(target_uid)
    except NotImplementedError:
        return False
    return bool(encoder.is_available) and _decodable(source_uid)


def transcode(data: bytes, target: str) -> bytes:
    """The PS3.10 file re-encoded in ``target``; NotAcceptable if that cannot be done."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    source = UID(dataset.file_meta.TransferSyntaxUID)
    target_uid = UID(target)
    if source == target_uid:
        return data
    try:
        if "PixelData" in dataset and source.is_compressed:
            dataset.decompress()
        if "PixelData" in dataset and target_uid not in _NATIVE_TARGETS:
            dataset.compress(target_uid)
        dataset.file_meta.TransferSyntaxUID = target_uid
        out = io.BytesIO()
        dataset.save_as(out, enforce_file_format=True)
    except Exception as exc:
        raise NotAcceptable(
            f"cannot convert instance {dataset.get('SOPInstanceUID', '?')} from "
            f"{source.name} to {target_uid.name}: {exc}"
        ) from exc
    return out.getvalue()


def frame_count(dataset: Dataset) -> int:
    """How many frames the instance holds (0 without pixel data)."""
    if "PixelData" not in dataset:
        return 0
    return int(dataset.get("NumberOfFrames") or 1)


def _check_numbers(dataset: Dataset, numbers: list[int]) -> int:
    count = frame_count(dataset)
    if count == 0:
        raise InvalidInput(f"instance {dataset.get('SOPInstanceUID', '?')} has no pixel data")
    wrong = [number for number in numbers if not 1 <= number <= count]
    if wrong:
        raise InvalidInput(
            f"frame {wrong[0]} is out of range: the instance has {count} frame"
            + ("s" if count > 1 else "")
        )
    return count


def stored_frames(dataset: Dataset, numbers: list[int]) -> list[bytes]:
    """Frames as stored: compressed bitstreams, or native bytes for little-endian data."""
    count = _check_numbers(dataset, numbers)
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    if syntax.is_encapsulated:
        pixel_data = dataset.PixelData
        return [get_frame(pixel_data, number - 1, number_of_frames=count) for number in numbers]
    bits = int(dataset.BitsAllocated)
    if not syntax.is_little_endian or bits % 8:
        return decoded_frames(dataset, numbers)
    length = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1))
    length *= bits // 8
    pixel_data = dataset.PixelData
    return [pixel_data[(number - 1) * length : number * length] for number in numbers]


def decoded_frames(dataset: Dataset, numbers: list[int]) -> list[bytes]:
    """Frames decoded to native little-endian bytes (colour as RGB)."""
    _check_numbers(dataset, numbers)
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    if not _decodable(syntax):
        raise NotAcceptable(f"no decoder is available here for {syntax.name}")
    decoder = get_decoder(syntax)
    frames = []
    for number in numbers:
        try:
            array, _ = decoder.as_array(dataset, index=number - 1)
        except Exception as exc:
            raise NotAcceptable(f"frame {number} cannot be decoded: {exc}") from exc
        frames.append(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return frames
