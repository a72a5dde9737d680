"""Findings from stored objects: SEG segments, RTSTRUCT ROIs, TID 1500 measurement groups.

Each function takes a pydicom dataset and returns ``(findings, notes)``; ``notes`` say in
words what was skipped and why. An object that yields nothing usable raises
:class:`~radpacs.errors.InvalidInput` naming the reason, so that nothing is half-written.

Which items are lesions:

- SEG (PS3.3 C.8.20): segments whose category is "Morphologically Altered Structure"
  (SCT 49755003) or whose label or property type names a lesion (lesion, metastasis,
  tumour, nodule, mass, node, GTV); anatomy (a brain mask) is skipped. Geometry comes from
  the SEG itself (Plane Position/Orientation and Pixel Measures functional groups), so the
  source images are not read.
- RTSTRUCT (PS3.3 C.8.8.5-8): ROIs of RTROIInterpretedType GTV or none, or whose name names
  a lesion; contours are rasterised on a 0.5 mm grid in their own plane, and the slice
  thickness is the spacing between the structure set's contour planes.
- Measurement SR (TID 1500, PS3.16 A): each Measurement Group (DCM 125007) with a length,
  long/short axis, diameter, area or volume; spatial coordinates (SCOORD on an image, or
  SCOORD3D) give the centroid. Groups that reference a SEG segment are skipped: the SEG
  itself feeds the follow-up (radpacs writes both for one segmentation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom import Dataset

from radpacs.errors import InvalidInput
from radpacs.followup.geometry import measure_points
from radpacs.followup.model import Finding, SourceKind

__all__ = [
    "ImageGeometry",
    "findings_from_dataset",
    "findings_from_rtstruct",
    "findings_from_seg",
    "findings_from_sr",
    "source_kind",
]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D
    "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible
}
_LESION_WORDS = re.compile(
    r"lesion|metasta|tumou?r|nodul|mass|node|gtv|neoplas|carcinom|cancer|target|finding",
    re.IGNORECASE,
)
_NODE_WORDS = re.compile(r"lymph|node|\bln\b", re.IGNORECASE)
_MORPHOLOGICALLY_ALTERED = "49755003"
_LYMPH_NODE = "59441001"
_RT_LESION_TYPES = {"", "GTV"}
RASTER_STEP_MM = 0.5

FloatArray = npt.NDArray[np.float64]
Result = tuple[list[Finding], list[str]]


@dataclass(frozen=True)
class ImageGeometry:
    """What is needed to put an image's pixel coordinates into patient space."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    spacing: tuple[float, float]  # (row spacing, column spacing), PixelSpacing order
    frame_of_reference: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> ImageGeometry:
        try:
            return cls(
                tuple(float(v) for v in ds.ImagePositionPatient),  # type: ignore[arg-type]
                tuple(float(v) for v in ds.ImageOrientationPatient),  # type: ignore[arg-type]
                tuple(float(v) for v in ds.PixelSpacing),  # type: ignore[arg-type]
                str(ds.get("FrameOfReferenceUID", "")),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"image {ds.get('SOPInstanceUID', '?')} has no usable plane geometry"
            ) from exc

    def to_patient(self, columns_rows: FloatArray) -> FloatArray:
        """Patient points of image coordinates (column, row) as SCOORD gives them: (0, 0) is
        the top left corner of the top left pixel (PS3.3 C.18.6.1.1)."""
        row_dir = np.asarray(self.orientation[:3])
        col_dir = np.asarray(self.orientation[3:])
        xy = np.asarray(columns_rows, dtype=np.float64).reshape(-1, 2) - 0.5
        return np.asarray(
            np.asarray(self.position)
            + xy[:, :1] * row_dir * self.spacing[1]
            + xy[:, 1:] * col_dir * self.spacing[0],
            dtype=np.float64,
        )


def source_kind(sop_class_uid: str) -> SourceKind | None:
    """The kind of follow-up source a SOP Class is, or None if it does not feed follow-up."""
    if sop_class_uid == SEG_SOP_CLASS:
        return SourceKind.SEG
    if sop_class_uid == RTSTRUCT_SOP_CLASS:
        return SourceKind.RTSTRUCT
    if sop_class_uid in SR_SOP_CLASSES:
        return SourceKind.SR
    return None


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "")


