"""Analytical DVH phantoms written as real DICOM: an RTSTRUCT and an RTDOSE built with pydicom.

Shapes are contoured on axial planes every ``slice_mm``; the dose is linear along one
patient axis. Flat-ended shapes (z-axis cylinders, boxes) have their end planes half a
slice inside their ends, and their reference DVH is the closed form for the contours
extruded over their slabs with half-slice end caps: the volume above a dose in each slab
is a circular segment or a rectangle slice times the slab thickness, or the cross-section
times the overlap of the slab with the dose range. Round shapes (spheres, and cylinders
lying across the planes, as in the benchmark of Nelms et al. 2015) are contoured on the
planes through their centre every ``slice_mm`` that cut them, so their ends lie up to one
slice beyond the end contours, and their reference is the solid itself: a spherical cap,
a circular segment times the length, or a disc times an overlap.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

FloatArray = npt.NDArray[np.float64]
AXES = {"x": 0, "y": 1, "z": 2}
FRAME_OF_REFERENCE = "1.2.826.0.1.3680043.8.498.1"
PLAN_GRID = {"origin": (-24.0, -24.0, -24.0), "spacing": (2.0, 2.0, 2.0), "shape": (25, 25, 25)}
"""A small dose grid (rtdose_dataset keywords) around the origin, for the stored-plan tests."""


@dataclass(frozen=True)
class Slab:
    """One contour plane's cross-section: a disc (radius) or a rectangle (half sizes)."""

    z: float
    low: float
    high: float
    radius: float | None = None
    half_x: float = 0.0
    half_y: float = 0.0


@dataclass(frozen=True)
class Phantom:
    """A shape contoured on axial planes, centred at ``center`` (mm); ``solid`` (radius,
    length) for round shapes whose reference is the solid itself."""

    kind: str
    center: tuple[float, float, float]
    slabs: tuple[Slab, ...]
    solid: tuple[float, float] | None = None

    def polygons(self, points: int = 720) -> list[FloatArray]:
        """Closed planar contours, one per slab, in patient coordinates."""
        cx, cy, _ = self.center
        result = []
        for slab in self.slabs:
            if slab.radius is not None:
                angle = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
                xy = np.column_stack(
                    [cx + slab.radius * np.cos(angle), cy + slab.radius * np.sin(angle)]
                )
            else:
                hx, hy = slab.half_x, slab.half_y
                xy = np.array(
                    [[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy]]
                )
            result.append(np.column_stack([xy, np.full(len(xy), slab.z)]))
        return result


def _slabs(zs: FloatArray, spacing: float) -> list[tuple[float, float, float]]:
    return [(float(z), float(z - spacing / 2), float(z + spacing / 2)) for z in zs]


def sphere(center: tuple[float, float, float], radius: float, slice_mm: float) -> Phantom:
    """Planes every ``slice_mm`` through the centre, as far as they cut the sphere."""
    count = math.floor((radius - 1e-6) / slice_mm)
    zs = center[2] + slice_mm * np.arange(-count, count + 1)
    slabs = tuple(
        Slab(z, low, high, radius=math.sqrt(radius**2 - (z - center[2]) ** 2))
        for z, low, high in _slabs(zs, slice_mm)
    )
    return Phantom("sphere", center, slabs, solid=(radius, 2 * radius))


def lying_cylinder(
    center: tuple[float, float, float], radius: float, length: float, slice_mm: float
) -> Phantom:
    """A cylinder along x (across the planes), planes every ``slice_mm`` through its axis."""
    count = math.floor((radius - 1e-6) / slice_mm)
    zs = center[2] + slice_mm * np.arange(-count, count + 1)
    slabs = tuple(
        Slab(z, low, high, half_x=length / 2, half_y=math.sqrt(radius**2 - (z - center[2]) ** 2))
        for z, low, high in _slabs(zs, slice_mm)
    )
    return Phantom("lying-cylinder", center, slabs, solid=(radius, length))


