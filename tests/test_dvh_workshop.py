"""The rt-workshop benchmark (Nelms et al. 2015): every README metric within 1 %."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from radpacs.rt import DVH, StructureSet, dvhs_from_datasets

WORKSHOP = next(
    (
        parent / "shared" / "data" / "rt-workshop"
        for parent in Path(__file__).resolve().parents
        if (parent / "shared" / "data" / "rt-workshop").is_dir()
    ),
    Path("/work/shared/data/rt-workshop"),
)
COLUMNS = ("volume", "min", "max", "mean", "D99", "D95", "D5", "D1", "D0.03cc")
#: README table: volume in cm3, doses in cGy.
ANALYTICAL = {
    "sphere": ("Sphere_02_0", (7.23824, 390, 2810, 1600, 541, 724.5, 2475, 2658.5, 2709.5)),
    "cylinder": ("Cylinder_02_0", (10.94782, 390, 2810, 1600, 414, 510.5, 2689, 2785.5, 2803)),
    "cone": ("Cone_02_0", (3.66435, 390, 2810, 2207.47, 919, 1287.5, 2769, 2801.5, 2803)),
}


@pytest.fixture(scope="module")
def rtdose() -> pydicom.Dataset:
    return pydicom.dcmread(WORKSHOP / "rtdose.dcm")


@pytest.fixture(scope="module", params=sorted(ANALYTICAL))
def computed(request: pytest.FixtureRequest, rtdose: pydicom.Dataset) -> tuple[str, DVH]:
    shape = request.param
    rtstruct = pydicom.dcmread(WORKSHOP / f"rtstruct-{shape}.dcm")
    dvhs = dvhs_from_datasets(rtstruct, rtdose)
    assert [dvh.name for dvh in dvhs] == [ANALYTICAL[shape][0]]  # ROI 1 is a point: skipped
    return shape, dvhs[0]


@pytest.mark.parametrize("column", COLUMNS)
def test_metric_within_one_percent_of_analytical(computed: tuple[str, DVH], column: str) -> None:
    shape, dvh = computed
    expected = ANALYTICAL[shape][1][COLUMNS.index(column)]
    metric = dvh.statistic(column)
    assert metric.value is not None
    got = metric.value if column == "volume" else metric.value * 100.0  # Gy -> cGy
    assert got == pytest.approx(expected, rel=0.01), f"{shape} {column}: {got} vs {expected}"


def test_the_point_roi_without_contours_is_left_out_of_the_default() -> None:
    structures = StructureSet.from_dataset(pydicom.dcmread(WORKSHOP / "rtstruct-sphere.dcm"))
    point = structures.roi(1)
    assert point.name == "POI_1" and point.interpreted_type == "MARKER"
    assert not point.has_contours
    assert [roi.number for roi in structures.rois_with_contours()] == [2]


def test_curve_is_cumulative_from_zero_with_interpolated_statistics(
    computed: tuple[str, DVH],
) -> None:
    _, dvh = computed
    curve = dvh.curve(bin_width=0.01)
    assert curve.doses[0] == 0.0
    assert curve.doses[1] == pytest.approx(0.01)
    assert curve.volumes[0] == pytest.approx(dvh.volume)
    assert curve.volumes[-1] == 0.0
    assert all(a >= b for a, b in zip(curve.volumes, curve.volumes[1:], strict=False))
    # Interpolated, not read off a bin: D50 is not a multiple of the bin width here.
    d50 = dvh.statistic("D50").value
    assert d50 is not None
    assert dvh.volume_at_dose(d50) == pytest.approx(dvh.volume / 2, rel=1e-3)
    relative = dvh.curve(relative_volume=True)
    assert relative.volume_units == "%" and relative.volumes[0] == pytest.approx(100.0)
    differential = dvh.curve(kind="differential", bin_width=0.1)
    assert differential.volumes.sum() == pytest.approx(dvh.volume, rel=1e-6)
