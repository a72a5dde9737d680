"""Result writers: SEG and RTSTRUCT round trips, SRs, JSON for UIs, provenance everywhere."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from _ai_support import ball, dice, make_series
from radpacs.ai.geometry import Volume, volume_from_datasets
from radpacs.ai.provenance import Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.rtstruct import build_rtstruct, rtstruct_to_mask
from radpacs.ai.results.seg import build_seg, seg_to_label_map

PROVENANCE = Provenance("test-model", "1.2.3", "ab" * 32, parameters={"threshold": "0.5"})
SPACING = (0.9, 0.9, 2.0)


def _reread(ds: pydicom.Dataset) -> pydicom.Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _volume(orientation: str, shape: tuple[int, int, int] = (12, 48, 40)) -> Volume:
    return volume_from_datasets(
        make_series(np.zeros(shape, dtype=np.int16), orientation, spacing=SPACING)
    )


def _shapes(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A convex ball, and a thick ring (a ball with a cylindrical hole through it)."""
    convex = ball(shape, (6, 20, 15), 8.0, SPACING)
    ring = ball(shape, (6, 28, 24), 12.0, SPACING)
    k, j, i = np.indices(shape)
    hole = ((i - 24) * SPACING[0]) ** 2 + ((j - 28) * SPACING[1]) ** 2 <= 4.0**2
    ring &= ~hole
    return convex, ring


def _stamped(ds: pydicom.Dataset) -> None:
    [item] = [e for e in ds.ContributingEquipmentSequence if e.Manufacturer == "radpacs"]
    assert item.ManufacturerModelName == "test-model"
    assert "1.2.3" in item.SoftwareVersions
    assert "ab" * 32 in item.ContributionDescription


@pytest.mark.parametrize("orientation", ["axial", "sagittal"])
def test_mask_to_seg_to_mask(orientation: str) -> None:
    volume = _volume(orientation)
    convex, ring = _shapes(volume.array.shape)
    label_map = np.zeros(volume.array.shape, dtype=np.uint8)
    label_map[convex] = 1
    label_map[ring & ~convex] = 2
    labels = {1: Label.default("lesion", 1), 2: Label.default("ring", 2)}
    seg = _reread(build_seg(volume, label_map, labels, PROVENANCE))
    assert seg.Modality == "SEG"
    assert seg.FrameOfReferenceUID == volume.datasets[0].FrameOfReferenceUID
    _stamped(seg)
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "test-model"
    assert algorithm.AlgorithmVersion == "1.2.3"
    assert "ab" * 32 in algorithm.AlgorithmParameters
    back = seg_to_label_map(seg, volume)
    assert np.array_equal(back, label_map)
    assert back[6, 28, 24] == 0  # the hole stays a hole


@pytest.mark.parametrize("orientation", ["axial", "sagittal"])
def test_mask_to_rtstruct_to_mask(orientation: str) -> None:
    volume = _volume(orientation)
    convex, ring = _shapes(volume.array.shape)
    label_map = np.zeros(volume.array.shape, dtype=np.uint8)
    label_map[convex] = 1
    label_map[ring & ~convex] = 2
    labels = {1: Label.default("lesion", 1), 2: Label.default("ring", 2)}
    rtstruct = _reread(build_rtstruct(volume, label_map, labels, PROVENANCE))
    assert rtstruct.Modality == "RTSTRUCT"
    _stamped(rtstruct)
    # contour points lie in the plane of the image they reference
    slice_of = {uid: k for k, uid in enumerate(volume.sop_uids)}
    for contour in rtstruct.ROIContourSequence[0].ContourSequence:
        k = slice_of[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        assert np.allclose((points - volume.positions[k]) @ volume.normal, 0, atol=1e-3)
    lesion = rtstruct_to_mask(rtstruct, volume, "lesion")
    assert dice(lesion, label_map == 1) >= 0.98
    ring_back = rtstruct_to_mask(rtstruct, volume, 2)
    assert dice(ring_back, label_map == 2) >= 0.98
    assert not ring_back[6, 28, 24]  # the hole is kept (even-odd contours)
    ring_contours = rtstruct.ROIContourSequence[1].ContourSequence
    per_slice: dict[str, int] = {}
    for contour in ring_contours:
        uid = contour.ContourImageSequence[0].ReferencedSOPInstanceUID
        per_slice[uid] = per_slice.get(uid, 0) + 1
    assert max(per_slice.values()) >= 2  # outer boundary and hole boundary