def cylinder(
    center: tuple[float, float, float], radius: float, height: float, slice_mm: float
) -> Phantom:
    """A z-axis cylinder whose planes (end caps included) span ``height``."""
    count = round(height / slice_mm)
    zs = center[2] - height / 2 + slice_mm * (np.arange(count) + 0.5)
    slabs = tuple(Slab(z, low, high, radius=radius) for z, low, high in _slabs(zs, slice_mm))
    return Phantom("cylinder", center, slabs)


def box(
    center: tuple[float, float, float], size: tuple[float, float, float], slice_mm: float
) -> Phantom:
    """A box whose planes (end caps included) span ``size[2]``."""
    count = round(size[2] / slice_mm)
    zs = center[2] - size[2] / 2 + slice_mm * (np.arange(count) + 0.5)
    slabs = tuple(
        Slab(z, low, high, half_x=size[0] / 2, half_y=size[1] / 2)
        for z, low, high in _slabs(zs, slice_mm)
    )
    return Phantom("box", center, slabs)


@dataclass(frozen=True)
class LinearDose:
    """dose = offset + gradient * (coordinate[axis] - origin), Gy."""

    axis: str
    offset: float
    gradient: float
    origin: float

    def __call__(self, x: FloatArray, y: FloatArray, z: FloatArray) -> FloatArray:
        coordinate = (x, y, z)[AXES[self.axis]]
        return self.offset + self.gradient * (coordinate - self.origin)


def _segment_area(radius: float, distance: float) -> float:
    """Area of the part of a disc beyond a chord ``distance`` from its centre."""
    if distance >= radius:
        return 0.0
    if distance <= -radius:
        return math.pi * radius**2
    return radius**2 * math.acos(distance / radius) - distance * math.sqrt(radius**2 - distance**2)


def reference_volume_above(phantom: Phantom, dose: LinearDose) -> Callable[[float], float]:
    """V(>= d) in mm3 for the contoured phantom in the linear dose (gradient > 0)."""
    cx, cy, _ = phantom.center

    def volume_above(d: float) -> float:
        position = dose.origin + (d - dose.offset) / dose.gradient  # coordinate with dose d
        total = 0.0
        for slab in phantom.slabs:
            thickness = slab.high - slab.low
            area = (
                math.pi * slab.radius**2
                if slab.radius is not None
                else 4 * slab.half_x * slab.half_y
            )
            if dose.axis == "z":
                total += area * min(max(slab.high - max(position, slab.low), 0.0), thickness)
                continue
            centre = cx if dose.axis == "x" else cy
            if slab.radius is not None:
                total += thickness * _segment_area(slab.radius, position - centre)
            else:
                half, other = (
                    (slab.half_x, slab.half_y) if dose.axis == "x" else (slab.half_y, slab.half_x)
                )
                covered = min(max(centre + half - position, 0.0), 2 * half)
                total += thickness * covered * 2 * other
        return total

    return volume_above


@dataclass(frozen=True)
class Reference:
    """Closed-form statistics of a phantom in a linear dose."""

    volume_cc: float
    dose_min: float
    dose_max: float
    dose_mean: float
    volume_above: Callable[[float], float]

    def dose_at(self, fraction: float) -> float:
        """The dose d with V(>= d) = fraction * volume, by bisection."""
        target = fraction * self.volume_cc * 1000.0
        low, high = self.dose_min, self.dose_max
        for _ in range(100):
            middle = 0.5 * (low + high)
            if self.volume_above(middle) > target:
                low = middle
            else:
                high = middle
        return 0.5 * (low + high)

    def dose_at_cc(self, cc: float) -> float:
        """The dose received by the hottest ``cc``."""
        return self.dose_at(cc / self.volume_cc)


def _spherical_cap(radius: float, height: float) -> float:
    height = min(max(height, 0.0), 2 * radius)
    return math.pi * height**2 * (3 * radius - height) / 3


