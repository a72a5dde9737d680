"""The shape of an ROI between its contour planes and beyond its end contours.

A stack of contours samples a smooth surface; extruding each contour unchanged over its
slab (a stack of prisms) misplaces the volume wherever the cross-section changes, most at
the rounded ends of a structure, where a dose gradient along the normal turns that into
D99/D1 errors of up to 20 % on 2-3 mm contours. Here, between two planes that each hold
one star-shaped contour, the cross-section is interpolated: each contour is described by
its centroid and the squared distance ``q(theta)`` from it to its outline along rays at
fixed angles; ``q`` is interpolated along the normal by a cubic Hermite with three-point
tangents (exact for quadrics: the sections of spheres, cylinders, cones and ellipsoids),
the centroid linearly, and the result is laid down as thin intermediate planes.

Beyond an end contour the same extrapolation (never growing) says where the surface
closes: if it closes within one plane spacing, the end is rounded and the ROI tapers to
that point; otherwise the end is flat and gets the half-slice prism cap of Nelms et al.
(Med. Phys. 42(8), 2015). Planes with several contours or a contour that is not
star-shaped about its centroid keep the prism convention.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Plane", "refine"]

FloatArray = npt.NDArray[np.float64]

#: Rays per contour for the radial description.
RAYS = 360
#: Largest change (mm) of a contour's radius between two successive thin planes.
RADIUS_STEP_MM = 0.05
#: At most this many thin planes in one gap or one tapered cap.
MAX_STEPS = 60
#: Thin planes are at least this far apart (mm).
MIN_STEP_MM = 0.1
#: Contour planes closer than this (mm) are not interpolated between: there the prisms are
#: already within 0.01 % (the 0.2 mm sets of Nelms et al.).
FINE_GAP_MM = 0.25


@dataclass
class Plane:
    """One plane of an ROI: position ``w`` along the normal (mm), its polygons in grid
    ``(u, v)`` coordinates, its slab ``[low, high]`` and the faces ``reach`` at which its
    vertices bound Dmin and Dmax (the slab, or for a tapered end contour the half-slice
    face of the prism convention)."""

    w: float
    polygons: list[FloatArray]
    low: float = 0.0
    high: float = 0.0
    reach: tuple[float, float] | None = field(default=None)

    def faces(self) -> tuple[float, float]:
        """The faces at which the vertices are evaluated for Dmin and Dmax."""
        return self.reach if self.reach is not None else (self.low, self.high)


@dataclass(frozen=True)
class _Radial:
    centre: FloatArray  # (2,) centroid in mm
    outline: FloatArray  # (RAYS, 2) outline points at _ANGLES, relative to the centroid
    cov: FloatArray  # (2, 2) second moments of the area about the centroid, mm2


def refine(planes: list[Plane], typical: float, spacing: tuple[float, float]) -> list[Plane]:
    """Planes with slabs set (prism convention) refined as described in the module
    docstring; ``spacing`` is the (column, row) size of a grid unit in mm."""
    if len(planes) < 2:
        return planes
    scale = np.array(spacing, dtype=np.float64)
    radial = _Lazy(planes, scale)
    result: list[Plane] = []
    runs = _runs(planes)
    for start, stop in runs:
        run = planes[start:stop]
        desc = radial.view(start, stop)
        ws = np.array([plane.w for plane in run])
        stations: list[tuple[float, list[FloatArray] | None, Plane | None]] = []
        low_end = _cap(run, desc, ws, typical, scale, lower=True)
        high_end = _cap(run, desc, ws, typical, scale, lower=False)
        for j, plane in enumerate(run):
            stations.append((plane.w, None, plane))
            if j + 1 < len(run):
                stations += _gap(desc, ws, j, scale)
        cap_low, bottom = low_end
        cap_high, top = high_end
        stations = cap_low[::-1] + stations + cap_high
        positions = np.array([station[0] for station in stations])
        middles = 0.5 * (positions[1:] + positions[:-1])
        bounds = np.concatenate([[bottom], middles, [top]])
        for index, (w, polygons, original) in enumerate(stations):
            if original is not None:
                reach = (original.low, original.high)
                plane = Plane(original.w, original.polygons, bounds[index], bounds[index + 1])
                if (plane.low, plane.high) != reach:
                    plane.reach = (min(reach[0], plane.low), max(reach[1], plane.high))
            else:
                assert polygons is not None
                plane = Plane(w, polygons, bounds[index], bounds[index + 1])
            result.append(plane)
    return result


class _Lazy:
    """Radial descriptions made on first use (most gaps need none)."""

    def __init__(self, planes: list[Plane], scale: FloatArray) -> None:
        self.planes, self.scale = planes, scale
        self.cache: dict[int, _Radial | None] = {}

    def __getitem__(self, index: int) -> _Radial | None:
        if index not in self.cache:
            self.cache[index] = _describe(self.planes[index], self.scale)
        return self.cache[index]

    def view(self, start: int, stop: int) -> _View:
        return _View(self, start, stop)


class _View:
    """Planes ``start:stop`` of a :class:`_Lazy`, indexed from 0, with the bounding-box
    change between neighbours (mm) to skip gaps where the contour hardly changes."""

    def __init__(self, lazy: _Lazy, start: int, stop: int) -> None:
        self.lazy, self.start, self.stop = lazy, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> _Radial | None:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.lazy[self.start + index]

    def __iter__(self) -> Iterator[_Radial | None]:
        return (self[index] for index in range(len(self)))

    def box_change(self, j: int) -> float:
        """Largest move of a bounding-box side between planes ``j`` and ``j + 1`` (mm)."""
        first, second = (self.lazy.planes[self.start + k] for k in (j, j + 1))
        boxes = []
        for plane in (first, second):
            points = np.concatenate(plane.polygons) * self.lazy.scale
            boxes.append(np.concatenate([points.min(axis=0), points.max(axis=0)]))
        return float(np.abs(boxes[1] - boxes[0]).max())

    def single(self, index: int) -> bool:
        polygons = self.lazy.planes[self.start + index].polygons
        return len(polygons) == 1 and len(polygons[0]) >= 3


def _runs(planes: list[Plane]) -> list[tuple[int, int]]:
    """Index ranges of planes whose slabs touch (an ROI split by wide gaps has several)."""
    runs, start = [], 0
    for index in range(1, len(planes)):
        if abs(planes[index].low - planes[index - 1].high) > 1e-9:
            runs.append((start, index))
            start = index
    runs.append((start, len(planes)))
    return runs


def _describe(plane: Plane, scale: FloatArray) -> _Radial | None:
    """The radial description of a plane's single contour, or None when the plane has
    several contours or its contour is not star-shaped about its centroid (its vertices'
    angles about the centroid must turn once, monotonically)."""
    if len(plane.polygons) != 1 or len(plane.polygons[0]) < 3:
        return None
    points = plane.polygons[0] * scale
    centre, cov = _moments(points)
    if not np.all(np.isfinite(cov)) or np.linalg.eigvalsh(cov).min() <= 0.0:
        return None
    if _signed_area(points) < 0.0:
        points = points[::-1]
    offset = points - centre
    turn = np.diff(
        np.arctan2(offset[:, 1], offset[:, 0]), append=np.arctan2(offset[0, 1], offset[0, 0])
    )
    turn = np.mod(turn + np.pi, 2 * np.pi) - np.pi
    if np.any(turn <= 0.0) or abs(float(turn.sum()) - 2 * np.pi) > 1e-6:
        return None
    start = float(np.arctan2(offset[0, 1], offset[0, 0]))
    vertex = start + np.concatenate([[0.0], np.cumsum(turn)])  # vertex i at vertex[i]
    ray = start + np.mod(_ANGLES - start, 2 * np.pi)
    edge = np.clip(np.searchsorted(vertex, ray, side="right") - 1, 0, len(points) - 1)
    a = offset[edge]
    b = offset[(edge + 1) % len(points)]
    e = b - a
    direction = np.column_stack([np.cos(ray), np.sin(ray)])
    t = (a[:, 0] * e[:, 1] - a[:, 1] * e[:, 0]) / (
        direction[:, 0] * e[:, 1] - direction[:, 1] * e[:, 0]
    )
    return _Radial(centre, direction * t[:, None], cov)


def _signed_area(points: FloatArray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum())


def _slope(values: list[FloatArray], ws: FloatArray, j: int) -> FloatArray:
    """d value / d w at plane ``j`` from its neighbours, exact for quadratics."""
    n = len(values)
    if 0 < j < n - 1:
        h0, h1 = ws[j] - ws[j - 1], ws[j + 1] - ws[j]
        return np.asarray(
            -h1 / (h0 * (h0 + h1)) * values[j - 1]
            + (h1 - h0) / (h0 * h1) * values[j]
            + h0 / (h1 * (h0 + h1)) * values[j + 1]
        )
    k = 1 if j == 0 else -1
    if n == 2:
        return np.asarray((values[j + k] - values[j]) / (ws[j + k] - ws[j]))
    return _one_sided(
        values[j], values[j + k], values[j + 2 * k], ws[j + k] - ws[j], ws[j + 2 * k] - ws[j]
    )


def _one_sided(q0: FloatArray, q1: FloatArray, q2: FloatArray, a: float, b: float) -> FloatArray:
    """Derivative at 0 of the parabola through (0, q0), (a, q1), (b, q2)."""
    return np.asarray(
        -(a + b) / (a * b) * q0 + b / (a * (b - a)) * q1 - a / (b * (b - a)) * q2,
        dtype=np.float64,
    )


def _gap(
    desc: _View, ws: FloatArray, j: int, scale: FloatArray
) -> list[tuple[float, list[FloatArray] | None, Plane | None]]:
    """Thin planes strictly between planes ``j`` and ``j + 1``.

    The second moments are interpolated by a cubic Hermite (three-point tangents, from the
    neighbours that have a radial description); each of the two contours is mapped by the
    linear map that gives it those moments, and their squared radii are blended linearly.
    """
    if ws[j + 1] - ws[j] < FINE_GAP_MM or not (desc.single(j) and desc.single(j + 1)):
        return []
    if desc.box_change(j) < RADIUS_STEP_MM / 2:
        return []
    first, second = desc[j], desc[j + 1]
    if first is None or second is None:
        return []
    q0, q1 = _radii2(first.outline), _radii2(second.outline)
    change = float(np.abs(np.sqrt(q1) - np.sqrt(q0)).max())
    change += float(np.hypot(*(second.centre - first.centre)))
    gap = ws[j + 1] - ws[j]
    steps = min(MAX_STEPS, math.ceil(change / RADIUS_STEP_MM), math.floor(gap / MIN_STEP_MM))
    if steps <= 1:
        return []
    lo, hi = max(j - 1, 0), min(j + 2, len(desc) - 1)  # neighbours for the tangents
    while not desc.single(lo):
        lo += 1
    while not desc.single(hi):
        hi -= 1
    planes = desc.lazy.planes[desc.start + lo : desc.start + hi + 1]
    covs = [_moments(plane.polygons[0] * scale)[1] for plane in planes]
    local = ws[lo : hi + 1]
    m0 = _slope(covs, local, j - lo)
    m1 = _slope(covs, local, j + 1 - lo)
    root0, root1 = _root(first.cov, inverse=True), _root(second.cov, inverse=True)
    result: list[tuple[float, list[FloatArray] | None, Plane | None]] = []
    for step in range(1, steps):
        t = step / steps
        h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
        h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
        cov = h00 * first.cov + h10 * gap * m0 + h01 * second.cov + h11 * gap * m1
        target = _root(cov)
        q = (1 - t) * _radii2(first.outline @ (target @ root0).T) + t * _radii2(
            second.outline @ (target @ root1).T
        )
        centre = (1 - t) * first.centre + t * second.centre
        result.append((float(ws[j] + t * gap), [_polygon(centre, q, scale)], None))
    return result


def _root(cov: FloatArray, inverse: bool = False) -> FloatArray:
    """The symmetric square root of a 2x2 covariance (or of its inverse)."""
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    values = np.clip(values, 1e-12, None)
    power = -0.5 if inverse else 0.5
    return np.asarray((vectors * values**power) @ vectors.T)


def _radii2(points: FloatArray) -> FloatArray:
    """Squared radius at each of :data:`_ANGLES` of a star-shaped outline about 0."""
    angle = np.mod(np.arctan2(points[:, 1], points[:, 0]), 2 * np.pi)
    order = np.argsort(angle)
    r2 = np.sum(points * points, axis=1)
    return np.asarray(np.interp(_ANGLES, angle[order], r2[order], period=2 * np.pi))


def _cap(
    run: list[Plane],
    desc: _View,
    ws: FloatArray,
    typical: float,
    scale: FloatArray,
    lower: bool,
) -> tuple[list[tuple[float, list[FloatArray] | None, Plane | None]], float]:
    """Thin planes beyond one end of a run (outward order) and the run's outer bound there.

    The end contour's second moments along its own principal axes are extrapolated
    outward by the parabola through the last three planes (clipped: a cap never grows);
    where one of them reaches 0 within one plane spacing the surface closes there, and the
    cap is the end contour shrunk along those axes (exact for the sections of spheres,
    cylinders lying across the planes, cones and ellipsoids). Otherwise the end is flat.
    """
    end = 0 if lower else len(run) - 1
    step_in = 1 if lower else -1
    prism = run[end].low if lower else run[end].high
    if len(run) < 3 or not all(desc.single(end + step_in * i) for i in range(3)):
        return [], prism
    moments = [_moments(run[end + step_in * i].polygons[0] * scale) for i in range(3)]
    (c0, cov0), (c1, cov1), (_, cov2) = moments
    values, axes = np.linalg.eigh(cov0)
    if values.min() <= 0.0:
        return [], prism
    lam = np.array(
        [[axes[:, k] @ cov @ axes[:, k] for k in range(2)] for cov in (cov0, cov1, cov2)]
    )
    a = abs(ws[end + step_in] - ws[end])
    b = abs(ws[end + 2 * step_in] - ws[end])
    slope = _one_sided(lam[0], lam[1], lam[2], -a, -b)
    curve = (lam[1] - lam[0] + slope * a) / (a * a)

    def extrapolate(d: float) -> FloatArray:
        return np.asarray(np.clip(lam[0] + slope * d + curve * d * d, 0.0, lam[0]))

    limit = typical * (1 + 1e-6)
    if extrapolate(limit).min() > 0.0:
        return [], prism  # a flat end: the half-slice prism cap
    low, high = 0.0, limit  # the closing distance, by bisection
    for _ in range(60):
        middle = 0.5 * (low + high)
        if extrapolate(middle).min() > 0.0:
            low = middle
        else:
            high = middle
    reach = high
    points = run[end].polygons[0] * scale
    radius = float(np.sqrt(np.sum((points - c0) ** 2, axis=1)).max())
    steps = min(MAX_STEPS, math.ceil(radius / RADIUS_STEP_MM), math.floor(reach / MIN_STEP_MM))
    steps = max(steps, 1)
    thickness = reach / (steps + 0.5)
    drift = (c0 - c1) / a
    sign = -1.0 if lower else 1.0
    stations: list[tuple[float, list[FloatArray] | None, Plane | None]] = []
    for step in range(1, steps + 1):
        d = step * thickness
        shrink = np.sqrt(extrapolate(d) / lam[0])
        transform = (axes * shrink) @ axes.T
        outline = c0 + drift * d + (points - c0) @ transform.T
        stations.append((float(ws[end] + sign * d), [outline / scale], None))
    return stations, float(ws[end] + sign * reach)


def _moments(points: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Centroid and second-moment (covariance) matrix of a polygon's area, in mm."""
    x, y = points[:, 0], points[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = 0.5 * float(cross.sum())
    cx = float(((x + xn) * cross).sum()) / (6 * area)
    cy = float(((y + yn) * cross).sum()) / (6 * area)
    sxx = float(((x * x + x * xn + xn * xn) * cross).sum()) / (12 * area) - cx * cx
    syy = float(((y * y + y * yn + yn * yn) * cross).sum()) / (12 * area) - cy * cy
    sxy = float(((x * yn + 2 * x * y + 2 * xn * yn + xn * y) * cross).sum()) / (24 * area) - cx * cy
    return np.array([cx, cy]), np.array([[sxx, sxy], [sxy, syy]])


def _polygon(centre: FloatArray, q: FloatArray, scale: FloatArray) -> FloatArray:
    """The outline with squared radii ``q`` around ``centre`` (mm), in grid units."""
    angle = _ANGLES
    radius = np.sqrt(np.clip(q, 0.0, None))
    points = np.column_stack(
        [centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)]
    )
    return np.asarray(points / scale, dtype=np.float64)


#: Ray angles, offset so that no ray runs along the axes or through a regular polygon's
#: vertices.
_ANGLES = 2 * np.pi * (np.arange(RAYS) + 0.318309886) / RAYS
