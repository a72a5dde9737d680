"""Lesion matching between two timepoints: optimal assignment under a distance gate.

Within one frame of reference (the same FrameOfReferenceUID: the same scanner coordinates,
or registered), positions compare as they are: the cost of pairing a lesion with a finding
is the distance between their centroids (mm), and pairs farther apart than the gate are
never made. The gate is ``max(GATE_MM, GATE_DIAMETERS x the larger longest diameter)``:
15 mm, or one lesion diameter for large lesions, which follows a lesion that grows around
its centre but not a neighbour 2 cm away.

Across frames of reference (two visits on different scanners or days are not registered)
the method is registration-free: each centroid is taken relative to the centre of the
body in its image (the bounding box of the voxels above the body threshold, the "anchor"),
so that a different table position or field of view cancels out. Rotations, breathing and
weight change do not; the gate is widened by ``CROSS_FRAME_FACTOR`` and such links are
flagged ``low`` confidence for a reader to check. Without an anchor, raw positions are
compared (also ``low``).

The assignment minimises the total distance (Hungarian algorithm,
:func:`scipy.optimize.linear_sum_assignment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CROSS_FRAME_FACTOR", "GATE_DIAMETERS", "GATE_MM", "Link", "Point", "match"]

GATE_MM = 15.0
GATE_DIAMETERS = 1.0
CROSS_FRAME_FACTOR = 1.5


@dataclass(frozen=True)
class Point:
    """What matching needs of a lesion or finding."""

    centroid: tuple[float, float, float] | None
    frame_of_reference: str
    anchor: tuple[float, float, float] | None
    diameter: float


@dataclass(frozen=True)
class Link:
    """Previous item ``a`` is the same lesion as current item ``b``."""

    a: int
    b: int
    distance_mm: float
    confidence: str  # "high" (same frame of reference) or "low"


def _cost(p: Point, q: Point) -> tuple[float, float, str] | None:
    if p.centroid is None or q.centroid is None:
        return None
    gate = max(GATE_MM, GATE_DIAMETERS * max(p.diameter, q.diameter))
    a, b = np.asarray(p.centroid), np.asarray(q.centroid)
    if p.frame_of_reference and p.frame_of_reference == q.frame_of_reference:
        return float(np.linalg.norm(a - b)), gate, "high"
    if p.anchor is not None and q.anchor is not None:
        a, b = a - np.asarray(p.anchor), b - np.asarray(q.anchor)
    return float(np.linalg.norm(a - b)), gate * CROSS_FRAME_FACTOR, "low"


def match(previous: Sequence[Point], current: Sequence[Point]) -> list[Link]:
    """Optimal one-to-one links between two sets under the gate (see the module)."""
    if not previous or not current:
        return []
    from scipy.optimize import linear_sum_assignment

    big = 1e9
    cost = np.full((len(previous), len(current)), big)
    info: dict[tuple[int, int], tuple[float, str]] = {}
    for i, p in enumerate(previous):
        for j, q in enumerate(current):
            found = _cost(p, q)
            if found is not None and found[0] <= found[1]:
                cost[i, j] = found[0]
                info[(i, j)] = (found[0], found[2])
    rows, cols = linear_sum_assignment(cost)
    return [
        Link(int(i), int(j), info[(i, j)][0], info[(i, j)][1])
        for i, j in zip(rows, cols, strict=True)
        if (i, j) in info
    ]