def solid_reference(phantom: Phantom, dose: LinearDose) -> Reference:
    """The closed-form DVH of a round phantom's solid (sphere or cylinder along x)."""
    assert phantom.solid is not None
    radius, length = phantom.solid
    centre = phantom.center[AXES[dose.axis]]
    centre_dose = dose.offset + dose.gradient * (centre - dose.origin)
    sphere_like = phantom.kind == "sphere"
    reach = radius if sphere_like or dose.axis != "x" else length / 2
    volume = 4 / 3 * math.pi * radius**3 if sphere_like else math.pi * radius**2 * length

    def volume_above(d: float) -> float:
        distance = (d - dose.offset) / dose.gradient + dose.origin - centre  # from the centre
        if sphere_like:
            return _spherical_cap(radius, radius - distance)
        if dose.axis == "x":
            return math.pi * radius**2 * min(max(length / 2 - distance, 0.0), length)
        return length * _segment_area(radius, distance)

    return Reference(
        volume / 1000.0,
        centre_dose - dose.gradient * reach,
        centre_dose + dose.gradient * reach,
        centre_dose,
        volume_above,
    )


def reference(phantom: Phantom, dose: LinearDose) -> Reference:
    """The closed-form DVH of ``phantom`` in ``dose``."""
    if phantom.solid is not None:
        return solid_reference(phantom, dose)
    cx, cy, _ = phantom.center
    volume = 0.0
    moment = 0.0
    low = math.inf
    high = -math.inf
    for slab in phantom.slabs:
        area = (
            math.pi * slab.radius**2 if slab.radius is not None else 4 * slab.half_x * slab.half_y
        )
        part = area * (slab.high - slab.low)
        volume += part
        if dose.axis == "z":
            moment += part * float(dose(np.array(cx), np.array(cy), np.array(slab.z)))
            ends = [slab.low, slab.high]
            values = [float(dose(np.array(cx), np.array(cy), np.array(e))) for e in ends]
        else:
            moment += part * float(dose(np.array(cx), np.array(cy), np.array(slab.z)))
            reach = (
                slab.radius
                if slab.radius is not None
                else (slab.half_x if dose.axis == "x" else slab.half_y)
            )
            centre = cx if dose.axis == "x" else cy
            values = [
                dose.offset + dose.gradient * (centre - reach - dose.origin),
                dose.offset + dose.gradient * (centre + reach - dose.origin),
            ]
        low, high = min(low, *values), max(high, *values)
    return Reference(
        volume / 1000.0, low, high, moment / volume, reference_volume_above(phantom, dose)
    )


def rtdose_dataset(
    dose: LinearDose,
    origin: tuple[float, float, float],
    spacing: tuple[float, float, float],
    shape: tuple[int, int, int],
    frame_of_reference: str = FRAME_OF_REFERENCE,
    relative_offsets: bool = True,
    scaling: float | None = 1e-5,
    orientation: tuple[float, float, float, float, float, float] = (1, 0, 0, 0, 1, 0),
) -> FileDataset:
    """An RTDOSE (PS3.3 A.18) with the dose sampled at the voxel centres.

    ``shape`` is (planes, rows, columns), ``spacing`` (column, row, plane) in mm, along the
    row and column directions of ``orientation`` and their cross product.
    """
    planes, rows, columns = shape
    row_dir, col_dir = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    k, j, i = np.meshgrid(np.arange(planes), np.arange(rows), np.arange(columns), indexing="ij")
    position = (
        np.asarray(origin, float)[:, None, None, None]
        + row_dir[:, None, None, None] * (spacing[0] * i)
        + col_dir[:, None, None, None] * (spacing[1] * j)
        + normal[:, None, None, None] * (spacing[2] * k)
    )
    values = np.clip(dose(position[0], position[1], position[2]), 0.0, None)
    ds = _base("RTDOSE", "1.2.840.10008.5.1.4.1.1.481.2", frame_of_reference)
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, planes
    ds.PixelSpacing = [spacing[1], spacing[0]]
    ds.ImagePositionPatient = list(origin)
    ds.ImageOrientationPatient = [f"{value:.9f}" for value in orientation]
    offsets = spacing[2] * np.arange(planes)
    ds.GridFrameOffsetVector = list(offsets if relative_offsets else offsets + origin[2])
    ds.FrameIncrementPointer = 0x3004000C
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    step = scaling if scaling is not None else 1e-5
    if scaling is not None:
        ds.DoseGridScaling = f"{scaling:.6g}"
    ds.PixelData = np.round(values / step).astype("<u4").tobytes()
    return ds


