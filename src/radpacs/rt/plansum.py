"""Plan sums: several RTDOSE grids of one Frame of Reference summed onto one grid.

The sum is what an RTDOSE with Dose Summation Type ``PLAN_SUM`` holds (PS3.3 C.8.8.3):
``sum_i weight_i * dose_i``. The grids may differ in orientation, resolution and extent.
The result takes the orientation and voxel size of the finest grid (smallest voxel) and
covers the union of all grids; each grid is sampled trilinearly at the result's voxel
centres (:meth:`DoseGrid.sample`, exact for dose linear between voxel centres) and counts
0 where it has no voxel, as a treatment planning system's sum does outside a plan's grid.

Example::

    total = sum_grids([DoseGrid.from_dataset(a), DoseGrid.from_dataset(b)], weights=[1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from radpacs.errors import InvalidInput
from radpacs.rt.dose import DoseGrid

__all__ = ["align_grid", "resample", "sum_grids"]

FloatArray = npt.NDArray[np.float64]

#: The largest sum grid made (voxels): about 400 MB of float64.
MAX_VOXELS = 50_000_000


def sum_grids(grids: Sequence[DoseGrid], weights: Sequence[float] | None = None) -> DoseGrid:
    """``sum weight_i * grid_i`` on one grid (see the module docstring).

    InvalidInput when there is no grid, the weights do not match the grids or are not
    finite, the grids lie in different Frames of Reference or mix Gy with relative dose.
    """
    if not grids:
        raise InvalidInput("a plan sum needs at least one RTDOSE")
    factors = [1.0] * len(grids) if weights is None else [float(w) for w in weights]
    if len(factors) != len(grids):
        raise InvalidInput(f"{len(factors)} weights for {len(grids)} RTDOSE grids")
    if not all(np.isfinite(factors)):
        raise InvalidInput("the plan sum weights must be finite numbers")
    if len(grids) == 1 and factors[0] == 1.0:
        return grids[0]
    frames = {grid.frame_of_reference_uid for grid in grids if grid.frame_of_reference_uid}
    if len(frames) > 1:
        raise InvalidInput(
            "the RTDOSE grids lie in different Frames of Reference "
            f"({', '.join(sorted(frames))}): they cannot be summed"
        )
    units = {grid.units for grid in grids}
    if len(units) > 1:
        raise InvalidInput(f"the RTDOSE grids mix dose units ({', '.join(sorted(units))})")
    target = min(grids, key=_voxel_volume)
    spacing = (target.column_spacing, target.row_spacing, _plane_step(target))
    return resample(
        grids,
        factors,
        target.row_direction,
        target.column_direction,
        spacing,
        anchor=target.origin,
        frame_of_reference=next(iter(frames), ""),
    )


def align_grid(grid: DoseGrid, normal: FloatArray) -> DoseGrid:
    """``grid`` resampled trilinearly onto a grid whose planes are normal to ``normal``
    (for contours in planes not parallel to the dose planes), at the grid's finest spacing
    on all three axes, over its whole extent; points beyond the grid's voxels take the
    edge values (callers check the coverage against the original grid)."""
    n = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    if float(n @ grid.normal) < 0:
        n = -n
    row = grid.row_direction - (grid.row_direction @ n) * n
    if np.linalg.norm(row) < 1e-3:
        row = grid.column_direction - (grid.column_direction @ n) * n
    row = row / np.linalg.norm(row)
    column = np.cross(n, row)
    step = min(grid.column_spacing, grid.row_spacing, _plane_step(grid))
    return resample(
        [grid],
        [1.0],
        row,
        column,
        (step, step, step),
        anchor=grid.origin,
        frame_of_reference=grid.frame_of_reference_uid,
        outside="edge",
    )


def resample(
    grids: Sequence[DoseGrid],
    factors: Sequence[float],
    row_direction: FloatArray,
    column_direction: FloatArray,
    spacing: tuple[float, float, float],
    anchor: FloatArray,
    frame_of_reference: str = "",
    outside: str = "zero",
) -> DoseGrid:
    """``sum factor_i * grid_i`` on the lattice with these directions and ``spacing``
    (column, row, plane; mm) through the point ``anchor`` that covers every grid;
    ``outside``: a grid counts ``"zero"`` beyond its voxels, or its ``"edge"`` values."""
    normal = np.cross(row_direction, column_direction)
    axes = np.stack([row_direction, column_direction, normal])
    corners = np.concatenate([_corners(grid) for grid in grids]) @ axes.T  # (n, 3) in mm
    steps = np.asarray(spacing, dtype=np.float64)
    reference = axes @ np.asarray(anchor, dtype=np.float64)
    first = np.floor((corners.min(axis=0) - reference) / steps + 0.5 - 1e-9)
    last = np.ceil((corners.max(axis=0) - reference) / steps - 0.5 + 1e-9)
    counts = (last - first + 1).astype(int)
    columns, rows, planes = (int(value) for value in counts)
    if columns * rows * planes > MAX_VOXELS:
        raise InvalidInput(
            f"the resampled dose grid would have {columns * rows * planes} voxels "
            f"(more than {MAX_VOXELS}): the RTDOSE grids lie too far apart"
        )
    origin = np.asarray(anchor, dtype=np.float64) + axes.T @ (first * steps)
    total = np.zeros((planes, rows, columns), dtype=np.float64)
    jj, ii = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    in_plane = (
        origin
        + np.multiply.outer(ii.ravel() * steps[0], row_direction)
        + np.multiply.outer(jj.ravel() * steps[1], column_direction)
    )
    for k in range(planes):
        points = in_plane + k * steps[2] * normal
        plane = total[k].reshape(-1)
        for grid, factor in zip(grids, factors, strict=True):
            if factor == 0.0:
                continue
            u, v, w = grid.to_grid(points)
            if outside == "edge":
                plane += factor * grid.sample(u, v, w)
                continue
            inside = grid.inside(u, v, w)
            if inside.any():
                plane[inside] += factor * grid.sample(u[inside], v[inside], w[inside])
    return DoseGrid(
        dose=total,
        origin=origin,
        row_direction=np.asarray(row_direction, dtype=np.float64),
        column_direction=np.asarray(column_direction, dtype=np.float64),
        column_spacing=float(steps[0]),
        row_spacing=float(steps[1]),
        plane_offsets=steps[2] * np.arange(planes, dtype=np.float64),
        units=grids[0].units,
        frame_of_reference_uid=frame_of_reference,
        sop_instance_uid="",
    )


def _plane_step(grid: DoseGrid) -> float:
    offsets = grid.plane_offsets
    if offsets.size > 1:
        return float(np.median(np.diff(offsets)))
    return min(grid.column_spacing, grid.row_spacing)


def _voxel_volume(grid: DoseGrid) -> float:
    return grid.column_spacing * grid.row_spacing * _plane_step(grid)


def _corners(grid: DoseGrid) -> FloatArray:
    """The eight outer corners of a grid's voxel extent, in patient coordinates (mm)."""
    _, rows, columns = grid.shape
    w_low, w_high = grid.plane_extent()
    result = []
    for u in (-0.5, columns - 0.5):
        for v in (-0.5, rows - 0.5):
            for w in (w_low, w_high):
                result.append(
                    grid.origin
                    + u * grid.column_spacing * grid.row_direction
                    + v * grid.row_spacing * grid.column_direction
                    + w * grid.normal
                )
    return np.array(result)