def _code(item: Dataset | None) -> tuple[str, str, str]:
    if item is None:
        return ("", "", "")
    return (
        _text(item, "CodeValue") or _text(item, "LongCodeValue"),
        _text(item, "CodingSchemeDesignator"),
        _text(item, "CodeMeaning"),
    )


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _base(ds: Dataset, kind: SourceKind, key: str, label: str) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "sop_uid": _text(ds, "SOPInstanceUID"),
        "label": label[:64],
        "study_date": _text(ds, "StudyDate"),
        "created": (_text(ds, "ContentDate") + _text(ds, "ContentTime"))[:21],
    }


def _device(ds: Dataset) -> str:
    parts = [_text(ds, "ManufacturerModelName"), _text(ds, "SoftwareVersions")]
    return " ".join(p for p in parts if p) or _text(ds, "Manufacturer")


# ------------------------------------------------------------------------------ SEG


def _seg_geometry(ds: Dataset) -> tuple[FloatArray, FloatArray, list[FloatArray]]:
    """(orientation 6, spacing (row, col, slice), per-frame positions) of a SEG."""
    shared = _first(ds, "SharedFunctionalGroupsSequence") or Dataset()
    frames = list(ds.get("PerFrameFunctionalGroupsSequence", []))

    def group(frame: Dataset, name: str) -> Dataset | None:
        return _first(frame, name) or _first(shared, name)

    first = frames[0] if frames else Dataset()
    orientation_item = group(first, "PlaneOrientationSequence")
    measures = group(first, "PixelMeasuresSequence")
    if orientation_item is None or measures is None:
        raise InvalidInput(
            "the SEG has no plane orientation or pixel measures; its segments cannot be placed "
            "in patient coordinates"
        )
    orientation = np.asarray([float(v) for v in orientation_item.ImageOrientationPatient])
    pixel_spacing = [float(v) for v in measures.PixelSpacing]
    positions = []
    for index, frame in enumerate(frames):
        item = group(frame, "PlanePositionSequence")
        if item is None or "ImagePositionPatient" not in item:
            raise InvalidInput(f"frame {index + 1} of the SEG has no ImagePositionPatient")
        positions.append(np.asarray([float(v) for v in item.ImagePositionPatient]))
    normal = np.cross(orientation[:3], orientation[3:])
    stated = float(measures.get("SpacingBetweenSlices", 0) or 0)
    heights = np.unique(np.round([p @ normal for p in positions], 3))
    gaps = np.diff(heights)
    gaps = gaps[gaps > 1e-3]
    # The frame positions are the truth; a stated spacing wins only where it divides the
    # smallest gap (frames left out because they were empty).
    spacing = float(gaps.min()) if len(gaps) else stated
    if len(gaps) and stated and stated < spacing:
        ratio = spacing / stated
        if abs(ratio - round(ratio)) < 0.01:
            spacing = stated
    if not spacing:
        spacing = float(measures.get("SliceThickness", 0) or 0)
    if not spacing:
        raise InvalidInput("the SEG states no slice spacing or thickness; volumes are unknown")
    return orientation, np.array([pixel_spacing[0], pixel_spacing[1], spacing]), positions


def _is_lesion(label: str, codes: Iterable[tuple[str, str, str]], category: str) -> bool:
    if category == _MORPHOLOGICALLY_ALTERED:
        return True
    return bool(_LESION_WORDS.search(label)) or any(_LESION_WORDS.search(code[2]) for code in codes)


