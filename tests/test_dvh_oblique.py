"""Oblique geometry: dose planes not parallel to the contours (resampled onto planes
parallel to them), oblique contours in an axial grid, and both oblique and parallel;
against the closed form of the solid sphere."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dvh_phantoms import (
    FloatArray,
    LinearDose,
    reference,
    roundtrip,
    rtdose_dataset,
    rtstruct_dataset,
    sphere,
)
from radpacs.errors import InvalidInput
from radpacs.rt import DVH, dvhs_from_datasets

TOLERANCE = 0.002  # the solid's closed form; see SOLID_TOLERANCE in test_dvh_phantoms
CENTRE = (1.0, -2.0, 3.0)
RADIUS = 10.0
STATISTICS = ("D99", "D95", "D50", "D5", "D1")


def _rotation(about_x: float, about_z: float) -> FloatArray:
    ax, az = math.radians(about_x), math.radians(about_z)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return np.asarray(rz @ rx, dtype=np.float64)


def _tilted_sphere(rotation: FloatArray, slice_mm: float) -> list[FloatArray]:
    """Sphere contours in the planes normal to ``rotation``'s third column, every
    ``slice_mm`` through the centre."""
    e1, e2, n = rotation[:, 0], rotation[:, 1], rotation[:, 2]
    count = math.floor((RADIUS - 1e-6) / slice_mm)
    angle = np.linspace(0.0, 2 * np.pi, 720, endpoint=False)
    contours = []
    for d in slice_mm * np.arange(-count, count + 1):
        r = math.sqrt(RADIUS**2 - d**2)
        ring = np.outer(np.cos(angle), e1) + np.outer(np.sin(angle), e2)
        contours.append(np.asarray(CENTRE) + d * n + r * ring)
    return contours


def _grid(rotation: FloatArray, spacing: float, half: float = 18.0) -> dict[str, object]:
    """A grid of orientation ``rotation`` centred on the sphere, 2 * half mm wide."""
    count = int(2 * half / spacing) + 1
    origin = np.asarray(CENTRE) - half * (rotation[:, 0] + rotation[:, 1] + rotation[:, 2])
    return {
        "origin": tuple(origin),
        "spacing": (spacing,) * 3,
        "shape": (count,) * 3,
        "orientation": tuple(rotation[:, 0]) + tuple(rotation[:, 1]),
    }


def _compare(dvh: DVH, dose: LinearDose) -> None:
    ref = reference(sphere(CENTRE, RADIUS, 2.0), dose)
    pairs = {"volume": (dvh.volume, ref.volume_cc), "mean": (dvh.dose_mean, ref.dose_mean)}
    for name in STATISTICS:
        value = dvh.statistic(name).value
        assert value is not None
        pairs[name] = (value, ref.dose_at(float(name[1:]) / 100))
    for name, (got, want) in pairs.items():
        assert got == pytest.approx(want, rel=TOLERANCE), name


AXIAL = np.eye(3)
OBLIQUE = _rotation(25.0, 35.0)


@pytest.mark.parametrize("axis", ["x", "z"])
def test_oblique_dose_grid_and_axial_contours(axis: str) -> None:
    dose = LinearDose(axis, offset=30.0, gradient=0.5, origin=CENTRE["xyz".index(axis)])
    rtdose = roundtrip(rtdose_dataset(dose, **_grid(OBLIQUE, 2.0)))  # type: ignore[arg-type]
    rtstruct = roundtrip(rtstruct_dataset([("s", sphere(CENTRE, RADIUS, 2.0).polygons())]))
    [dvh] = dvhs_from_datasets(rtstruct, rtdose)
    assert any("resampled" in warning for warning in dvh.warnings)
    _compare(dvh, dose)


@pytest.mark.parametrize("axis", ["x", "z"])
def test_oblique_contours_in_an_axial_grid(axis: str) -> None:
    dose = LinearDose(axis, offset=30.0, gradient=0.5, origin=CENTRE["xyz".index(axis)])
    rtdose = roundtrip(rtdose_dataset(dose, **_grid(AXIAL, 2.0)))  # type: ignore[arg-type]
    rtstruct = roundtrip(rtstruct_dataset([("s", _tilted_sphere(OBLIQUE, 2.0))]))
    [dvh] = dvhs_from_datasets(rtstruct, rtdose)
    assert any("resampled" in warning for warning in dvh.warnings)
    _compare(dvh, dose)


def test_oblique_contours_in_a_parallel_oblique_grid_need_no_resampling() -> None:
    dose = LinearDose("z", offset=30.0, gradient=0.5, origin=CENTRE[2])
    rtdose = roundtrip(rtdose_dataset(dose, **_grid(OBLIQUE, 2.5)))  # type: ignore[arg-type]
    rtstruct = roundtrip(rtstruct_dataset([("s", _tilted_sphere(OBLIQUE, 2.0))]))
    [dvh] = dvhs_from_datasets(rtstruct, rtdose)
    assert not any("resampled" in warning for warning in dvh.warnings)
    _compare(dvh, dose)


def test_contours_in_planes_that_are_not_parallel_are_refused() -> None:
    dose = LinearDose("z", offset=30.0, gradient=0.5, origin=CENTRE[2])
    rtdose = roundtrip(rtdose_dataset(dose, **_grid(AXIAL, 2.0)))  # type: ignore[arg-type]
    mixed = _tilted_sphere(OBLIQUE, 2.0)[:4] + _tilted_sphere(_rotation(-30.0, 0.0), 2.0)[5:]
    rtstruct = roundtrip(rtstruct_dataset([("s", mixed)]))
    with pytest.raises(InvalidInput, match="do not lie in parallel planes"):
        dvhs_from_datasets(rtstruct, rtdose)


def test_an_oblique_grid_that_misses_the_roi_is_refused() -> None:
    dose = LinearDose("z", offset=30.0, gradient=0.5, origin=CENTRE[2])
    small = rtdose_dataset(dose, **_grid(OBLIQUE, 2.0, half=6.0))  # type: ignore[arg-type]
    rtstruct = roundtrip(rtstruct_dataset([("s", sphere(CENTRE, RADIUS, 2.0).polygons())]))
    with pytest.raises(InvalidInput, match="does not cover ROI"):
        dvhs_from_datasets(rtstruct, roundtrip(small))
