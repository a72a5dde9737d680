"""Measurements of an object given as points in patient coordinates (PS3.3 C.7.6.2.1.1).

Every source (SEG frames, rasterised RTSTRUCT contours) is reduced to the centres of the
cells (voxels) it covers, in patient coordinates (mm, LPS), with the cell's edge vectors.
From them, whatever the acquisition plane (axial, sagittal, coronal, oblique):

- volume: number of cells x cell volume;
- centroid: mean of the cell centres;
- longest axial diameter (RECIST 1.1 "longest diameter in the axial plane"): the cells are
  grouped by their height z (the feet-head axis); in each axial plane the largest distance
  between two cell centres, plus half the cell's width along that direction (the outermost
  centres of a sampled object lie on average a quarter cell inside each edge); the largest
  over all planes;
- short axis: in the plane of the longest diameter, the extent of the cells perpendicular to
  it (plus half the cell width), the short axis for convex shapes (lymph nodes);
- first and last slice: the lowest and highest z of the cell centres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom import Dataset

__all__ = ["ObjectMeasurement", "body_anchor", "measure_points", "series_anchor"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ObjectMeasurement:
    """Volume (mm3), centroid (mm), longest axial diameter and short axis (mm), z range (mm)."""

    volume_mm3: float
    centroid: tuple[float, float, float]
    long_axis_mm: float
    short_axis_mm: float
    first_slice_mm: float
    last_slice_mm: float


def _width(direction: FloatArray, edges: FloatArray) -> float:
    """Width of one cell (a parallelepiped with ``edges`` as rows) along a unit direction."""
    return float(np.abs(edges @ direction).sum())


def _farthest_pair(points: FloatArray) -> tuple[int, int, float]:
    candidates = np.arange(len(points))
    if len(points) > 3:
        try:
            from scipy.spatial import ConvexHull, QhullError

            candidates = ConvexHull(points).vertices
        except (QhullError, ValueError):  # collinear or flat: keep every point
            candidates = np.arange(len(points))
    sub = points[candidates]
    distances = np.linalg.norm(sub[:, None, :] - sub[None, :, :], axis=-1)
    a, b = np.unravel_index(int(np.argmax(distances)), distances.shape)
    return int(candidates[a]), int(candidates[b]), float(distances[a, b])


def measure_points(points: FloatArray, edges: FloatArray) -> ObjectMeasurement:
    """Measure the cells centred on ``points`` (N x 3, mm) whose edge vectors are ``edges``.

    ``edges`` is 3 x 3: one row per cell edge (row direction x column spacing, column
    direction x row spacing, slice normal x slice spacing). Raises ValueError if empty.
    """
    if len(points) == 0:
        raise ValueError("an object without any cell cannot be measured")
    cell_volume = abs(float(np.linalg.det(edges)))
    centroid = points.mean(axis=0)
    z = points[:, 2]
    # Cells of one axial plane share their z exactly for axial, sagittal and coronal grids;
    # oblique grids are binned by the cell's height.
    step = max(_width(np.array([0.0, 0.0, 1.0]), edges), 1e-6)
    levels = np.round(z / 0.01).astype(np.int64)
    if len(np.unique(levels)) > max(8, len(points) // 3):
        levels = np.round(z / step).astype(np.int64)
    order = np.argsort(levels, kind="stable")
    boundaries = np.flatnonzero(np.diff(levels[order])) + 1
    best = (-1.0, 0.0)
    for group in np.split(order, boundaries):
        plane = points[group][:, :2]
        if len(plane) == 1:
            long_axis = _width(np.array([1.0, 0.0, 0.0]), edges)
            short_axis = _width(np.array([0.0, 1.0, 0.0]), edges)
        else:
            a, b, distance = _farthest_pair(plane)
            if distance == 0:
                continue
            u = np.r_[(plane[b] - plane[a]) / distance, 0.0]
            v = np.array([-u[1], u[0], 0.0])
            long_axis = distance + _width(u, edges) / 2
            across = plane @ v[:2]
            short_axis = float(across.max() - across.min()) + _width(v, edges) / 2
        if long_axis > best[0]:
            best = (long_axis, short_axis)
    return ObjectMeasurement(
        volume_mm3=len(points) * cell_volume,
        centroid=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
        long_axis_mm=best[0],
        short_axis_mm=best[1],
        first_slice_mm=float(z.min()),
        last_slice_mm=float(z.max()),
    )


def body_anchor(
    array: npt.NDArray[np.floating], affine: FloatArray, modality: str = ""
) -> tuple[float, float, float] | None:
    """Centre of the body's bounding box in patient coordinates, or None if nothing is found.

    ``array`` is ``[k, j, i]`` and ``affine`` maps (i, j, k) to patient mm (as
    :class:`radpacs.ai.geometry.Volume`). The body is every voxel above -500 HU for CT, else
    above 10 % of the 99th percentile; this anchors positions across frames of reference
    (:mod:`radpacs.followup.matching`).
    """
    if array.size == 0:
        return None
    ct = modality.upper() == "CT"
    threshold = -500.0 if ct else 0.1 * float(np.percentile(array, 99))
    mask = array > threshold
    if not mask.any():
        return None
    low = [
        int(np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != d))).min())
        for d in range(3)
    ]
    high = [
        int(np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != d))).max())
        for d in range(3)
    ]
    k, j, i = ((lo + hi) / 2 for lo, hi in zip(low, high, strict=True))
    point = affine @ np.array([i, j, k, 1.0])
    return (float(point[0]), float(point[1]), float(point[2]))


def series_anchor(datasets: Sequence[Dataset]) -> tuple[float, float, float] | None:
    """:func:`body_anchor` of single-frame images of one series (pydicom datasets), or None
    when they do not form a volume (no plane geometry, mixed sizes, undecodable pixels)."""
    try:
        images = [ds for ds in datasets if "PixelData" in ds]
        if not images:
            return None
        orientation = np.asarray([float(v) for v in images[0].ImageOrientationPatient])
        normal = np.cross(orientation[:3], orientation[3:])
        positions = np.asarray([[float(v) for v in ds.ImagePositionPatient] for ds in images])
        order = np.argsort(positions @ normal, kind="stable")
        planes = []
        for index in order:
            ds = images[index]
            pixels = np.asarray(ds.pixel_array, dtype=np.float32)
            slope = float(ds.get("RescaleSlope", 1) or 1)
            intercept = float(ds.get("RescaleIntercept", 0) or 0)
            planes.append(pixels * slope + intercept)
        array = np.stack(planes)
        spacing = [float(v) for v in images[0].PixelSpacing]
    except Exception:  # pydicom raises many kinds for missing or undecodable attributes
        return None
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * spacing[1]
    affine[:3, 1] = orientation[3:] * spacing[0]
    if len(order) > 1:
        affine[:3, 2] = (positions[order[-1]] - positions[order[0]]) / (len(order) - 1)
    else:
        affine[:3, 2] = normal
    affine[:3, 3] = positions[order[0]]
    modality = str(images[0].get("Modality", ""))
    return body_anchor(array, affine, modality)
