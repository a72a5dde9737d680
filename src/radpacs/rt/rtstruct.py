"""Regions of interest and their contours, read from an RT Structure Set (PS3.3 A.19).

An RTSTRUCT names its ROIs in the Structure Set ROI Sequence (3006,0020), draws them in
the ROI Contour Sequence (3006,0039) and types them in the RT ROI Observations Sequence
(3006,0080) (PS3.3 C.8.8.5, C.8.8.6, C.8.8.8). Only CLOSED_PLANAR contours enclose a
volume; POINT, OPEN_PLANAR and OPEN_NONPLANAR contours are skipped, and each skip is kept
as a warning on the ROI and logged.

Example::

    structures = StructureSet.from_dataset(pydicom.dcmread("rtstruct.dcm"))
    sphere = structures.roi("Sphere_02_0")       # by name, or structures.roi(2) by number
    sphere.contours[0].shape                    # (n_points, 3), patient coordinates in mm
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson
import pydicom

from radpacs.errors import InvalidInput

__all__ = ["ROI", "RTSTRUCT_SOP_CLASS", "StructureSet"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"

_log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ROI:
    """One ROI: its number, name, interpreted type and closed planar contours.

    ``contours`` holds one ``(n, 3)`` array of patient coordinates (mm) per CLOSED_PLANAR
    contour with at least three points; ``warnings`` says what was skipped and why.
    """

    number: int
    name: str
    interpreted_type: str = ""
    frame_of_reference_uid: str = ""
    contours: tuple[FloatArray, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.number, int) or isinstance(self.number, bool):
            raise TypeError(f"ROI number must be an int, not {type(self.number).__name__}")
        for contour in self.contours:
            if contour.ndim != 2 or contour.shape[1] != 3 or contour.shape[0] < 3:
                raise ValueError(
                    f"ROI {self.number}: a contour must be an (n>=3, 3) array, not {contour.shape}"
                )

    @property
    def has_contours(self) -> bool:
        """True when at least one closed planar contour encloses a volume."""
        return bool(self.contours)

    @property
    def label(self) -> str:
        """``'Name' (ROI n)``, as used in messages."""
        return f"'{self.name}' (ROI {self.number})"


@dataclass(frozen=True)
class StructureSet:
    """The ROIs of one RTSTRUCT, in Structure Set ROI Sequence order."""

    frame_of_reference_uid: str
    rois: tuple[ROI, ...]
    sop_instance_uid: str = ""

    @classmethod
    def from_dataset(cls, dataset: pydicom.Dataset) -> StructureSet:
        """Read the ROIs of an RTSTRUCT dataset; InvalidInput when it is not one."""
        modality = str(dataset.get("Modality", ""))
        sop_class = str(dataset.get("SOPClassUID", ""))
        if modality != "RTSTRUCT" and sop_class != RTSTRUCT_SOP_CLASS:
            raise InvalidInput(
                f"the structure file is not an RTSTRUCT (Modality {modality or 'missing'}, "
                f"SOP Class {sop_class or 'missing'})"
            )
        if "StructureSetROISequence" not in dataset:
            raise InvalidInput("the RTSTRUCT has no Structure Set ROI Sequence (3006,0020)")
        frame_uids = [
            str(item.get("FrameOfReferenceUID", ""))
            for item in dataset.get("ReferencedFrameOfReferenceSequence", [])
        ]
        types = {
            int(item.ReferencedROINumber): str(item.get("RTROIInterpretedType", "") or "")
            for item in dataset.get("RTROIObservationsSequence", [])
            if "ReferencedROINumber" in item
        }
        contours_by_roi = {
            int(item.ReferencedROINumber): item.get("ContourSequence", [])
            for item in dataset.get("ROIContourSequence", [])
            if "ReferencedROINumber" in item
        }
        rois = []
        for item in dataset.StructureSetROISequence:
            number = int(item.ROINumber)
            name = str(item.get("ROIName", "") or f"ROI {number}")
            contours, warnings = _closed_contours(number, name, contours_by_roi.get(number, []))
            rois.append(
                ROI(
                    number=number,
                    name=name,
                    interpreted_type=types.get(number, ""),
                    frame_of_reference_uid=str(item.get("ReferencedFrameOfReferenceUID", "")),
                    contours=tuple(contours),
                    warnings=tuple(warnings),
                )
            )
        return cls(
            frame_of_reference_uid=frame_uids[0] if frame_uids else "",
            rois=tuple(rois),
            sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
        )

    def roi(self, key: int | str) -> ROI:
        """The ROI with this number, or else this name (case-sensitive, then not).

        A string of digits is tried as a number first. InvalidInput names the known ROIs
        when none matches.
        """
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            number = int(key)
            for roi in self.rois:
                if roi.number == number:
                    return roi
        text = str(key).strip()
        for roi in self.rois:
            if roi.name == text:
                return roi
        for roi in self.rois:
            if roi.name.casefold() == text.casefold():
                return roi
        known = ", ".join(roi.label for roi in self.rois) or "none"
        raise InvalidInput(f"no ROI {key!r} in the RTSTRUCT; it has: {known}")

    def rois_with_contours(self) -> tuple[ROI, ...]:
        """The ROIs that enclose a volume, in sequence order."""
        return tuple(roi for roi in self.rois if roi.has_contours)


def _closed_contours(
    number: int, name: str, items: Sequence[pydicom.Dataset]
) -> tuple[list[FloatArray], list[str]]:
    """CLOSED_PLANAR contours as (n, 3) arrays; a warning for each one skipped."""
    contours: list[FloatArray] = []
    skipped: dict[str, int] = {}
    for item in items:
        kind = str(item.get("ContourGeometricType", "CLOSED_PLANAR"))
        if kind != "CLOSED_PLANAR":
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        data = _contour_data(item, number)
        if data is None or len(data) < 9 or len(data) % 3:
            skipped["CLOSED_PLANAR with fewer than 3 points"] = (
                skipped.get("CLOSED_PLANAR with fewer than 3 points", 0) + 1
            )
            continue
        contours.append(data.reshape(-1, 3))
    warnings = [
        f"ROI {number} '{name}': skipped {count} {kind} contour{'s' if count > 1 else ''}"
        for kind, count in skipped.items()
    ]
    for warning in warnings:
        _log.warning(warning)
    return contours, warnings


_CONTOUR_DATA = 0x30060050
_NUMBER_BYTES = b"0123456789+-.eE \\"


def _contour_data(item: pydicom.Dataset, number: int) -> FloatArray | None:
    """Contour Data (3006,0050) as floats.

    Parsing the raw DS text ourselves is far faster than letting pydicom build one
    DSfloat per coordinate, which dominates reading a large structure set. Plain numbers
    go through orjson's JSON parser (about 3x faster than numpy's); anything else
    (``+1``, ``.5``, padding quirks) falls back to numpy.
    """
    if _CONTOUR_DATA not in item:
        return None
    element = item.get_item(_CONTOUR_DATA)
    value = element.value if element is not None else None
    try:
        if isinstance(value, bytes):
            if not value.translate(None, _NUMBER_BYTES):
                try:
                    numbers = orjson.loads(b"[" + value.replace(b"\\", b",") + b"]")
                    return np.array(numbers, dtype=np.float64)
                except ValueError:
                    pass  # valid DS need not be valid JSON: 1., .5, +1, 007
            text = value.decode("ascii")
            try:
                parsed = np.fromstring(text, sep="\\")
                if parsed.size == text.count("\\") + 1:
                    return parsed
            except (ValueError, DeprecationWarning):
                pass  # malformed: numpy warns (an error under -W error); parse strictly
            return np.array(text.replace("\\", " ").split(), dtype=np.float64)
        if value is None:
            return None
        return np.asarray(value, dtype=np.float64).ravel()
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"ROI {number}: Contour Data is not a list of numbers") from exc
