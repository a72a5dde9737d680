"""A series as a volume with its real geometry (PS3.3 C.7.6.2, Image Plane Module).

Slices are ordered by their position along the slice normal (the cross product of the
row and column direction cosines of ImageOrientationPatient), never by InstanceNumber.
The slice spacing is measured from those positions; PixelSpacing gives the in-plane
spacing. :attr:`Volume.affine` maps a voxel index ``(column, row, slice)`` (i, j, k) to
patient coordinates in millimetres (LPS, PS3.3 C.7.6.2.1.1)::

    [x, y, z, 1] = affine @ [i, j, k, 1]

and the pixel array is held as ``array[k, j, i]`` (slice, row, column).

Example::

    volume = load_series(archive, study_uid, series_uid)
    volume.array.shape        # (slices, rows, columns)
    volume.voxel_to_patient([[0, 0, 0]])  # ImagePositionPatient of the first slice
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from pydicom import Dataset

from radpacs.errors import InvalidInput

if TYPE_CHECKING:
    from radpacs.archive import Archive

__all__ = ["Volume", "load_series", "resample_onto", "volume_from_datasets"]

FloatArray = npt.NDArray[np.float64]

#: Slices whose orientation differs by more than this (in direction cosine) are refused.
ORIENTATION_TOLERANCE = 1e-3
#: Relative variation of the slice spacing above which the series is called irregular.
SPACING_TOLERANCE = 0.05


@dataclass
class Volume:
    """Pixels of one series in modality units (rescaled), with voxel-to-patient geometry.

    ``datasets`` are the source instances in volume order (their PixelData is kept), so
    that results can reference them; ``sop_uids[k]`` is the instance of slice ``k``.
    """

    array: npt.NDArray[np.float32]
    affine: FloatArray
    datasets: list[Dataset]
    regular: bool = True
    positions: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def sop_uids(self) -> list[str]:
        return [str(ds.SOPInstanceUID) for ds in self.datasets]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm as (column, row, slice) = (i, j, k)."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def row_direction(self) -> FloatArray:
        """Unit vector of increasing column index i (the first triplet of the orientation)."""
        return self.affine[:3, 0] / np.linalg.norm(self.affine[:3, 0])

    @property
    def column_direction(self) -> FloatArray:
        """Unit vector of increasing row index j (the second triplet of the orientation)."""
        return self.affine[:3, 1] / np.linalg.norm(self.affine[:3, 1])

    @property
    def normal(self) -> FloatArray:
        """Unit slice normal, the direction of increasing slice index k."""
        return self.affine[:3, 2] / np.linalg.norm(self.affine[:3, 2])

    @property
    def modality(self) -> str:
        return str(self.datasets[0].get("Modality", ""))

    def voxel_to_patient(self, ijk: npt.ArrayLike) -> FloatArray:
        """Patient coordinates (mm) of voxel indices given as rows of (i, j, k)."""
        points = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        homogeneous = np.c_[points, np.ones(len(points))]
        return np.asarray((homogeneous @ self.affine.T)[:, :3], dtype=np.float64)

    def patient_to_voxel(self, xyz: npt.ArrayLike) -> FloatArray:
        """Continuous voxel indices (i, j, k) of patient points given as rows of (x, y, z)."""
        points = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        homogeneous = np.c_[points, np.ones(len(points))]
        return np.asarray((homogeneous @ np.linalg.inv(self.affine).T)[:, :3], dtype=np.float64)

    def slice_affine(self, k: int) -> FloatArray:
        """The affine of slice k alone: uses its own ImagePositionPatient (exact if irregular)."""
        affine = self.affine.copy()
        affine[:3, 3] = self.positions[k] if len(self.positions) else affine[:3, 3]
        return affine


def _orientation(ds: Dataset) -> FloatArray:
    try:
        return np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"instance {ds.get('SOPInstanceUID', '?')} has no usable ImageOrientationPatient"
        ) from exc


def _position(ds: Dataset) -> FloatArray:
    try:
        return np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"instance {ds.get('SOPInstanceUID', '?')} has no usable ImagePositionPatient"
        ) from exc


def _pixels(ds: Dataset) -> npt.NDArray[np.float32]:
    try:
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises many kinds for undecodable pixel data
        raise InvalidInput(f"cannot decode the pixels of {ds.SOPInstanceUID}: {exc}") from exc
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if pixels.ndim != 2:
        raise InvalidInput(
            f"instance {ds.SOPInstanceUID} is not a single-frame greyscale image "
            f"(pixel array shape {pixels.shape})"
        )
    return pixels * np.float32(slope) + np.float32(intercept)


def volume_from_datasets(datasets: Sequence[Dataset]) -> Volume:
    """Build a :class:`Volume` from single-frame images of one series, in any order.

    Images without ImagePositionPatient/ImageOrientationPatient (radiographs) are accepted
    only one at a time; they get a pixel-spacing affine at the origin. Raises
    :class:`InvalidInput` for mixed orientations, sizes or duplicate positions.
    """
    if not datasets:
        raise InvalidInput("no images to build a volume from")
    images = [ds for ds in datasets if "PixelData" in ds]
    if not images:
        raise InvalidInput("the series holds no images")
    if any("ImageOrientationPatient" not in ds for ds in images):
        if len(images) != 1:
            raise InvalidInput("images without ImageOrientationPatient cannot form a volume")
        return _planar(images[0])
    orientation = _orientation(images[0])
    for ds in images[1:]:
        if np.abs(_orientation(ds) - orientation).max() > ORIENTATION_TOLERANCE:
            raise InvalidInput("the series mixes image orientations; it is not one volume")
    row = orientation[:3] / np.linalg.norm(orientation[:3])
    col = orientation[3:] / np.linalg.norm(orientation[3:])
    normal = np.cross(row, col)
    positions = np.array([_position(ds) for ds in images])
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    images = [images[i] for i in order]
    positions = positions[order]
    distances = distances[order]
    shape = (int(images[0].Rows), int(images[0].Columns))
    if any((int(ds.Rows), int(ds.Columns)) != shape for ds in images):
        raise InvalidInput("the series mixes image sizes; it is not one volume")
    gaps = np.diff(distances)
    if len(gaps) and gaps.min() < 1e-4:
        raise InvalidInput("two images of the series share a position; it is not one volume")
    regular = True
    if len(gaps):
        step = float(np.median(gaps))
        regular = bool(np.abs(gaps - step).max() <= SPACING_TOLERANCE * step)
        # The slice vector is the mean step between first and last, so the affine is exact
        # at both ends even if the positions drift slightly off the normal (gantry tilt).
        slice_vector = (positions[-1] - positions[0]) / (len(images) - 1)
    else:
        thickness = float(images[0].get("SpacingBetweenSlices", 0) or 0) or float(
            images[0].get("SliceThickness", 1) or 1
        )
        slice_vector = normal * thickness
    spacing = [float(v) for v in images[0].PixelSpacing]  # (row spacing, column spacing)
    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]
    affine[:3, 1] = col * spacing[0]
    affine[:3, 2] = slice_vector
    affine[:3, 3] = positions[0]
    array = np.stack([_pixels(ds) for ds in images])
    return Volume(array, affine, list(images), regular, positions)


def _planar(ds: Dataset) -> Volume:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [1, 1]
    affine = np.eye(4)
    affine[0, 0] = float(spacing[1])
    affine[1, 1] = float(spacing[0])
    array = _pixels(ds)[np.newaxis]
    return Volume(array, affine, [ds], True, np.zeros((1, 3)))


def load_series(archive: Archive, study_uid: str, series_uid: str) -> Volume:
    """Read every instance of a stored series and build its :class:`Volume`."""
    files = archive.instance_files(study_uid, series_uid)
    return volume_from_datasets([archive.read_file(file) for file in files])


def resample_onto(
    source: Volume, reference: Volume, order: int = 1, fill: float = 0.0
) -> npt.NDArray[np.float32]:
    """``source`` sampled on ``reference``'s voxel grid through patient coordinates.

    Each reference voxel (i, j, k) goes to patient space by the reference affine and back
    into source indices by the inverse of the source affine (PS3.3 C.7.6.2.1.1), so series
    of any orientation, spacing or field of view land on one grid as long as they share a
    Frame of Reference. ``order`` 1 is trilinear, 0 nearest; outside the source: ``fill``.
    """
    from scipy import ndimage

    ijk = np.linalg.inv(source.affine) @ reference.affine  # reference (i,j,k) -> source (i,j,k)
    swap = np.eye(4)[[2, 1, 0, 3]]  # (i, j, k) <-> (k, j, i), the array's axis order
    kji = swap @ ijk @ swap
    resampled = ndimage.affine_transform(
        source.array.astype(np.float32, copy=False),
        kji[:3, :3],
        offset=kji[:3, 3],
        output_shape=reference.array.shape,
        order=order,
        mode="constant",
        cval=fill,
    )
    return np.asarray(resampled, dtype=np.float32)
