"""Contour reading (holes, several contours per plane, skipped kinds) and bad input."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest

from dvh_phantoms import (
    LinearDose,
    box,
    roundtrip,
    rtdose_dataset,
    rtstruct_dataset,
    sphere,
)
from radpacs.errors import InvalidInput
from radpacs.rt import DoseGrid, StructureSet, dvhs_from_datasets

DOSE = LinearDose(axis="x", offset=30.0, gradient=0.5, origin=0.0)
GRID = {"origin": (-40.0, -40.0, -40.0), "spacing": (2.0, 2.0, 2.0), "shape": (41, 41, 41)}


def _dose(**changes: object) -> pydicom.Dataset:
    return roundtrip(rtdose_dataset(DOSE, **{**GRID, **changes}))  # type: ignore[arg-type]


def _square(half: float, z: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    return np.array(
        [
            [cx - half, cy - half, z],
            [cx + half, cy - half, z],
            [cx + half, cy + half, z],
            [cx - half, cy + half, z],
        ]
    )


def test_a_hole_is_cut_by_the_even_odd_rule() -> None:
    zs = [-4.0, -2.0, 0.0, 2.0, 4.0]  # 5 planes, 2 mm apart: 10 mm with end caps
    contours = [c for z in zs for c in (_square(10.0, z), _square(5.0, z))]
    [dvh] = dvhs_from_datasets(roundtrip(rtstruct_dataset([("ring", contours)])), _dose())
    assert dvh.volume == pytest.approx((20 * 20 - 10 * 10) * 10 / 1000.0, rel=1e-3)
    # Dose is symmetric in x: the mean is the offset, and the hole is not there.
    assert dvh.dose_mean == pytest.approx(30.0, abs=1e-3)
    assert dvh.volume_at_dose(30.0 + 0.5 * 5.0) == pytest.approx(5 * 20 * 10 / 1000.0, rel=1e-3)


def test_a_hole_drawn_in_the_same_orientation_is_still_a_hole() -> None:
    outer = _square(10.0, 0.0)
    inner = _square(5.0, 0.0)[::-1]  # reversed winding: even-odd does not care
    for contours in ([outer, _square(5.0, 0.0)], [outer, inner]):
        [dvh] = dvhs_from_datasets(roundtrip(rtstruct_dataset([("ring", contours)])), _dose())
        # A single plane takes the dose plane spacing (2 mm) as its thickness.
        assert dvh.volume == pytest.approx(300 * 2 / 1000.0, rel=1e-3)
        assert any("single contour plane" in warning for warning in dvh.warnings)


def test_several_contours_in_a_plane_add_up() -> None:
    zs = [-1.0, 1.0]
    contours = [c for z in zs for c in (_square(4.0, z, cx=-15.0), _square(4.0, z, cx=15.0))]
    [dvh] = dvhs_from_datasets(roundtrip(rtstruct_dataset([("pair", contours)])), _dose())
    assert dvh.volume == pytest.approx(2 * 64 * 4 / 1000.0, rel=1e-3)
    assert dvh.dose_min == pytest.approx(30.0 + 0.5 * (-19.0), abs=1e-6)
    assert dvh.dose_max == pytest.approx(30.0 + 0.5 * 19.0, abs=1e-6)
    # Half the volume gets 35.5 Gy or more: D50 is the top of the gap between the two.
    assert dvh.volume_at_dose(30.0) == pytest.approx(dvh.volume / 2, rel=1e-6)
    assert dvh.statistic("D50").value == pytest.approx(35.5, abs=1e-3)
    assert dvh.statistic("D75").value == pytest.approx(22.5, abs=1e-3)


def test_point_and_open_contours_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ball = sphere((0.0, 0.0, 0.0), 6.0, 2.0)
    extra = [
        ("marker", "POINT", [np.array([[1.0, 2.0, 3.0]])]),
        ("line", "OPEN_PLANAR", [_square(3.0, 0.0), _square(3.0, 2.0)]),
    ]
    rtstruct = roundtrip(rtstruct_dataset([("ball", ball.polygons())], extra=extra))
    with caplog.at_level(logging.WARNING, logger="radpacs.rt.rtstruct"):
        structures = StructureSet.from_dataset(rtstruct)
    assert structures.roi("marker").warnings == ("ROI 2 'marker': skipped 1 POINT contour",)
    assert structures.roi(3).warnings == ("ROI 3 'line': skipped 2 OPEN_PLANAR contours",)
    assert "skipped 2 OPEN_PLANAR contours" in caplog.text
    dvhs = dvhs_from_datasets(rtstruct, _dose())  # default: only ROIs with contours
    assert [dvh.name for dvh in dvhs] == ["ball"]
    with pytest.raises(InvalidInput, match=r"'line' \(ROI 3\) has no closed planar contours"):
        dvhs_from_datasets(rtstruct, _dose(), roi="line")


def test_roi_by_number_or_name() -> None:
    rtstruct = roundtrip(
        rtstruct_dataset([("PTV", box((0, 0, 0), (10, 10, 10), 2).polygons()), ("Cord", [])])
    )
    structures = StructureSet.from_dataset(rtstruct)
    assert structures.roi(1).name == "PTV"
    assert structures.roi("1").name == "PTV"
    assert structures.roi("ptv").number == 1
    with pytest.raises(InvalidInput, match=r"no ROI 'Lung'.*'PTV' \(ROI 1\), 'Cord' \(ROI 2\)"):
        structures.roi("Lung")
    with pytest.raises(InvalidInput, match="'Cord' \\(ROI 2\\) has no closed planar contours"):
        dvhs_from_datasets(rtstruct, _dose(), roi=2)


def _struct() -> pydicom.Dataset:
    return roundtrip(rtstruct_dataset([("box", box((0, 0, 0), (10, 10, 10), 2.0).polygons())]))


def test_different_frames_of_reference_are_refused() -> None:
    dose = _dose(frame_of_reference="1.2.3.4")
    with pytest.raises(InvalidInput, match=r"Frame of Reference .* but the dose is in 1\.2\.3\.4"):
        dvhs_from_datasets(_struct(), dose)


def test_a_non_rt_file_is_refused() -> None:
    ct = _dose()
    ct.Modality = "CT"
    ct.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    with pytest.raises(InvalidInput, match="not an RTDOSE \\(Modality CT"):
        dvhs_from_datasets(_struct(), ct)
    with pytest.raises(InvalidInput, match="not an RTSTRUCT \\(Modality CT"):
        dvhs_from_datasets(ct, _dose())


def test_missing_dose_grid_scaling_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no DoseGridScaling"):
        DoseGrid.from_dataset(_dose(scaling=None))


def test_a_grid_that_misses_part_of_the_roi_says_how_much() -> None:
    # The grid ends at x = -40 + 40 * 2 + 1 = 41 mm; a 20 mm cube centred at x = 41
    # has half of itself (4 cm3 of 8) outside.
    rtstruct = roundtrip(
        rtstruct_dataset([("edge", box((41.0, 0.0, 0.0), (20, 20, 20), 2.0).polygons())])
    )
    with pytest.raises(InvalidInput) as caught:
        dvhs_from_datasets(rtstruct, _dose())
    message = str(caught.value)
    assert "does not cover ROI 'edge' (ROI 1)" in message
    assert "4.000 cm3 of 8.000 cm3 (50.00 %) lies outside" in message


def test_a_structure_set_with_only_points_has_nothing_to_compute() -> None:
    rtstruct = roundtrip(
        rtstruct_dataset([], extra=[("marker", "POINT", [np.array([[0.0, 0.0, 0.0]])])])
    )
    with pytest.raises(InvalidInput, match="no ROI with closed planar contours"):
        dvhs_from_datasets(rtstruct, _dose())


def test_tilted_contours_are_resampled_and_non_planar_ones_refused() -> None:
    """Contours in planes not parallel to the dose planes: the dose is resampled onto
    planes parallel to them (tests/test_dvh_oblique.py measures the accuracy); a contour
    that is not planar is refused."""
    tilted = _square(5.0, 0.0)
    tilted[:, 2] = [0.0, 3.0, 3.0, 0.0]
    [dvh] = dvhs_from_datasets(roundtrip(rtstruct_dataset([("tilted", [tilted])])), _dose())
    assert any("resampled" in warning for warning in dvh.warnings)
    bent = _square(5.0, 0.0)
    bent[:, 2] = [0.0, 3.0, 0.0, 0.0]
    with pytest.raises(InvalidInput, match="is not planar"):
        dvhs_from_datasets(roundtrip(rtstruct_dataset([("bent", [bent])])), _dose())


def test_statistic_names_are_checked() -> None:
    [dvh] = dvhs_from_datasets(_struct(), _dose())
    with pytest.raises(InvalidInput, match="unknown DVH statistic 'Dmax2'"):
        dvh.statistic("Dmax2")
    with pytest.raises(InvalidInput, match="V95% needs a prescription"):
        dvh.statistic("V95%")
    assert dvh.statistic("D20cc").value is None  # larger than the 1 cm3 ROI
    v = dvh.statistic("V95%", prescription=30.0)
    assert v.unit == "cm3" and v.relative is not None
    assert v.relative == pytest.approx(100 * dvh.volume_at_dose(28.5) / dvh.volume)
    assert dvh.statistic("V2850cGy").value == pytest.approx(dvh.volume_at_dose(28.5))


def test_the_half_voxel_beyond_the_outer_plane_takes_the_edge_dose() -> None:
    # Dose 40 + z Gy on planes z = -20 .. 20; the box spans z = -20.5 .. -10.5 in 0.5 mm
    # slabs, so its first slab lies in the half voxel below the first plane, where the
    # dose stays 20 Gy, and the next one starts at that plane.
    dose = roundtrip(
        rtdose_dataset(
            LinearDose(axis="z", offset=40.0, gradient=1.0, origin=0.0),
            (-20.0, -20.0, -20.0),
            (2.0, 2.0, 2.0),
            (21, 21, 21),
        )
    )
    rtstruct = roundtrip(
        rtstruct_dataset([("low", box((0.0, 0.0, -15.5), (10.0, 10.0, 10.0), 0.5).polygons())])
    )
    [dvh] = dvhs_from_datasets(rtstruct, dose)
    assert dvh.volume == pytest.approx(1.0, rel=1e-6)
    assert dvh.dose_min == pytest.approx(20.0, abs=1e-6)
    assert dvh.dose_max == pytest.approx(29.5, abs=1e-6)
    expected_mean = (0.5 * 20.0 + 9.5 * (20.0 + 29.5) / 2) / 10.0
    assert dvh.dose_mean == pytest.approx(expected_mean, abs=1e-6)
    # 5 % of the volume sits at exactly 20 Gy: V(20.001 Gy) is part of the other 95 %.
    assert dvh.volume_at_dose(20.001) == pytest.approx(0.95 * (29.5 - 20.001) / 9.5, rel=1e-3)


def test_a_grid_stored_flipped_gives_the_same_dvh() -> None:
    # The same dose stored with rows, columns and frames reversed: orientation
    # -1\0\0\0\-1\0, origin at the far corner, decreasing relative frame offsets.
    dose = LinearDose(axis="x", offset=30.0, gradient=0.5, origin=0.0)
    origin, spacing, shape = (-40.0, -40.0, -40.0), (2.0, 2.0, 2.0), (41, 41, 41)
    plain = rtdose_dataset(dose, origin, spacing, shape)
    flipped = rtdose_dataset(dose, origin, spacing, shape)
    values = np.frombuffer(plain.PixelData, dtype="<u4").reshape(shape)
    flipped.PixelData = np.ascontiguousarray(values[::-1, ::-1, ::-1]).tobytes()
    flipped.ImagePositionPatient = [40.0, 40.0, 40.0]
    flipped.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
    flipped.GridFrameOffsetVector = [-2.0 * k for k in range(shape[0])]
    ball = sphere((3.0, -2.0, 1.0), 9.0, 2.0)
    rtstruct = roundtrip(rtstruct_dataset([("ball", ball.polygons())]))
    [a] = dvhs_from_datasets(rtstruct, roundtrip(plain))
    [b] = dvhs_from_datasets(rtstruct, roundtrip(flipped))
    assert b.volume == pytest.approx(a.volume, rel=1e-9)
    assert b.dose_mean == pytest.approx(a.dose_mean, rel=1e-9)
    assert b.dose_min == pytest.approx(a.dose_min, rel=1e-9)
    for name in ("D95", "D50", "D2"):
        assert b.statistic(name).value == pytest.approx(a.statistic(name).value, rel=1e-6)


@pytest.mark.parametrize(
    "texts",
    [
        ["-10", "-10.0", "0", "10.000000", "-1.0E1", "0", "10", "1e1", "0", "-10", "10", "0"],
        ["-10.", "-10", "+0", "+10", "-10.", "0", ".1E2", "10.", "-0", "-10", "1E+1", "0."],
    ],
    ids=["json-like", "ds-only-forms"],
)
def test_contour_data_in_any_decimal_string_form(texts: list[str]) -> None:
    ds = rtstruct_dataset([("square", [_square(10.0, 0.0)])])
    ds.ROIContourSequence[0].ContourSequence[0].ContourData = texts
    [roi] = StructureSet.from_dataset(roundtrip(ds)).rois
    np.testing.assert_array_equal(roi.contours[0], _square(10.0, 0.0))
