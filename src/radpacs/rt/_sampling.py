"""Sub-voxel sampling of one ROI in a dose grid: the geometric core of the DVH.

The ROI is the union of *slabs*: each contour plane's even-odd polygon region extruded
along the dose-plane normal from midway to the previous plane to midway to the next one.
The first and last planes get half-slice end caps (half the typical plane spacing), and a
gap wider than 1.5 typical spacings splits the ROI there, each side getting its own cap.
This is the convention of the analytical benchmark of Nelms et al. (Med. Phys. 42(8),
2015), used for both the volume and the histogram.

In each plane the region is rasterised on a regular lattice finer than the dose grid
(``k`` samples per dose voxel along rows and columns, phase-locked to the voxels): each
lattice cell gets the fraction of it that the even-odd region covers, exact along four
scanlines per cell row, and its dose is taken at the centroid of the covered part.
Along the normal each slab is cut at the dose planes, where trilinear dose is linear, so
the dose over a sample's segment is exactly the straight line between the dose on its
two faces. In-plane, the dose change across one cell (from the gradient of the bilinear
dose) widens that interval. Each sample therefore carries a volume spread uniformly over
a dose interval whose mean and variance match the dose over its cell: the cumulative
histogram built from them is exact for gradients along the normal and second-order
accurate in-plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from radpacs.errors import InvalidInput
from radpacs.rt.dose import DoseGrid
from radpacs.rt.rtstruct import ROI

__all__ = ["RoiSamples", "sample_roi"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Contour points may spread this far (mm) along the dose normal and still be one plane.
PLANE_TOLERANCE_MM = 0.05
#: Default in-plane resolution: at least this many lattice cells across the ROI.
SAMPLES_ACROSS = 30


@dataclass(frozen=True, eq=False)
class RoiSamples:
    """Volume elements of one ROI: each one's mean dose, dose spread and volume (mm3).

    ``dose_min``/``dose_max`` are the extreme doses met at sample faces and contour
    vertices; ``outside_volume`` is the volume (mm3) of the ROI beyond the dose grid.
    """

    mean: FloatArray
    width: FloatArray
    weight: FloatArray
    dose_min: float
    dose_max: float
    outside_volume: float
    samples_per_voxel: int
    warnings: tuple[str, ...] = field(default=())

    @property
    def volume(self) -> float:
        """Volume inside the dose grid, mm3."""
        return float(self.weight.sum())


@dataclass
class _Plane:
    w: float
    polygons: list[FloatArray]
    low: float = 0.0
    high: float = 0.0


def sample_roi(roi: ROI, grid: DoseGrid, samples_per_voxel: int | None = None) -> RoiSamples:
    """Sample ``roi`` in ``grid`` as described in the module docstring.

    ``samples_per_voxel`` fixes ``k``; by default it is chosen so that at least
    :data:`SAMPLES_ACROSS` samples cross the ROI's smallest in-plane extent, between 2 and 8.
    """
    if not roi.has_contours:
        skipped = f" ({'; '.join(roi.warnings)})" if roi.warnings else ""
        raise InvalidInput(
            f"ROI {roi.label} has no closed planar contours to compute a DVH{skipped}"
        )
    warnings: list[str] = list(roi.warnings)
    planes = _planes(roi, grid)
    _set_slabs(planes, grid, roi, warnings)

    all_uv = np.concatenate([poly for plane in planes for poly in plane.polygons])
    u_min, v_min = all_uv.min(axis=0)
    u_max, v_max = all_uv.max(axis=0)
    dx, dy = grid.column_spacing, grid.row_spacing
    if samples_per_voxel is None:
        smallest = max(min((u_max - u_min) * dx, (v_max - v_min) * dy), 1e-6)
        k = int(np.clip(np.ceil(SAMPLES_ACROSS * max(dx, dy) / smallest), 2, 8))
    else:
        k = int(samples_per_voxel)
        if k < 1:
            raise ValueError(f"samples_per_voxel must be >= 1, not {samples_per_voxel}")
    us = _lattice(u_min, u_max, k)
    vs = _lattice(v_min, v_max, k)
    _, n_rows, n_cols = grid.shape
    rows_inside = (vs >= -0.5) & (vs <= n_rows - 0.5)
    columns_inside = (us >= -0.5) & (us <= n_cols - 0.5)
    valid = rows_inside[:, None] & columns_inside[None, :]  # lattice cells within the grid
    pixel_area = (dx / k) * (dy / k)

    upsampled = _Upsampler(grid, us, vs)
    w_low, w_high = grid.plane_extent()
    extremes: list[float] = []
    parts: list[tuple[FloatArray, FloatArray, FloatArray]] = []
    outside = 0.0
    cells = vs.size * us.size
    valid_flat = valid.ravel()
    all_valid = bool(valid_flat.all())
    batch = max(1, _BATCH_CELLS // (cells * _SUB_ROWS))
    for start in range(0, len(planes), batch):
        chunk = planes[start : start + batch]
        coverage, moment_u, moment_v = (
            array.reshape(len(chunk), cells)
            for array in _fill([plane.polygons for plane in chunk], us, vs)
        )
        covered = coverage.sum(axis=1)
        covered_outside = (
            np.zeros(len(chunk)) if all_valid else coverage @ (~valid_flat).astype(np.float64)
        )
        seg_plane, seg_a, seg_b = _segments(chunk, grid.plane_offsets, (w_low, w_high))
        beyond = (seg_b <= w_low + 1e-9) | (seg_a >= w_high - 1e-9)
        lost = np.where(beyond, covered[seg_plane], covered_outside[seg_plane])
        outside += pixel_area * float(np.sum(lost * (seg_b - seg_a)))
        seg_plane, seg_a, seg_b = seg_plane[~beyond], seg_a[~beyond], seg_b[~beyond]
        inside = coverage > 1e-12
        if not all_valid:
            inside &= valid_flat
        if seg_plane.size == 0 or not inside.any():
            continue
        # Runs of segments of consecutive planes between the same two dose planes: there
        # the dose is linear along the normal, so a cell fully covered in every plane of a
        # run is one exact sample spanning the run instead of one sample per plane.
        interval = np.searchsorted(grid.plane_offsets, 0.5 * (seg_a + seg_b))  # 0: below all
        joins = (
            (interval[1:] == interval[:-1])
            & (np.abs(seg_a[1:] - seg_b[:-1]) < 1e-9)
            & (seg_plane[1:] == seg_plane[:-1] + 1)
        )
        run_start = np.flatnonzero(np.concatenate([[True], ~joins]))
        run_end = np.append(run_start[1:], seg_plane.size) - 1
        run = np.cumsum(np.concatenate([[True], ~joins])) - 1
        full = coverage >= 1.0
        if not all_valid:
            full &= valid_flat
        full_run = np.logical_and.reduceat(full[seg_plane], run_start, axis=0)
        full_run &= (run_end > run_start)[:, None]
        seg_index, cell_single = np.nonzero(inside[seg_plane] & ~full_run[run])
        run_index, cell_run = np.nonzero(full_run)
        starts = np.concatenate([seg_a, seg_a[run_start]])
        ends = np.concatenate([seg_b, seg_b[run_end]])
        segment = np.concatenate([seg_index, seg_plane.size + run_index])
        cell = np.concatenate([cell_single, cell_run])
        plane = np.concatenate([seg_plane[seg_index], seg_plane[run_start][run_index]])
        flat = plane * cells + cell
        fraction = np.take(coverage, flat)
        d_a, d_b, gu, gv = upsampled.segment_doses(starts, ends, segment, cell)
        # Partly covered cells: dose at the centroid of their covered part.
        shift = (gu * np.take(moment_u, flat) + gv * np.take(moment_v, flat)) / fraction
        d_a += shift
        d_b += shift
        parts.append(
            (
                0.5 * (d_a + d_b),
                np.sqrt((d_b - d_a) ** 2 + (gu**2 + gv**2) * fraction**2),
                fraction * pixel_area * (ends - starts)[segment],
            )
        )
        extremes += [
            float(min(d_a.min(), d_b.min())),
            float(max(d_a.max(), d_b.max())),
        ]

    extremes += _vertex_extremes(planes, grid, extremes)
    if parts:
        mean, width, weight = (np.concatenate(column) for column in zip(*parts, strict=True))
    else:
        mean = width = weight = np.zeros(0)
    return RoiSamples(
        mean=mean,
        width=width,
        weight=weight,
        dose_min=min(extremes) if extremes else float("nan"),
        dose_max=max(extremes) if extremes else float("nan"),
        outside_volume=outside,
        samples_per_voxel=k,
        warnings=tuple(warnings),
    )


def _planes(roi: ROI, grid: DoseGrid) -> list[_Plane]:
    """Contours in grid coordinates, grouped by plane, sorted along the normal."""
    by_w: dict[float, _Plane] = {}
    sizes = [len(contour) for contour in roi.contours]
    u, v, w = grid.to_grid(np.concatenate(roi.contours))
    bounds = np.cumsum([0, *sizes])
    lowest = np.minimum.reduceat(w, bounds[:-1])
    highest = np.maximum.reduceat(w, bounds[:-1])
    centres = np.add.reduceat(w, bounds[:-1]) / np.asarray(sizes)
    spread = float((highest - lowest).max())
    if spread > PLANE_TOLERANCE_MM:
        raise InvalidInput(
            f"ROI {roi.label}: a contour spans {spread:.2f} mm along the dose grid "
            "normal; contours must lie in planes parallel to the dose planes "
            "(oblique dose grids are not supported)"
        )
    uv = np.column_stack([u, v])
    for index, centre in enumerate(centres):
        key = round(float(centre), 3)
        plane = by_w.setdefault(key, _Plane(w=key, polygons=[]))
        plane.polygons.append(uv[bounds[index] : bounds[index + 1]])
    return [by_w[key] for key in sorted(by_w)]


def _set_slabs(planes: list[_Plane], grid: DoseGrid, roi: ROI, warnings: list[str]) -> None:
    """Give each plane its slab ``[low, high]`` with half-slice end caps."""
    ws = np.array([plane.w for plane in planes])
    if ws.size == 1:
        offsets = grid.plane_offsets
        typical = float(np.median(np.diff(offsets))) if offsets.size > 1 else 1.0
        warnings.append(
            f"ROI {roi.label} has a single contour plane; its thickness is taken as the "
            f"dose plane spacing, {typical:g} mm"
        )
    else:
        typical = float(np.median(np.diff(ws)))
    for index, plane in enumerate(planes):
        below = ws[index] - ws[index - 1] if index > 0 else np.inf
        above = ws[index + 1] - ws[index] if index + 1 < ws.size else np.inf
        plane.low = plane.w - (below / 2 if below <= 1.5 * typical else typical / 2)
        plane.high = plane.w + (above / 2 if above <= 1.5 * typical else typical / 2)


def _segments(
    planes: list[_Plane], dose_offsets: FloatArray, extent: tuple[float, float]
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Each slab cut at the dose planes and grid ends inside it: (plane, start, end)."""
    plane_index: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    for index, plane in enumerate(planes):
        inner = dose_offsets[(dose_offsets > plane.low) & (dose_offsets < plane.high)]
        cuts = np.unique(
            np.concatenate(
                [[plane.low, plane.high], inner, [w for w in extent if plane.low < w < plane.high]]
            )
        )
        plane_index += [index] * (cuts.size - 1)
        starts += cuts[:-1].tolist()
        ends += cuts[1:].tolist()
    return np.asarray(plane_index, dtype=np.intp), np.asarray(starts), np.asarray(ends)


