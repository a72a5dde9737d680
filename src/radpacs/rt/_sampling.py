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

The samples are made a few dose intervals at a time (whole intervals, so that no run of
planes is split) and added straight into that histogram: evenly spaced bins over the dose
range the ROI can reach, with the curve exact at every bin edge. No per-sample arrays
outlive their batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from radpacs.errors import InvalidInput
from radpacs.rt._between import Plane as _Plane
from radpacs.rt._between import refine
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
    """One sampled ROI: its cumulative DVH and summary values (volumes in mm3).

    ``cumulative[i]`` is the volume receiving at least ``dose_axis[i]``; ``dose_integral``
    is the integral of dose over the volume; ``dose_min``/``dose_max`` are the extreme
    doses met at sample faces and contour vertices; ``outside_volume`` is the volume of the
    ROI beyond the dose grid.
    """

    dose_axis: FloatArray
    cumulative: FloatArray
    volume: float
    dose_integral: float
    dose_min: float
    dose_max: float
    outside_volume: float
    samples_per_voxel: int
    warnings: tuple[str, ...] = field(default=())


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
    typical = _set_slabs(planes, grid, roi, warnings)
    planes = refine(planes, typical, (grid.column_spacing, grid.row_spacing))

    all_uv = np.concatenate([poly for plane in planes for poly in plane.polygons])
    (u_min, u_max), (v_min, v_max) = _extent(all_uv)
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
    valid = (rows_inside[:, None] & columns_inside[None, :]).ravel()  # cells within the grid
    all_valid = bool(valid.all())
    pixel_area = (dx / k) * (dy / k)
    cells = vs.size * us.size

    w_low, w_high = grid.plane_extent()
    seg_plane, seg_a, seg_b = _segments(planes, grid.plane_offsets, (w_low, w_high))
    # 0: below all dose planes; a segment never crosses one, so its dose is linear along w.
    interval = np.searchsorted(grid.plane_offsets, 0.5 * (seg_a + seg_b))
    dose = _LatticeDose(grid, us, vs, seg_a, seg_b, k)
    histogram = _Histogram(*dose.bounds)
    extremes: list[float] = []
    outside = 0.0
    for batch in _batches(seg_plane, interval, cells):
        first_plane = int(seg_plane[batch.start])
        last_plane = int(seg_plane[batch.stop - 1])
        coverage, moment_u, moment_v = (
            array.reshape(-1, cells)
            for array in _fill(
                [planes[index].polygons for index in range(first_plane, last_plane + 1)], us, vs
            )
        )
        covered = coverage.sum(axis=1)
        covered_outside = (
            np.zeros(covered.size) if all_valid else coverage @ (~valid).astype(np.float64)
        )
        local = seg_plane[batch] - first_plane
        seg_a_, seg_b_, interval_ = seg_a[batch], seg_b[batch], interval[batch]
        beyond = (seg_b_ <= w_low + 1e-9) | (seg_a_ >= w_high - 1e-9)
        lost = np.where(beyond, covered[local], covered_outside[local])
        outside += pixel_area * float(np.sum(lost * (seg_b_ - seg_a_)))
        kept = np.flatnonzero(~beyond) + batch.start
        if kept.size == 0:
            continue
        local, interval_ = local[~beyond], interval_[~beyond]
        dose.load(kept)
        # Runs of segments of consecutive planes between the same two dose planes: there
        # the dose is linear along the normal, so a cell fully covered in every plane of a
        # run is one exact sample spanning the run instead of one sample per plane.
        joins = (
            (interval_[1:] == interval_[:-1])
            & (np.abs(seg_a[kept[1:]] - seg_b[kept[:-1]]) < 1e-9)
            & (local[1:] == local[:-1] + 1)
        )
        breaks = np.concatenate([[True], ~joins])
        run_start = np.flatnonzero(breaks)
        run = np.cumsum(breaks) - 1
        inside = coverage > 1e-12
        full = coverage >= 1.0
        if not all_valid:
            inside &= valid
            full &= valid
        run_end = np.append(run_start[1:], kept.size)  # exclusive
        full_run = full[local[run_start]]
        for step in range(1, int((run_end - run_start).max())):  # runs are a few planes
            longer = np.flatnonzero(run_end - run_start > step)
            full_run[longer] &= full[local[run_start[longer] + step]]
        run_first, run_last = kept[run_start], kept[run_end - 1]

        # Cells fully covered over a whole run: no centroid shift, one sample per run.
        # Computed for whole lattice rows of a few runs at a time, then kept where full.
        run_volume = pixel_area * (seg_b[run_last] - seg_a[run_first])
        chunk = max(1, _CHUNK_CELLS // cells)
        for rows in (slice(start, start + chunk) for start in range(0, run_start.size, chunk)):
            mask = full_run[rows]
            mean, dz, gu, gv = dose.across(run_first[rows], run_last[rows])
            width = _width(dz, gu, gv)[mask]
            mean, dz = mean[mask], dz[mask]
            weight = np.repeat(run_volume[rows], np.count_nonzero(mask, axis=1))
            extremes += _face_extremes(mean, dz)
            histogram.add(mean, width, weight)

        # The other covered cells: one sample per segment, dose at the covered centroid.
        flat, counts = _flat_nonzero(inside[local] & ~full_run[run])
        mean, dz, gu, gv = dose.at(flat, counts, kept, kept)
        at_plane = flat + np.repeat((local - np.arange(local.size)) * cells, counts)
        fraction = np.take(coverage, at_plane)
        shift = gu * np.take(moment_u, at_plane)
        shift += gv * np.take(moment_v, at_plane)
        shift /= fraction
        mean += shift
        width = _width(dz, gu, gv, fraction)
        weight = fraction * np.repeat(pixel_area * (seg_b[kept] - seg_a[kept]), counts)
        extremes += _face_extremes(mean, dz)
        histogram.add(mean, width, weight)
        # Free this batch's cell arrays before the next batch makes its own.
        del coverage, moment_u, moment_v, inside, full, mean, dz, gu, gv, width, weight

    extremes += _vertex_extremes(planes, grid, extremes)
    dose_min = min(extremes) if extremes else float("nan")
    dose_max = max(extremes) if extremes else float("nan")
    axis, cumulative = histogram.curve(dose_min, dose_max)
    return RoiSamples(
        dose_axis=axis,
        cumulative=cumulative,
        volume=histogram.volume,
        dose_integral=histogram.dose_integral,
        dose_min=dose_min,
        dose_max=dose_max,
        outside_volume=outside,
        samples_per_voxel=k,
        warnings=tuple(warnings),
    )


def _flat_nonzero(mask: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Flat indices of the true entries of a 2-D mask, and how many each row has."""
    return np.flatnonzero(mask), np.count_nonzero(mask, axis=1)


def _width(
    dz: FloatArray, gu: FloatArray, gv: FloatArray, fraction: FloatArray | None = None
) -> FloatArray:
    """``sqrt(dz**2 + (gu**2 + gv**2) * fraction**2)``, overwriting ``gu`` and ``gv``."""
    gu *= gu
    gv *= gv
    gu += gv
    if fraction is not None:
        gu *= fraction
        gu *= fraction
    gu += np.multiply(dz, dz, out=gv)
    return np.sqrt(gu, out=gu)


def _difference(values: FloatArray, axis: int) -> FloatArray:
    """Central differences along ``axis``, one-sided at its ends (as ``np.gradient``)."""
    result = np.zeros_like(values)
    if values.shape[axis] < 2:
        return result
    moved, source = np.moveaxis(result, axis, 0), np.moveaxis(values, axis, 0)
    np.subtract(source[2:], source[:-2], out=moved[1:-1])
    moved[1:-1] *= 0.5
    np.subtract(source[1], source[0], out=moved[0])
    np.subtract(source[-1], source[-2], out=moved[-1])
    return result


def _face_extremes(mean: FloatArray, dz: FloatArray) -> list[float]:
    """Lowest and highest dose on the faces of samples (``mean -+ dz / 2``)."""
    if mean.size == 0:
        return []
    half = 0.5 * np.abs(dz)
    return [float((mean - half).min()), float((mean + half).max())]


def _extent(uv: FloatArray) -> list[tuple[float, float]]:
    """``[(u_min, u_max), (v_min, v_max)]`` of points ``(n, 2)`` (column by column: numpy's
    ``min(axis=0)`` is slow on two columns)."""
    return [(float(column.min()), float(column.max())) for column in (uv[:, 0], uv[:, 1])]


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
            "(after resampling the dose onto their planes)"
        )
    uv = np.column_stack([u, v])
    for index, centre in enumerate(centres):
        key = round(float(centre), 3)
        plane = by_w.setdefault(key, _Plane(w=key, polygons=[]))
        plane.polygons.append(uv[bounds[index] : bounds[index + 1]])
    return [by_w[key] for key in sorted(by_w)]


def _set_slabs(planes: list[_Plane], grid: DoseGrid, roi: ROI, warnings: list[str]) -> float:
    """Give each plane its slab ``[low, high]`` with half-slice end caps; returns the
    typical plane spacing."""
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
    return typical


def _segments(
    planes: list[_Plane], dose_offsets: FloatArray, extent: tuple[float, float]
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Each slab cut at the dose planes and grid ends inside it: (plane, start, end)."""
    marks = np.unique(np.concatenate([dose_offsets, extent]))
    low = np.array([plane.low for plane in planes])
    high = np.array([plane.high for plane in planes])
    first = np.searchsorted(marks, low, side="right")  # marks[first:last] cut the slab
    last = np.searchsorted(marks, high, side="left")
    counts = last - first + 1
    plane = np.repeat(np.arange(len(planes)), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    mark = first[plane] + within  # the mark that ends each segment, if not the slab's end
    starts = np.where(within == 0, low[plane], marks[np.maximum(mark - 1, 0)])
    ends = np.where(
        within == counts[plane] - 1, high[plane], marks[np.minimum(mark, marks.size - 1)]
    )
    return plane, starts, ends


def _lattice(low: float, high: float, k: int) -> FloatArray:
    """Sample positions ``-0.5 + (j + 0.5) / k`` (voxel units) covering ``[low, high]``."""
    first = int(np.floor((low + 0.5) * k - 0.5))
    last = int(np.ceil((high + 0.5) * k - 0.5))
    return -0.5 + (np.arange(first, last + 1, dtype=np.float64) + 0.5) / k


_SUB_ROWS = 4
#: Lattice cells (times contour planes) filled at once: small enough to stay in cache.
_BATCH_CELLS = 3 << 14
#: Lattice cells of full runs turned into samples at once.
_CHUNK_CELLS = 1 << 14


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
    polygons = [poly for polys in planes for poly in polys]
    points = np.concatenate(polygons)
    sizes = np.array([len(poly) for poly in polygons])
    following = np.arange(1, points.shape[0] + 1)  # each edge's end: the next point ...
    following[np.cumsum(sizes) - 1] = np.cumsum(sizes) - sizes  # ... or the polygon's first
    plane_of = np.repeat(
        np.arange(n_planes), [sum(len(poly) for poly in polys) for polys in planes]
    )
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = x0[following], y0[following]
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
    # Sums over a cell's scanlines are linear, so accumulate them straight into cells.
    scanline = line % sub_rows
    offset = (scanline + 0.5) / sub_rows - 0.5  # scanline position in the cell row
    flat = (line // sub_rows) * n_cols + cell
    size = n_planes * n_rows * n_cols

    def accumulate(weights: FloatArray) -> FloatArray:
        counted: FloatArray = np.asarray(np.bincount(flat, weights, minlength=size), np.float64)
        return counted.reshape(shape)

    # Which scanlines are inside at each cell's left edge, as bits: the running sum of
    # +-2**scanline over the crossings before the cell (an integer sum: fast and exact).
    entries = accumulate(sign * np.left_shift(1, scanline)).astype(np.intp)
    inside_bits = np.cumsum(entries, axis=2)
    inside_bits -= entries
    del entries
    bits = (np.arange(1 << sub_rows)[:, None] >> np.arange(sub_rows)) & 1
    share = bits.sum(axis=1) / sub_rows  # covered fraction of each bit pattern
    lever = bits @ ((np.arange(sub_rows) + 0.5) / sub_rows - 0.5) / sub_rows  # its moment

    sign /= sub_rows  # each scanline carries 1/sub_rows of its cell row
    inside_part = sign * (right - x) / hu  # beyond each crossing, within its cell
    coverage = np.take(share, inside_bits)
    coverage += accumulate(inside_part)
    np.clip(coverage, 0.0, 1.0, out=coverage)
    moment_u = accumulate(sign * ((right - centre) ** 2 - (x - centre) ** 2) / (2 * hu**2))
    moment_v = np.take(lever, inside_bits)
    del inside_bits
    moment_v += accumulate(inside_part * offset)
    return coverage, moment_u, moment_v


def _batches(seg_plane: IntArray, interval: IntArray, cells: int) -> list[slice]:
    """Consecutive ranges of segments, each of whole dose intervals (so no run is split),
    whose contour planes hold about :data:`_BATCH_CELLS` lattice cells."""
    starts = [*np.flatnonzero(np.diff(interval)).tolist(), seg_plane.size - 1]
    batches = []
    begin = 0
    for end in starts:  # ``end``: the last segment of an interval
        nxt = end + 1
        if nxt < seg_plane.size and (seg_plane[nxt] - seg_plane[begin] + 1) * cells > _BATCH_CELLS:
            batches.append(slice(begin, nxt))
            begin = nxt
    batches.append(slice(begin, seg_plane.size))
    return batches


class _LatticeDose:
    """Trilinear dose on the sample lattice.

    Each dose plane is interpolated onto the lattice, with its change across one lattice
    step along u and v (central differences); each segment knows the two dose planes
    that bracket it and its start and end between them (0 to 1).
    """

    def __init__(
        self,
        grid: DoseGrid,
        us: FloatArray,
        vs: FloatArray,
        seg_a: FloatArray,
        seg_b: FloatArray,
        k: int,
    ) -> None:
        wu = grid.interpolation_matrix("u", us)
        wv = grid.interpolation_matrix("v", vs)
        cols = np.flatnonzero(wu.any(axis=0))
        rows = np.flatnonzero(wv.any(axis=0))
        self._cols = slice(int(cols[0]), int(cols[-1]) + 1)
        self._rows = slice(int(rows[0]), int(rows[-1]) + 1)
        self._wu_t = wu[:, self._cols].T
        self._wv = wv[:, self._rows]
        self._dose = grid.dose
        last = grid.shape[0] - 1
        middle = grid.plane_coordinate(0.5 * (seg_a + seg_b))
        self.lower = np.minimum(np.floor(middle).astype(np.intp), max(last - 1, 0))
        self.upper = np.minimum(self.lower + 1, last)
        self.t_start = np.clip(grid.plane_coordinate(seg_a) - self.lower, 0.0, 1.0)
        self.t_end = np.clip(grid.plane_coordinate(seg_b) - self.lower, 0.0, 1.0)
        self._cells = us.size * vs.size
        self._first = 0
        self._layers: tuple[FloatArray, ...] = ()
        # Every sample's dose interval lies within the block's range widened by the
        # largest dose change across a lattice cell (centroid shift plus in-plane spread).
        block = self._dose[
            int(self.lower.min()) : int(self.upper.max()) + 1, self._rows, self._cols
        ]
        change = (
            np.abs(np.diff(block, axis=2)).max(initial=0.0)
            + np.abs(np.diff(block, axis=1)).max(initial=0.0)
        ) / k
        self.bounds = (float(block.min()) - change, float(block.max()) + change)

    def load(self, segments: IntArray) -> None:
        """Interpolate the dose planes that bracket ``segments`` onto the lattice: dose
        and its change across one lattice step along u and v."""
        first, last = int(self.lower[segments].min()), int(self.upper[segments].max())
        self._layers = ()  # free the previous planes first
        values = self._wv @ self._dose[first : last + 1, self._rows, self._cols] @ self._wu_t
        gu, gv = _difference(values, axis=2), _difference(values, axis=1)
        self._first = first
        self._layers = (values.ravel(), gu.ravel(), gv.ravel())

    def across(
        self, first_segment: IntArray, last_segment: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Like :meth:`at`, for every lattice cell: arrays ``(len(first_segment), cells)``."""
        layers = [layer.reshape(-1, self._cells) for layer in self._layers]
        lower = self.lower[first_segment] - self._first
        upper = self.upper[first_segment] - self._first
        t_start, t_end = self.t_start[first_segment], self.t_end[last_segment]
        middle = (0.5 * (t_start + t_end))[:, None]
        result = []
        for layer in layers:
            low = layer[lower]
            rise = layer[upper]
            rise -= low
            result += [low, rise]
        low, rise, low_u, rise_u, low_v, rise_v = result
        mean = rise * middle
        mean += low
        rise *= (t_end - t_start)[:, None]
        rise_u *= middle
        rise_u += low_u
        rise_v *= middle
        rise_v += low_v
        return mean, rise, rise_u, rise_v

    def at(
        self, flat: IntArray, counts: IntArray, first_segment: IntArray, last_segment: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Doses of samples spanning segments ``first_segment[row]..last_segment[row]``
        (of one dose interval) at the lattice cells ``flat % cells``, given as the flat
        indices of a ``(rows, cells)`` mask with ``counts`` entries per row. The segments
        must be among those last given to :meth:`load`.

        Returns the mean dose, the dose change from start to end (along the normal), and
        the dose change across one lattice step along u and v, all at the middle.
        """
        values, gu, gv = self._layers
        row = np.arange(first_segment.size) + self._first
        lower, upper = self.lower[first_segment] - row, self.upper[first_segment] - row
        below = flat + np.repeat(lower * self._cells, counts)
        above = flat + np.repeat(upper * self._cells, counts)
        t_start, t_end = self.t_start[first_segment], self.t_end[last_segment]
        middle = np.repeat(0.5 * (t_start + t_end), counts)

        def interpolate(layer: FloatArray) -> tuple[FloatArray, FloatArray]:
            low = np.take(layer, below)
            rise = np.take(layer, above)
            rise -= low
            return low, rise

        low, rise = interpolate(values)
        mean = low + middle * rise
        rise *= np.repeat(t_end - t_start, counts)
        low_u, rise_u = interpolate(gu)
        low_v, rise_v = interpolate(gv)
        return mean, rise, low_u + middle * rise_u, low_v + middle * rise_v


#: Bins of the cumulative histogram across the dose range the ROI can reach.
_BINS = 32768


class _Histogram:
    """The cumulative volume, at evenly spaced doses, of samples each spreading its volume
    uniformly over ``mean +- width / 2``; exact at the bin edges.

    A sample adds ``c * ((b - e)+ - (a - e)+)`` at dose ``e``, with ``a``, ``b`` its ends
    and ``c = weight / width``. Sums of ``c * (p - e)+`` over points ``p`` are suffix sums
    of per-bin moments, accumulated in place. Samples of (near)
    zero width are steps.
    """

    def __init__(self, low: float, high: float) -> None:
        span = max(high - low, 1e-6 * max(abs(high), abs(low), 1.0), 1e-12)
        self.low = low
        self.step = span / _BINS
        self.bins = _BINS + 1  # one empty bin past the top so the curve reaches 0
        self.slope = np.zeros(self.bins)  # sum of c per bin
        self.offset = np.zeros(self.bins)  # sum of c * (p - lower edge) / step per bin
        self.steps = np.zeros(self.bins)
        self.volume = 0.0
        self.dose_integral = 0.0
        self._point_width = 1e-6 * span
        self.lowest = np.inf  # lowest and highest sample end, in bins from ``low``
        self.highest = -np.inf

    def _bin(self, position: FloatArray) -> IntArray:
        index = position.astype(np.intp)
        return np.clip(index, 0, self.bins - 1, out=index)

    def add(self, mean: FloatArray, width: FloatArray, weight: FloatArray) -> None:
        """Add samples: mean dose, width of the dose interval and volume each."""
        if mean.size == 0:
            return
        self.volume += float(weight.sum())
        self.dose_integral += float(mean @ weight)
        position = mean - self.low
        position /= self.step
        point = width <= self._point_width
        if point.any():
            np.add.at(self.steps, self._bin(position[point]), weight[point])
            self.lowest = min(self.lowest, float(position[point].min()))
            # A step is received up to its bin's upper edge: the curve must reach past it.
            self.highest = max(self.highest, float(np.floor(position[point].max())) + 1.0)
            ramp = ~point
            position, width, weight = position[ramp], width[ramp], weight[ramp]
            if position.size == 0:
                return
        coefficient = weight / width
        half = width * (0.5 / self.step)
        upper = position + half
        lower = position
        lower -= half
        self.lowest = min(self.lowest, float(lower.min()))
        self.highest = max(self.highest, float(upper.max()))
        for end, accumulate in ((upper, np.add), (lower, np.subtract)):
            index = self._bin(end)
            end -= index  # position within the bin
            end *= coefficient
            accumulate.at(self.slope, index, coefficient)
            accumulate.at(self.offset, index, end)

    def curve(self, dose_min: float, dose_max: float) -> tuple[FloatArray, FloatArray]:
        """Doses and the volume receiving at least each: the bin edges between the lowest
        and highest sample end (or ``dose_min``, ``dose_max``), and those two doses."""
        if not np.isfinite(self.lowest):
            return np.array([self.low, self.low + self.step]), np.zeros(2)
        index = np.arange(self.bins, dtype=np.float64)

        def suffix(values: FloatArray) -> FloatArray:
            return np.cumsum(values[::-1])[::-1]

        slope = self.slope
        cumulative = self.step * (
            suffix(self.offset) + suffix(slope * index) - index * suffix(slope)
        ) + suffix(self.steps)
        cumulative = np.minimum.accumulate(np.clip(cumulative, 0.0, None))
        ends = [self.lowest, self.highest]
        for dose in (dose_min, dose_max):
            if np.isfinite(dose):
                position = (dose - self.low) / self.step
                ends = [min(ends[0], position), max(ends[1], position)]
        first, last = (float(np.clip(end, 0.0, self.bins)) for end in ends)
        inner = np.arange(int(np.floor(first)) + 1, int(np.ceil(last)))
        axis = self.low + self.step * np.concatenate([[first], inner, [last]])
        return axis, np.concatenate([[cumulative[int(np.floor(first))]], cumulative[inner], [0.0]])


def _vertex_extremes(planes: list[_Plane], grid: DoseGrid, found: list[float]) -> list[float]:
    """Min and max dose at the contour vertices on both faces of the planes' slabs.

    Only planes that can beat the extremes ``found`` so far are evaluated: trilinear dose
    never leaves the range of the grid values around a plane's bounding box.
    """
    low = min(found) if found else np.inf
    high = max(found) if found else -np.inf
    planes_, rows, columns = grid.shape
    # Each plane's block of grid values: its slab's dose planes, its vertices' rows and
    # columns (all bounds at once, then one slice per plane).
    uv = np.concatenate([poly for plane in planes for poly in plane.polygons])
    starts = np.cumsum([0, *(sum(len(poly) for poly in plane.polygons) for plane in planes)])
    bounds = [
        np.clip(np.floor(reduce.reduceat(column, starts[:-1])) + shift, 0, size - 1)
        for column, size in ((uv[:, 0], columns), (uv[:, 1], rows))
        for reduce, shift in ((np.minimum, 0), (np.maximum, 1))
    ]
    faces = grid.plane_coordinate(np.array([plane.faces() for plane in planes]))
    bounds += [np.floor(faces[:, 0]), np.minimum(np.ceil(faces[:, 1]), planes_ - 1)]
    u_low, u_high, v_low, v_high, k_low, k_high = (b.astype(np.intp).tolist() for b in bounds)
    chosen = []
    for index, plane in enumerate(planes):
        block = grid.dose[
            k_low[index] : k_high[index] + 1,
            v_low[index] : v_high[index] + 1,
            u_low[index] : u_high[index] + 1,
        ]
        if block.size == 0 or block.min() < low or block.max() > high:
            chosen.append(plane)
    extremes: list[float] = []
    group: list[_Plane] = []
    points = 0
    for index, plane in enumerate(chosen):  # a few thousand vertices at a time
        group.append(plane)
        points += sum(len(poly) for poly in plane.polygons)
        if points >= _VERTEX_BATCH or index == len(chosen) - 1:
            extremes += _face_vertex_extremes(group, grid)
            group, points = [], 0
    return [min(extremes), max(extremes)] if extremes else []


#: Contour vertices whose face doses are evaluated at once.
_VERTEX_BATCH = 4096


def _face_vertex_extremes(planes: list[_Plane], grid: DoseGrid) -> list[float]:
    """Min and max dose at the vertices of ``planes`` on both faces of their slabs."""
    uv = np.concatenate([poly for plane in planes for poly in plane.polygons])
    counts = [sum(len(poly) for poly in plane.polygons) for plane in planes]
    u = np.concatenate([uv[:, 0], uv[:, 0]])
    v = np.concatenate([uv[:, 1], uv[:, 1]])
    w = np.concatenate(
        [
            np.repeat([plane.faces()[0] for plane in planes], counts),
            np.repeat([plane.faces()[1] for plane in planes], counts),
        ]
    )
    inside = grid.inside(u, v, w)
    if not inside.any():
        return []
    dose = grid.sample(u[inside], v[inside], w[inside])
    return [float(dose.min()), float(dose.max())]