def findings_from_seg(ds: Dataset, anchor: tuple[float, float, float] | None = None) -> Result:
    """One finding per lesion segment of a SEG (PS3.3 A.51), measured in patient space."""
    frame_of_reference = _text(ds, "FrameOfReferenceUID")
    if not frame_of_reference:
        raise InvalidInput(
            "the SEG has no FrameOfReferenceUID: its segments cannot be placed in patient "
            "coordinates, so it does not feed the follow-up"
        )
    orientation, spacing, positions = _seg_geometry(ds)
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises many kinds for undecodable pixel data
        raise InvalidInput(f"cannot decode the SEG's frames: {exc}") from exc
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    if _text(ds, "SegmentationType") == "FRACTIONAL":
        pixels = pixels >= float(ds.get("MaximumFractionalValue", 255)) / 2
    else:
        pixels = pixels > 0
    shared = _first(ds, "SharedFunctionalGroupsSequence") or Dataset()
    frame_segment = []
    for frame in ds.get("PerFrameFunctionalGroupsSequence", []):
        ident = _first(frame, "SegmentIdentificationSequence") or _first(
            shared, "SegmentIdentificationSequence"
        )
        frame_segment.append(int(ident.ReferencedSegmentNumber) if ident else 0)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    edges = np.stack([row_dir * spacing[1], col_dir * spacing[0], normal * spacing[2]])
    findings: list[Finding] = []
    notes: list[str] = []
    device = _device(ds)
    for segment in ds.get("SegmentSequence", []):
        number = int(segment.SegmentNumber)
        label = _text(segment, "SegmentLabel") or f"Segment {number}"
        category = _code(_first(segment, "SegmentedPropertyCategoryCodeSequence"))
        prop = _code(_first(segment, "SegmentedPropertyTypeCodeSequence"))
        if not _is_lesion(label, [prop], category[0]):
            notes.append(f"segment {number} '{label}' ({prop[2] or category[2]}) is not a lesion")
            continue
        chunks = []
        for index, owner in enumerate(frame_segment):
            if owner != number or index >= len(pixels):
                continue
            rows, cols = np.nonzero(pixels[index])
            if len(rows):
                chunks.append(
                    positions[index]
                    + np.outer(cols * spacing[1], row_dir)
                    + np.outer(rows * spacing[0], col_dir)
                )
        if not chunks:
            notes.append(f"segment {number} '{label}' is empty")
            continue
        measured = measure_points(np.concatenate(chunks), edges)
        source = (
            " ".join(v for v in (_text(segment, "SegmentAlgorithmName"), device) if v) or device
        )
        region = _code(_first(segment, "AnatomicRegionSequence"))
        findings.append(
            Finding(
                **_base(ds, SourceKind.SEG, f"{ds.SOPInstanceUID}/{number}", label),
                frame_of_reference=frame_of_reference,
                centroid=measured.centroid,
                anchor=anchor,
                volume_mm3=measured.volume_mm3,
                long_axis_mm=measured.long_axis_mm,
                short_axis_mm=measured.short_axis_mm,
                first_slice_mm=measured.first_slice_mm,
                last_slice_mm=measured.last_slice_mm,
                lymph_node=prop[0] == _LYMPH_NODE or bool(_NODE_WORDS.search(label)),
                organ=region[2],
                source=source[:128],
            )
        )
    if not findings:
        raise InvalidInput(
            "the SEG holds no lesion segment with pixels"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    return findings, notes


# ------------------------------------------------------------------------------ RTSTRUCT


def referenced_series(ds: Dataset) -> list[str]:
    """Series Instance UIDs an RTSTRUCT's frames of reference name (PS3.3 C.8.8.5)."""
    series = []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for item in study.get("RTReferencedSeriesSequence", []):
                series.append(_text(item, "SeriesInstanceUID"))
    return [uid for uid in series if uid]


def _plane_basis(points: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=True)
    u, v, n = vt[0], vt[1], vt[2]
    return u, v, n


def _rasterise(contour: FloatArray, u: FloatArray, v: FloatArray) -> FloatArray:
    """Grid points (RASTER_STEP_MM apart) inside a planar polygon, in patient space."""
    from skimage.draw import polygon

    origin = contour.mean(axis=0)
    a = (contour - origin) @ u
    b = (contour - origin) @ v
    a0, b0 = float(a.min()), float(b.min())
    ia = (a - a0) / RASTER_STEP_MM
    ib = (b - b0) / RASTER_STEP_MM
    rr, cc = polygon(ib, ia, shape=(int(ib.max()) + 2, int(ia.max()) + 2))  # type: ignore[no-untyped-call]
    return np.asarray(
        origin + np.outer(a0 + cc * RASTER_STEP_MM, u) + np.outer(b0 + rr * RASTER_STEP_MM, v),
        dtype=np.float64,
    ).reshape(-1, 3)


def findings_from_rtstruct(ds: Dataset, anchor: tuple[float, float, float] | None = None) -> Result:
    """One finding per lesion ROI of an RT Structure Set, from its closed planar contours."""
    names: dict[int, tuple[str, str]] = {}
    for item in ds.get("StructureSetROISequence", []):
        names[int(item.ROINumber)] = (
            _text(item, "ROIName"),
            _text(item, "ReferencedFrameOfReferenceUID"),
        )
    types = {
        int(item.ReferencedROINumber): _text(item, "RTROIInterpretedType").upper()
        for item in ds.get("RTROIObservationsSequence", [])
    }
    contours: dict[int, list[FloatArray]] = {}
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        for contour in roi.get("ContourSequence", []):
            if _text(contour, "ContourGeometricType") not in ("CLOSED_PLANAR", ""):
                continue
            data = np.asarray([float(v) for v in contour.get("ContourData", [])])
            if len(data) >= 9 and len(data) % 3 == 0:
                contours.setdefault(number, []).append(data.reshape(-1, 3))
    all_contours = [c for cs in contours.values() for c in cs]
    if not all_contours:
        raise InvalidInput("the RTSTRUCT holds no closed planar contour")
    u, v, normal = _plane_basis(all_contours[0])
    if abs(normal[2]) > 0.99:  # axial contours: grid along x and y
        u, v, normal = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
    heights = np.unique(np.round([float(c.mean(axis=0) @ normal) for c in all_contours], 2))
    gaps = np.diff(heights)
    gaps = gaps[gaps > 1e-2]
    thickness = float(gaps.min()) if len(gaps) else 0.0
    if not thickness:
        raise InvalidInput(
            "the RTSTRUCT's contours lie in one plane: its slice spacing, and so volumes, "
            "are unknown"
        )
    edges = np.stack([u * RASTER_STEP_MM, v * RASTER_STEP_MM, normal * thickness])
    findings: list[Finding] = []
    notes: list[str] = []
    device = _device(ds)
    for number, roi_contours in sorted(contours.items()):
        name, frame = names.get(number, (f"ROI {number}", ""))
        kind = types.get(number, "")
        if kind not in _RT_LESION_TYPES and not _LESION_WORDS.search(name):
            notes.append(f"ROI {number} '{name}' ({kind}) is not a lesion")
            continue
        if not (frame or _text(ds, "FrameOfReferenceUID")):
            notes.append(f"ROI {number} '{name}' has no frame of reference")
            continue
        points = [_rasterise(contour, u, v) for contour in roi_contours]
        cloud = np.concatenate(points)
        if not len(cloud):
            notes.append(f"ROI {number} '{name}' encloses no area")
            continue
        # Even-odd fill of nested contours is ignored: rings (holes) are rare in lesions.
        measured = measure_points(cloud, edges)
        findings.append(
            Finding(
                **_base(ds, SourceKind.RTSTRUCT, f"{ds.SOPInstanceUID}/{number}", name),
                frame_of_reference=frame or _text(ds, "FrameOfReferenceUID"),
                centroid=measured.centroid,
                anchor=anchor,
                volume_mm3=measured.volume_mm3,
                long_axis_mm=measured.long_axis_mm,
                short_axis_mm=measured.short_axis_mm,
                first_slice_mm=measured.first_slice_mm,
                last_slice_mm=measured.last_slice_mm,
                lymph_node=bool(_NODE_WORDS.search(name)),
                source=device[:128],
            )
        )
    if not findings:
        raise InvalidInput(
            "the RTSTRUCT holds no lesion ROI" + (f" ({'; '.join(notes)})" if notes else "")
        )
    return findings, notes


# ------------------------------------------------------------------------------ SR

#: Concept names (code value, either scheme) -> what they measure.
_LENGTH_CODES = {
    "G-D7FE": "length",
    "410668003": "length",
    "G-D785": "diameter",
    "81827009": "diameter",
    "G-A185": "long",
    "103339001": "long",
    "G-A186": "short",
    "103340004": "short",
    "G-A166": "area",
    "42798000": "area",
    "G-D705": "volume",
    "118565006": "volume",
}
_UNIT_SCALE = {
    "mm": 1.0,
    "cm": 10.0,
    "m": 1000.0,
    "mm2": 1.0,
    "cm2": 100.0,
    "mm3": 1.0,
    "cm3": 1000.0,
    "ml": 1000.0,
    "mL": 1000.0,
    "ul": 1.0,
}
_MEASUREMENT_GROUP = "125007"
_TRACKING_ID = "112039"
_TRACKING_UID = "112040"
_FINDING = "121071"
_FINDING_SITE = "363698007"
_REFERENCED_SEGMENT = {"121191", "121214"}


def _concept(item: Dataset) -> tuple[str, str, str]:
    return _code(_first(item, "ConceptNameCodeSequence"))


def _walk(items: Iterable[Dataset]) -> Iterable[Dataset]:
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _groups(ds: Dataset) -> list[Dataset]:
    return [
        item
        for item in _walk(ds.get("ContentSequence", []))
        if _text(item, "ValueType") == "CONTAINER" and _concept(item)[0] == _MEASUREMENT_GROUP
    ]


def _graphic_points(
    item: Dataset, image_geometry: Callable[[str], ImageGeometry | None]
) -> tuple[FloatArray | None, str, str]:
    """(patient points, graphic type, frame of reference) of a SCOORD or SCOORD3D item."""
    data = np.asarray([float(v) for v in item.get("GraphicData", [])])
    graphic = _text(item, "GraphicType")
    if _text(item, "ValueType") == "SCOORD3D":
        frame = _text(item, "ReferencedFrameOfReferenceUID")
        return (data.reshape(-1, 3) if len(data) % 3 == 0 and len(data) else None), graphic, frame
    for child in item.get("ContentSequence", []):
        ref = _first(child, "ReferencedSOPSequence")
        if ref is None:
            continue
        geometry = image_geometry(_text(ref, "ReferencedSOPInstanceUID"))
        if geometry is None or len(data) % 2 or not len(data):
            return None, graphic, ""
        return geometry.to_patient(data.reshape(-1, 2)), graphic, geometry.frame_of_reference
    return None, graphic, ""


def _axes_from_graphic(points: FloatArray, graphic: str) -> tuple[float, float]:
    if graphic == "CIRCLE" and len(points) >= 2:
        d = 2 * float(np.linalg.norm(points[1] - points[0]))
        return d, d
    if graphic == "ELLIPSE" and len(points) >= 4:
        a = float(np.linalg.norm(points[1] - points[0]))
        b = float(np.linalg.norm(points[3] - points[2]))
        return max(a, b), min(a, b)
    if len(points) >= 2:
        d = float(np.linalg.norm(points[:, None] - points[None, :], axis=-1).max())
        return d, 0.0
    return 0.0, 0.0


def findings_from_sr(
    ds: Dataset,
    image_geometry: Callable[[str], ImageGeometry | None] = lambda uid: None,
    anchor: tuple[float, float, float] | None = None,
) -> Result:
    """One finding per TID 1500 Measurement Group with a length, axis, diameter, area or
    volume (radpacs's reports, OHIF measurement tracking: Length, Bidirectional, ellipse and
    circle ROIs). ``image_geometry`` resolves an image referenced by a SCOORD."""
    groups = _groups(ds)
    if not groups:
        raise InvalidInput(
            "the SR holds no TID 1500 Measurement Group (DCM 125007); it does not feed the "
            "follow-up"
        )
    observer = _text(ds, "ContentCreatorName") or _device(ds) or "reader"
    findings: list[Finding] = []
    notes: list[str] = []
    for index, group in enumerate(groups, start=1):
        tracking_id, tracking_uid, finding, site = "", "", ("", "", ""), ("", "", "")
        values: dict[str, float] = {}
        points: list[FloatArray] = []
        frames: set[str] = set()
        unknown: list[str] = []
        segment_reference = False
        axes = (0.0, 0.0)
        for item in group.get("ContentSequence", []):
            concept = _concept(item)
            value_type = _text(item, "ValueType")
            if concept[0] in _REFERENCED_SEGMENT or "ReferencedSegmentNumber" in (
                _first(item, "ReferencedSOPSequence") or Dataset()
            ):
                segment_reference = True
            if concept[0] == _TRACKING_ID:
                tracking_id = _text(item, "TextValue")
            elif concept[0] == _TRACKING_UID:
                tracking_uid = _text(item, "UID")
            elif concept[0] == _FINDING:
                finding = _code(_first(item, "ConceptCodeSequence"))
            elif concept[0] == _FINDING_SITE:
                site = _code(_first(item, "ConceptCodeSequence"))
            elif value_type == "NUM":
                what = _LENGTH_CODES.get(concept[0])
                measured = _first(item, "MeasuredValueSequence")
                if what is None or measured is None:
                    unknown.append(f"{concept[1]} {concept[0]} '{concept[2]}'")
                    continue
                unit = _code(_first(measured, "MeasurementUnitsCodeSequence"))[0]
                values[what] = float(measured.NumericValue) * _UNIT_SCALE.get(unit, 1.0)
                for child in item.get("ContentSequence", []):
                    if _text(child, "ValueType") in ("SCOORD", "SCOORD3D"):
                        found, graphic, frame = _graphic_points(child, image_geometry)
                        if found is not None:
                            points.append(found)
                            frames.add(frame)
                            if what == "area":
                                axes = _axes_from_graphic(found, graphic)
            elif value_type in ("SCOORD", "SCOORD3D"):
                found, graphic, frame = _graphic_points(item, image_geometry)
                if found is not None:
                    points.append(found)
                    frames.add(frame)
                    axes = _axes_from_graphic(found, graphic)
        label = tracking_id or finding[2] or f"Measurement {index}"
        if segment_reference:
            notes.append(f"group '{label}' measures a SEG segment; the SEG feeds the follow-up")
            continue
        if not values:
            notes.append(
                f"group '{label}' has no length, axis, diameter, area or volume this follow-up "
                "knows" + (f" (codes: {', '.join(unknown)})" if unknown else "")
            )
            continue
        long_axis = values.get("long") or values.get("length") or values.get("diameter")
        short_axis = values.get("short")
        if long_axis is None and "area" in values and axes[0]:
            long_axis, short_axis = axes
        cloud = np.concatenate(points) if points else None
        words = " ".join((label, finding[2], site[2]))
        findings.append(
            Finding(
                **_base(ds, SourceKind.SR, f"{ds.SOPInstanceUID}/{index}", label),
                frame_of_reference=next(iter(frames - {""}), "")
                or _text(ds, "FrameOfReferenceUID"),
                centroid=tuple(cloud.mean(axis=0)) if cloud is not None else None,
                anchor=anchor,
                volume_mm3=values.get("volume"),
                long_axis_mm=long_axis,
                short_axis_mm=short_axis,
                first_slice_mm=float(cloud[:, 2].min()) if cloud is not None else None,
                last_slice_mm=float(cloud[:, 2].max()) if cloud is not None else None,
                lymph_node=bool(_NODE_WORDS.search(words)),
                organ=site[2],
                source=observer[:128],
                tracking_uid=tracking_uid,
                extra={"area_mm2": values["area"]} if "area" in values else {},
            )
        )
    if not findings:
        raise InvalidInput("the SR has no measurement this follow-up can use: " + "; ".join(notes))
    return findings, notes


def findings_from_dataset(
    ds: Dataset,
    image_geometry: Callable[[str], ImageGeometry | None] = lambda uid: None,
    anchor: tuple[float, float, float] | None = None,
) -> Result:
    """Dispatch on the SOP Class: SEG, RTSTRUCT or SR."""
    kind = source_kind(_text(ds, "SOPClassUID"))
    if kind is SourceKind.SEG:
        return findings_from_seg(ds, anchor)
    if kind is SourceKind.RTSTRUCT:
        return findings_from_rtstruct(ds, anchor)
    if kind is SourceKind.SR:
        return findings_from_sr(ds, image_geometry, anchor)
    raise InvalidInput(f"SOP Class {_text(ds, 'SOPClassUID')} does not feed the follow-up")
