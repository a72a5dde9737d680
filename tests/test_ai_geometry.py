"""Volumes from series: order along the normal, real spacing, voxel-to-patient affine."""

from __future__ import annotations

import numpy as np
import pytest

from _ai_support import make_series
from radpacs.ai.geometry import volume_from_datasets
from radpacs.errors import InvalidInput


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal"])
def test_slices_follow_the_normal_and_the_affine_maps_to_positions(orientation: str) -> None:
    array = np.arange(6 * 8 * 10, dtype=np.int16).reshape(6, 8, 10)
    datasets = make_series(array, orientation, spacing=(0.8, 0.7, 2.5))
    volume = volume_from_datasets(datasets)
    assert np.array_equal(volume.array, array)  # reordered by position, not InstanceNumber
    assert volume.spacing == pytest.approx((0.8, 0.7, 2.5))
    for k, ds in enumerate(volume.datasets):
        assert volume.voxel_to_patient([0, 0, k])[0] == pytest.approx(
            [float(v) for v in ds.ImagePositionPatient], abs=1e-3
        )
    # voxel (i=3, j=2) lies 3 columns along the row direction and 2 rows down the column one
    ds0 = volume.datasets[0]
    row = np.asarray(ds0.ImageOrientationPatient[:3], dtype=float)
    col = np.asarray(ds0.ImageOrientationPatient[3:], dtype=float)
    expected = np.asarray(ds0.ImagePositionPatient, dtype=float) + 3 * 0.8 * row + 2 * 0.7 * col
    assert volume.voxel_to_patient([3, 2, 0])[0] == pytest.approx(expected)
    assert volume.patient_to_voxel(expected)[0] == pytest.approx([3, 2, 0])
    assert np.linalg.det(volume.affine[:3, :3]) > 0  # i, j, normal form a right-handed frame


def test_spacing_comes_from_positions_not_the_thickness_attribute() -> None:
    datasets = make_series(np.zeros((4, 4, 4), dtype=np.int16), spacing=(1, 1, 3.0))
    for ds in datasets:
        ds.SliceThickness = 1.0
        ds.SpacingBetweenSlices = 1.0
    assert volume_from_datasets(datasets).spacing[2] == pytest.approx(3.0)


def test_mixed_orientations_and_shared_positions_are_refused() -> None:
    datasets = make_series(np.zeros((3, 4, 4), dtype=np.int16))
    datasets[0].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    with pytest.raises(InvalidInput, match="orientation"):
        volume_from_datasets(datasets)
    datasets = make_series(np.zeros((3, 4, 4), dtype=np.int16))
    datasets[1].ImagePositionPatient = datasets[0].ImagePositionPatient
    with pytest.raises(InvalidInput, match="position"):
        volume_from_datasets(datasets)
