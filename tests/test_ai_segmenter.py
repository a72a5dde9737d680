"""The classical segmenter on phantoms with known volumes: focal lesions and windows.

Spheres carry partial volume (as a scanner's voxels do) and Gaussian noise; volumes are
compared with 4/3 pi r^3. Speed is measured in bench/segmenter_bench.py, not here.
"""

from __future__ import annotations

import numpy as np
import pytest

from _ai_support import body_phantom, make_series
from radpacs.ai.builtin.segmenter import ClassicalSegmenter
from radpacs.ai.interface import SeriesInput
from radpacs.errors import InvalidInput


def _volumes(
    array: np.ndarray,
    orientation: str,
    spacing_kji: tuple[float, float, float],
    parameters: dict[str, object],
) -> list[float]:
    """Run the model on a real series (files, positions) and give each label's volume (mm3)."""
    spacing = (spacing_kji[2], spacing_kji[1], spacing_kji[0])
    series = SeriesInput(make_series(array, orientation, spacing=spacing))
    result = ClassicalSegmenter().run(series, lambda f: None, parameters)
    assert result.label_map is not None
    voxel = float(np.prod(series.volume.spacing))
    return [float((result.label_map == v).sum()) * voxel for v in sorted(result.labels)]


def _four_spheres(
    spacing_kji: tuple[float, float, float], tissue: float, lesion: float, noise: float
) -> tuple[np.ndarray, list[float]]:
    """Spheres of 5, 10, 15 and 20 mm radius in a 100 x 160 x 160 mm body."""
    shape = (round(100 / spacing_kji[0]), round(160 / spacing_kji[1]), round(160 / spacing_kji[2]))
    spheres = [
        ((50.0, 80 + dj, 80 + di), radius, lesion)
        for radius, (dj, di) in zip(
            (5, 10, 15, 20), ((-35, -35), (35, 35), (-35, 35), (35, -35)), strict=True
        )
    ]
    return body_phantom(shape, spacing_kji, tissue, noise, spheres)


@pytest.mark.parametrize(
    ("orientation", "spacing_kji", "polarity", "tissue", "lesion", "noise"),
    [
        ("axial", (2.5, 0.8, 0.8), "bright", 40, 140, 15),
        ("sagittal", (2.0, 1.0, 1.0), "dark", 60, 10, 10),
    ],
)
def test_focal_lesions_of_5_to_20_mm_radius_within_5_percent(
    orientation: str,
    spacing_kji: tuple[float, float, float],
    polarity: str,
    tissue: float,
    lesion: float,
    noise: float,
) -> None:
    array, truths = _four_spheres(spacing_kji, tissue, lesion, noise)
    found = _volumes(array, orientation, spacing_kji, {"polarity": polarity})
    assert len(found) == 4  # the four lesions, not the body nor the air around it
    for got, truth in zip(found, sorted(truths, reverse=True), strict=True):
        assert got == pytest.approx(truth, rel=0.05)


def test_polarity_decides_which_lesions_are_found() -> None:
    array, _ = _four_spheres((2.0, 1.0, 1.0), 60, 10, 10)  # dark lesions only
    assert _volumes(array, "axial", (2.0, 1.0, 1.0), {"polarity": "bright"}) == []
    with pytest.raises(InvalidInput, match="polarity"):
        _volumes(array, "axial", (2.0, 1.0, 1.0), {"polarity": "sideways"})


def _issue_phantom() -> tuple[np.ndarray, list[float]]:
    """Issue 17's figures: water-like body at 40 HU in air, lesions at 180 HU of 2,145 and
    524 mm3 (radius 8 and 5 mm)."""
    spacing_kji = (2.0, 0.8, 0.8)
    spheres = [((40.0, 40.0, 40.0), 8.0, 180.0), ((40.0, 60.0, 64.0), 5.0, 180.0)]
    return body_phantom((40, 160, 160), spacing_kji, 40, 10, spheres, seed=1)


def test_defaults_find_the_lesions_not_the_body() -> None:
    array, truths = _issue_phantom()
    assert [round(t) for t in truths] == [2145, 524]
    found = _volumes(array, "axial", (2.0, 0.8, 0.8), {})
    assert len(found) == 2
    for got, truth in zip(found, truths, strict=True):
        assert got == pytest.approx(truth, rel=0.05)


def test_a_lesion_cut_by_the_last_slice_is_still_reported() -> None:
    array, truths = _issue_phantom()
    found = _volumes(array[:21], "axial", (2.0, 0.8, 0.8), {})  # slices up to the centre
    assert len(found) == 2
    # half of the 8 mm sphere, plus the far half of the slice through its centre (1 mm)
    assert found[0] == pytest.approx(truths[0] / 2 + np.pi * 8.0**2 * 1.0, rel=0.05)


@pytest.mark.parametrize(
    ("parameters", "tolerance"),
    [
        # the half-way level between body and lesion: the true boundary
        ({"lower": 110, "upper": 1000}, 0.05),
        # lower alone once widened by 0.1 x the image's range (118 HU) into the body;
        # a window below half-way sits outside the true boundary, so a little larger
        ({"lower": 100}, 0.10),
        ({"lower": 100, "upper": 300}, 0.10),
        ({"lower": 100, "hysteresis": 0.1}, 0.10),
    ],
)
def test_window_hysteresis_stays_out_of_the_body(
    parameters: dict[str, object], tolerance: float
) -> None:
    array, truths = _issue_phantom()
    found = _volumes(array, "axial", (2.0, 0.8, 0.8), parameters)
    assert len(found) == 2
    for got, truth in zip(found, truths, strict=True):
        assert got == pytest.approx(truth, rel=tolerance)


def test_window_must_be_ordered() -> None:
    array, _ = _issue_phantom()
    with pytest.raises(InvalidInput, match="upper"):
        _volumes(array, "axial", (2.0, 0.8, 0.8), {"lower": 300, "upper": 100})
