"""Measurements of segmented regions in patient space: volume, longest diameter, slice range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from radpacs.ai.geometry import Volume

__all__ = ["RegionMeasurement", "measure_region"]


@dataclass(frozen=True)
class RegionMeasurement:
    """``first_slice``/``last_slice`` are 1-based indices in volume order (along the normal)."""

    volume_mm3: float
    longest_diameter_mm: float
    first_slice: int
    last_slice: int
    voxels: int

    def to_json(self) -> dict[str, float | int]:
        return {
            "volume_mm3": round(self.volume_mm3, 3),
            "longest_diameter_mm": round(self.longest_diameter_mm, 3),
            "first_slice": self.first_slice,
            "last_slice": self.last_slice,
            "voxels": self.voxels,
        }


def measure_region(volume: Volume, mask: npt.NDArray[np.bool_]) -> RegionMeasurement:
    """Volume = voxels x |det(affine)|; diameter = largest distance between voxel centres (mm).

    The diameter is taken over the convex hull of the region's voxel centres in patient
    coordinates, so it is exact for that point set and works for any orientation.
    """
    count = int(mask.sum())
    if count == 0:
        return RegionMeasurement(0.0, 0.0, 0, 0, 0)
    voxel_mm3 = abs(float(np.linalg.det(volume.affine[:3, :3])))
    k, j, i = np.nonzero(mask)
    points = volume.voxel_to_patient(np.c_[i, j, k])
    candidates = points
    if len(points) > 3:
        try:
            from scipy.spatial import ConvexHull, QhullError

            candidates = points[ConvexHull(points).vertices]
        except (QhullError, ValueError):  # flat regions: fall back to every point
            candidates = points
    if len(candidates) > 4000:
        candidates = candidates[:: len(candidates) // 4000 + 1]
    diameter = 0.0
    for start in range(0, len(candidates), 512):
        block = candidates[start : start + 512]
        distances = np.linalg.norm(block[:, None, :] - candidates[None, :, :], axis=-1)
        diameter = max(diameter, float(distances.max()))
    return RegionMeasurement(count * voxel_mm3, diameter, int(k.min()) + 1, int(k.max()) + 1, count)