def _lattice(low: float, high: float, k: int) -> FloatArray:
    """Sample positions ``-0.5 + (j + 0.5) / k`` (voxel units) covering ``[low, high]``."""
    first = int(np.floor((low + 0.5) * k - 0.5))
    last = int(np.ceil((high + 0.5) * k - 0.5))
    return -0.5 + (np.arange(first, last + 1, dtype=np.float64) + 0.5) / k


_SUB_ROWS = 4
_BATCH_CELLS = 4_000_000


def _fill(
    planes: list[list[FloatArray]], us: FloatArray, vs: FloatArray, sub_rows: int = _SUB_ROWS
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Even-odd coverage of the lattice cells ``vs x us`` by each plane's polygons.

    Each cell is cut by ``sub_rows`` scanlines; along each, the covered length of the cell
    is exact (from the sorted edge crossings, entering and leaving in turn by the even-odd
    rule). Returns, per plane, the covered fraction of each cell ``(planes, len(vs),
    len(us))`` and the first moments of its covered part about the cell centre along u and
    v (in lattice steps, times the cell area): divided by the covered fraction they give
    the centroid of the covered part.
    """
    n_planes, n_rows, n_cols = len(planes), vs.size, us.size
    shape = (n_planes, n_rows, n_cols)
    points = np.concatenate([poly for polys in planes for poly in polys])
    ends = np.concatenate([np.roll(poly, -1, axis=0) for polys in planes for poly in polys])
    plane_of = np.repeat(
        np.arange(n_planes), [sum(len(poly) for poly in polys) for polys in planes]
    )
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = ends[:, 0], ends[:, 1]
    hv = vs[1] - vs[0] if n_rows > 1 else 1.0
    hu = us[1] - us[0] if n_cols > 1 else 1.0
    n_lines = n_rows * sub_rows
    step = hv / sub_rows
    first_line = vs[0] - hv / 2 + step / 2
    y_low, y_high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.maximum(np.ceil((y_low - first_line) / step), 0).astype(np.intp)
    last = np.minimum(np.ceil((y_high - first_line) / step) - 1, n_lines - 1).astype(np.intp)
    counts = np.where(y_high > y_low, np.maximum(last - first + 1, 0), 0)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(shape), np.zeros(shape), np.zeros(shape)
    edge = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    line = first[edge] + np.arange(total) - starts[edge]
    v = first_line + line * step
    x = x0[edge] + (v - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    line += plane_of[edge] * n_lines  # one scanline index across all planes
    x_low = float(x.min())
    order = np.argsort(line * (float(x.max()) - x_low + 1.0) + (x - x_low))  # by line, then x
    line, x = line[order], x[order]
    # Every scanline crosses closed polygons an even number of times: enter, leave, ...
    sign = np.where(np.arange(total) % 2 == 0, 1.0, -1.0)
    left = us[0] - hu / 2
    x = np.clip(x, left, left + n_cols * hu)
    cell = np.clip(np.floor((x - left) / hu).astype(np.intp), 0, n_cols - 1)
    right = left + (cell + 1) * hu  # right edge of the crossing's cell
    centre = left + (cell + 0.5) * hu
    # Sums over a cell's scanlines are linear, so accumulate them straight into cells:
    # the state (inside at the cell's left edge) is a cumulative sum of entries.
    offset = (line % sub_rows + 0.5) / sub_rows - 0.5  # scanline position in the cell row
    flat = (line // sub_rows) * n_cols + cell
    size = n_planes * n_rows * n_cols

    def accumulate(weights: FloatArray) -> FloatArray:
        counted: FloatArray = np.asarray(np.bincount(flat, weights, minlength=size), np.float64)
        return counted.reshape(shape)

    def state(entries: FloatArray) -> FloatArray:
        return np.cumsum(entries, axis=2) - entries

    sign /= sub_rows  # each scanline carries 1/sub_rows of its cell row
    inside_part = sign * (right - x) / hu
    coverage = np.clip(state(accumulate(sign)) + accumulate(inside_part), 0.0, 1.0)
    moment_u = accumulate(sign * ((right - centre) ** 2 - (x - centre) ** 2) / (2 * hu**2))
    moment_v = state(accumulate(sign * offset)) + accumulate(inside_part * offset)
    return coverage, moment_u, moment_v


class _Upsampler:
    """Dose planes interpolated onto the sample lattice, cached per dose plane."""

    def __init__(self, grid: DoseGrid, us: FloatArray, vs: FloatArray) -> None:
        self.grid = grid
        wu = grid.interpolation_matrix("u", us)
        wv = grid.interpolation_matrix("v", vs)
        cols = np.flatnonzero(wu.any(axis=0))
        rows = np.flatnonzero(wv.any(axis=0))
        self._cols = slice(int(cols[0]), int(cols[-1]) + 1)
        self._rows = slice(int(rows[0]), int(rows[-1]) + 1)
        self._wu = wu[:, self._cols]
        self._wv = wv[:, self._rows]
        self._planes: dict[int, tuple[FloatArray, FloatArray, FloatArray]] = {}

    def _plane(self, index: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        cached = self._planes.get(index)
        if cached is None:
            block = self.grid.dose[index, self._rows, self._cols]
            values = self._wv @ block @ self._wu.T
            gu = np.gradient(values, axis=1) if values.shape[1] > 1 else np.zeros_like(values)
            gv = np.gradient(values, axis=0) if values.shape[0] > 1 else np.zeros_like(values)
            cached = (values.ravel(), gu.ravel(), gv.ravel())
            self._planes[index] = cached
        return cached

    def segment_doses(
        self, starts: FloatArray, ends: FloatArray, segment: IntArray, cell: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Dose at both ends of each sample's segment, and the dose change across one
        lattice step along u and v at its middle.

        A segment never crosses a dose plane, so one pair of dose planes brackets all of it
        and each quantity costs two gathers.
        """
        last = self.grid.shape[0] - 1
        middle = self.grid.plane_coordinate(0.5 * (starts + ends))
        low = np.minimum(np.floor(middle).astype(np.intp), max(last - 1, 0))
        first, top = int(low.min()), min(int(low.max()) + 1, last)
        for index in [key for key in self._planes if key < first]:
            del self._planes[index]  # planes are visited in order along the normal
        stacks = [self._plane(index) for index in range(first, top + 1)]
        n_cells = stacks[0][0].size
        lower = (low - first)[segment]
        below = lower * n_cells + cell
        above = np.minimum(lower + 1, top - first) * n_cells + cell

        def weights(positions: FloatArray) -> FloatArray:
            return np.clip(self.grid.plane_coordinate(positions) - low, 0.0, 1.0)[segment]

        values = [
            (np.take(layer, below), np.take(layer, above))
            for layer in (
                np.concatenate([stack[column] for stack in stacks]) for column in range(3)
            )
        ]
        (dose_low, dose_high), (u_low, u_high), (v_low, v_high) = values
        rise = dose_high - dose_low
        t_mid = weights(0.5 * (starts + ends))
        return (
            dose_low + weights(starts) * rise,
            dose_low + weights(ends) * rise,
            u_low + t_mid * (u_high - u_low),
            v_low + t_mid * (v_high - v_low),
        )


def _vertex_extremes(planes: list[_Plane], grid: DoseGrid, found: list[float]) -> list[float]:
    """Min and max dose at the contour vertices on both faces of the planes' slabs.

    Only planes that can beat the extremes ``found`` so far are evaluated: trilinear dose
    never leaves the range of the grid values around a plane's bounding box.
    """
    low = min(found) if found else np.inf
    high = max(found) if found else -np.inf
    planes_, rows, columns = grid.shape
    chosen = []
    for plane in planes:
        uv = plane.polygons[0] if len(plane.polygons) == 1 else np.concatenate(plane.polygons)
        (u_min, v_min), (u_max, v_max) = uv.min(axis=0), uv.max(axis=0)
        k_low, k_high = grid.plane_coordinate(np.array([plane.low, plane.high]))
        block = grid.dose[
            max(int(np.floor(k_low)), 0) : min(int(np.ceil(k_high)), planes_ - 1) + 1,
            max(int(np.floor(v_min)), 0) : min(int(np.ceil(v_max)), rows - 1) + 1,
            max(int(np.floor(u_min)), 0) : min(int(np.ceil(u_max)), columns - 1) + 1,
        ]
        if block.size == 0 or block.min() < low or block.max() > high:
            chosen.append(plane)
    if not chosen:
        return []
    uv = np.concatenate([poly for plane in chosen for poly in plane.polygons])
    counts = [sum(len(poly) for poly in plane.polygons) for plane in chosen]
    u = np.concatenate([uv[:, 0], uv[:, 0]])
    v = np.concatenate([uv[:, 1], uv[:, 1]])
    w = np.concatenate(
        [
            np.repeat([plane.low for plane in chosen], counts),
            np.repeat([plane.high for plane in chosen], counts),
        ]
    )
    inside = grid.inside(u, v, w)
    if not inside.any():
        return []
    dose = grid.sample(u[inside], v[inside], w[inside])
    return [float(dose.min()), float(dose.max())]
