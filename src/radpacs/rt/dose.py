"""The dose grid of an RTDOSE: geometry, scaling and trilinear sampling (PS3.3 C.8.8.3).

Dose in Gy (or relative, when DoseUnits is RELATIVE) is the stored pixel value times
Dose Grid Scaling (3004,000E). Frames are planes along the normal of the Image Orientation
(Patient) (0020,0037); Grid Frame Offset Vector (3004,000C) gives each plane's offset from
Image Position (Patient) along that normal, either relative (first value 0, PS3.3
C.8.8.3.2) or, for the orientation 1\\0\\0\\0\\1\\0, as absolute z coordinates.

Everything here works in *grid coordinates*: ``u`` and ``v`` are continuous column and row
indices (0 at the first voxel centre), ``w`` is the distance in mm along the plane normal
from the first plane. A voxel holds its value over its whole extent, so points up to half
a voxel beyond the outer voxel centres are inside the grid and take the edge values.

Example::

    grid = DoseGrid.from_dataset(pydicom.dcmread("rtdose.dcm"))
    u, v, w = grid.to_grid(np.array([[0.0, 0.0, 6.0]]))
    grid.sample(u, v, w)     # array([16.])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pydicom

from radpacs.errors import InvalidInput

__all__ = ["RTDOSE_SOP_CLASS", "DoseGrid"]

RTDOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class DoseGrid:
    """A dose array ``(planes, rows, columns)`` and where it lies in the patient.

    ``plane_offsets`` are strictly increasing positions (mm) of the planes along
    ``normal``, starting at 0; ``column_spacing`` is the distance between columns along
    ``row_direction``, ``row_spacing`` between rows along ``column_direction``.
    """

    dose: FloatArray
    origin: FloatArray
    row_direction: FloatArray
    column_direction: FloatArray
    column_spacing: float
    row_spacing: float
    plane_offsets: FloatArray
    units: str = "GY"
    frame_of_reference_uid: str = ""
    sop_instance_uid: str = ""

    def __post_init__(self) -> None:
        if self.dose.ndim != 3:
            raise ValueError(f"dose must be a 3-D array, not {self.dose.ndim}-D")
        if self.plane_offsets.shape != (self.dose.shape[0],):
            raise ValueError(
                f"{self.dose.shape[0]} dose planes but {self.plane_offsets.size} plane offsets"
            )
        if self.plane_offsets.size > 1 and not np.all(np.diff(self.plane_offsets) > 0):
            raise ValueError("plane offsets must be strictly increasing")
        if self.column_spacing <= 0 or self.row_spacing <= 0:
            raise ValueError(
                f"pixel spacing must be positive, not {self.row_spacing}\\{self.column_spacing}"
            )
        if abs(float(np.dot(self.row_direction, self.column_direction))) > 1e-3:
            raise ValueError("row and column directions are not orthogonal")

    @classmethod
    def from_dataset(cls, dataset: pydicom.Dataset) -> DoseGrid:
        """Read an RTDOSE dataset; InvalidInput names what is missing or malformed."""
        modality = str(dataset.get("Modality", ""))
        sop_class = str(dataset.get("SOPClassUID", ""))
        if modality != "RTDOSE" and sop_class != RTDOSE_SOP_CLASS:
            raise InvalidInput(
                f"the dose file is not an RTDOSE (Modality {modality or 'missing'}, "
                f"SOP Class {sop_class or 'missing'})"
            )
        for keyword in ("PixelData", "ImagePositionPatient", "ImageOrientationPatient"):
            if keyword not in dataset:
                raise InvalidInput(f"the RTDOSE has no {keyword}")
        if "PixelSpacing" not in dataset:
            raise InvalidInput("the RTDOSE has no PixelSpacing")
        scaling = dataset.get("DoseGridScaling")
        if scaling is None or str(scaling).strip() == "":
            raise InvalidInput(
                "the RTDOSE has no DoseGridScaling (3004,000E): stored values cannot be "
                "turned into dose"
            )
        try:
            pixels = np.array(dataset.pixel_array, dtype=np.float64)  # our own copy
        except Exception as exc:  # pydicom raises many types for bad pixel data
            raise InvalidInput(f"the RTDOSE pixel data cannot be decoded: {exc}") from exc
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        if pixels.ndim == 2:
            pixels = pixels[np.newaxis]
        if pixels.shape[0] != frames:
            raise InvalidInput(f"the RTDOSE has {pixels.shape[0]} frames, expected {frames}")
        pixels *= float(scaling)
        dose = pixels
        orientation = np.asarray(dataset.ImageOrientationPatient, dtype=np.float64)
        if orientation.size != 6:
            raise InvalidInput("ImageOrientationPatient must have 6 values")
        row_dir = orientation[:3] / np.linalg.norm(orientation[:3])
        col_dir = orientation[3:] / np.linalg.norm(orientation[3:])
        normal = np.cross(row_dir, col_dir)
        origin = np.asarray(dataset.ImagePositionPatient, dtype=np.float64)
        offsets = _plane_offsets(dataset, frames, origin, normal)
        order = np.argsort(offsets)
        if not np.array_equal(order, np.arange(frames)):
            dose = dose[order]
            offsets = offsets[order]
        if frames > 1 and np.any(np.diff(offsets) <= 0):
            raise InvalidInput("GridFrameOffsetVector repeats a plane position")
        # Move the origin to the first plane so that offsets start at 0.
        origin = origin + offsets[0] * normal
        offsets = offsets - offsets[0]
        spacing = [float(value) for value in dataset.PixelSpacing]
        try:
            return cls(
                dose=dose,
                origin=origin,
                row_direction=row_dir,
                column_direction=col_dir,
                column_spacing=spacing[1],
                row_spacing=spacing[0],
                plane_offsets=offsets,
                units=str(dataset.get("DoseUnits", "GY")).upper(),
                frame_of_reference_uid=str(dataset.get("FrameOfReferenceUID", "")),
                sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
            )
        except ValueError as exc:
            raise InvalidInput(f"the RTDOSE geometry is invalid: {exc}") from exc

    @cached_property
    def normal(self) -> FloatArray:
        """The unit normal of the dose planes: row direction x column direction."""
        return np.cross(self.row_direction, self.column_direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(planes, rows, columns)``."""
        planes, rows, columns = self.dose.shape
        return planes, rows, columns

    @property
    def dose_units(self) -> str:
        """``'Gy'`` for DoseUnits GY, ``'relative'`` for RELATIVE."""
        return "Gy" if self.units == "GY" else "relative"

    def plane_extent(self) -> tuple[float, float]:
        """The covered range of ``w``: half a plane spacing beyond the outer planes."""
        offsets = self.plane_offsets
        if offsets.size == 1:
            half = 0.5 * min(self.row_spacing, self.column_spacing)
            return -half, half
        return (
            float(offsets[0] - 0.5 * (offsets[1] - offsets[0])),
            float(offsets[-1] + 0.5 * (offsets[-1] - offsets[-2])),
        )

    def to_grid(self, points: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Patient coordinates ``(n, 3)`` in mm to grid coordinates ``(u, v, w)``."""
        relative = np.asarray(points, dtype=np.float64) - self.origin
        u = relative @ self.row_direction / self.column_spacing
        v = relative @ self.column_direction / self.row_spacing
        w = relative @ self.normal
        return u, v, w

    def plane_coordinate(self, w: FloatArray) -> FloatArray:
        """Continuous plane index of each ``w``, clamped to the outer planes."""
        offsets = self.plane_offsets
        if offsets.size == 1:
            return np.zeros_like(np.asarray(w, dtype=np.float64))
        index = np.interp(w, offsets, np.arange(offsets.size, dtype=np.float64))
        return np.asarray(index, dtype=np.float64)

    def inside(self, u: FloatArray, v: FloatArray, w: FloatArray) -> npt.NDArray[np.bool_]:
        """Which points lie within the grid's voxel extent."""
        _, rows, columns = self.shape
        w_low, w_high = self.plane_extent()
        return (
            (u >= -0.5)
            & (u <= columns - 0.5)
            & (v >= -0.5)
            & (v <= rows - 0.5)
            & (w >= w_low)
            & (w <= w_high)
        )

    def sample(self, u: FloatArray, v: FloatArray, w: FloatArray) -> FloatArray:
        """Trilinear dose at grid coordinates; points beyond the outer voxel centres take
        the edge values (callers check :meth:`inside` first)."""
        planes, rows, columns = self.shape
        k = self.plane_coordinate(w)
        result = np.zeros(np.shape(u), dtype=np.float64)
        uc = np.clip(u, 0.0, columns - 1.0)
        vc = np.clip(v, 0.0, rows - 1.0)
        kc = np.clip(k, 0.0, planes - 1.0)
        i0 = np.minimum(np.floor(uc).astype(np.intp), max(columns - 2, 0))
        j0 = np.minimum(np.floor(vc).astype(np.intp), max(rows - 2, 0))
        k0 = np.minimum(np.floor(kc).astype(np.intp), max(planes - 2, 0))
        tu, tv, tk = uc - i0, vc - j0, kc - k0
        i1 = np.minimum(i0 + 1, columns - 1)
        j1 = np.minimum(j0 + 1, rows - 1)
        k1 = np.minimum(k0 + 1, planes - 1)
        flat = self.dose.ravel()
        for kk, wk in ((k0, 1.0 - tk), (k1, tk)):
            for jj, wj in ((j0, 1.0 - tv), (j1, tv)):
                row = (kk * rows + jj) * columns
                weight = wk * wj
                result += np.take(flat, row + i0) * (weight * (1.0 - tu))
                result += np.take(flat, row + i1) * (weight * tu)
        return result

    def interpolation_matrix(self, axis: str, coordinates: FloatArray) -> FloatArray:
        """A dense ``(len(coordinates), n)`` matrix of linear-interpolation weights along
        ``axis`` (``'u'`` columns or ``'v'`` rows), clamped at the outer voxel centres."""
        count = self.shape[2] if axis == "u" else self.shape[1]
        matrix = np.zeros((coordinates.size, count), dtype=np.float64)
        if count == 1:
            matrix[:, 0] = 1.0
            return matrix
        clamped = np.clip(coordinates, 0.0, count - 1.0)
        low = np.minimum(np.floor(clamped).astype(np.intp), count - 2)
        frac = clamped - low
        rows = np.arange(coordinates.size)
        matrix[rows, low] = 1.0 - frac
        matrix[rows, low + 1] += frac
        return matrix


def _plane_offsets(
    dataset: pydicom.Dataset, frames: int, origin: FloatArray, normal: FloatArray
) -> FloatArray:
    """Plane positions along the normal, relative to Image Position (Patient)."""
    vector = dataset.get("GridFrameOffsetVector")
    if vector is None or len(vector) == 0:
        if frames == 1:
            return np.zeros(1)
        raise InvalidInput(f"the RTDOSE has {frames} frames but no GridFrameOffsetVector")
    offsets = np.asarray([float(value) for value in vector], dtype=np.float64)
    if offsets.size != frames:
        raise InvalidInput(f"GridFrameOffsetVector has {offsets.size} values for {frames} frames")
    if offsets[0] == 0.0:
        return offsets
    # Absolute form: z coordinates, defined only for planes normal to the z axis.
    if abs(abs(normal[2]) - 1.0) > 1e-3:
        raise InvalidInput(
            "GridFrameOffsetVector does not start at 0 (absolute z form) but the dose "
            "planes are not axial"
        )
    return np.asarray((offsets - origin[2]) * np.sign(normal[2]), dtype=np.float64)