def rtstruct_dataset(
    rois: list[tuple[str, list[FloatArray]]],
    frame_of_reference: str = FRAME_OF_REFERENCE,
    extra: list[tuple[str, str, list[FloatArray]]] | None = None,
) -> FileDataset:
    """An RTSTRUCT (PS3.3 A.19) with one ROI per (name, closed planar contours); ``extra``
    adds ROIs as (name, ContourGeometricType, contours)."""
    ds = _base("RTSTRUCT", "1.2.840.10008.5.1.4.1.1.481.3", frame_of_reference)
    ds.StructureSetLabel = "phantom"
    referenced = pydicom.Dataset()
    referenced.FrameOfReferenceUID = frame_of_reference
    ds.ReferencedFrameOfReferenceSequence = Sequence([referenced])
    entries = [(name, "CLOSED_PLANAR", contours) for name, contours in rois] + (extra or [])
    roi_items, contour_items, observation_items = [], [], []
    for number, (name, kind, contours) in enumerate(entries, start=1):
        roi = pydicom.Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_of_reference
        roi.ROIName = name
        roi_items.append(roi)
        roi_contour = pydicom.Dataset()
        roi_contour.ReferencedROINumber = number
        items = []
        for contour in contours:
            item = pydicom.Dataset()
            item.ContourGeometricType = kind
            item.NumberOfContourPoints = len(contour)
            item.ContourData = [f"{value:.6f}" for value in np.asarray(contour).ravel()]
            items.append(item)
        if items:
            roi_contour.ContourSequence = Sequence(items)
        contour_items.append(roi_contour)
        observation = pydicom.Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN" if kind == "CLOSED_PLANAR" else "MARKER"
        observation.ROIInterpreter = ""
        observation_items.append(observation)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(observation_items)
    return ds


def to_bytes(ds: pydicom.Dataset) -> bytes:
    """The dataset as a DICOM Part 10 file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    """Write and read back, so tests see what a real file gives."""
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


def _base(modality: str, sop_class: str, frame_of_reference: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Phantom^DVH"
    ds.PatientID = "PHANTOM"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference
    return ds


def rtplan_dataset(structure_set: pydicom.Dataset, label: str = "plan") -> FileDataset:
    """An RTPLAN (PS3.3 A.20) naming ``structure_set`` (the parts radpacs reads)."""
    ds = _base("RTPLAN", "1.2.840.10008.5.1.4.1.1.481.5", str(structure_set.FrameOfReferenceUID))
    ds.RTPlanLabel = label
    ds.PlanIntent = "CURATIVE"
    ds.RTPlanGeometry = "PATIENT"
    referenced = pydicom.Dataset()
    referenced.ReferencedSOPClassUID = structure_set.SOPClassUID
    referenced.ReferencedSOPInstanceUID = structure_set.SOPInstanceUID
    ds.ReferencedStructureSetSequence = Sequence([referenced])
    return ds


def refer_to_plan(dose: pydicom.Dataset, plan: pydicom.Dataset, summation: str) -> None:
    """Make an RTDOSE reference ``plan`` with Dose Summation Type ``summation``."""
    referenced = pydicom.Dataset()
    referenced.ReferencedSOPClassUID = plan.SOPClassUID
    referenced.ReferencedSOPInstanceUID = plan.SOPInstanceUID
    dose.ReferencedRTPlanSequence = Sequence([referenced])
    dose.DoseSummationType = summation
