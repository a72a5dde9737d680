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
    _, j, i = np.indices(shape)
    hole = ((i - 24) * SPACING[0]) ** 2 + ((j - 28) * SPACING[1]) ** 2 <= 4.0**2
    ring &= ~hole
    return convex, ring


def _stamped(ds: pydicom.Dataset) -> None:
    [item] = [
        e
        for e in ds.ContributingEquipmentSequence
        if "weights" in e.get("ContributionDescription", "")
    ]
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


def test_measurement_sr_references_the_seg_and_holds_volume_diameter_and_slices() -> None:
    from radpacs.ai.results.measure import measure_region
    from radpacs.ai.results.sr import build_measurement_sr

    volume = _volume("sagittal")
    convex, _ = _shapes(volume.array.shape)
    label_map = convex.astype(np.uint8)
    seg = build_seg(volume, label_map, {1: Label.default("lesion", 1)}, PROVENANCE)
    values = measure_region(volume, convex)
    assert values.volume_mm3 == pytest.approx(4 / 3 * np.pi * 8.0**3, rel=0.1)
    assert values.longest_diameter_mm == pytest.approx(16.0, abs=2.5)
    assert (values.first_slice, values.last_slice) == (3, 11)  # ball radius 8 mm, 2 mm slices
    sr = _reread(build_measurement_sr(seg, volume.datasets, {1: values}, PROVENANCE))
    assert sr.Modality == "SR"
    _stamped(sr)
    text = str(sr)
    assert seg.SOPInstanceUID in text  # ReferencedSegment -> the SEG instance
    assert "Referenced Segment" in text
    assert "Volume" in text and "Diameter" in text and "First slice" in text
    import highdicom as hd

    report = hd.sr.Comprehensive3DSR.from_dataset(sr)
    groups = report.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 1
    volume_item = groups[0].get_measurements(name=hd.sr.CodedConcept("118565006", "SCT", "Volume"))
    assert float(volume_item[0].value) == pytest.approx(values.volume_mm3, rel=1e-3)


def test_classification_sr_has_coded_findings_probabilities_and_references_the_image() -> None:
    from radpacs.ai.results.sr import ClassScore, build_classification_sr

    [image] = make_series(np.zeros((1, 32, 32), dtype=np.int16), modality="DX")
    scores = [
        ClassScore(("ADEQUATE", "99RADPACS", "Adequate exposure"), 0.7),
        ClassScore(("UNDER", "99RADPACS", "Underexposed"), 0.3),
    ]
    sr = _reread(build_classification_sr(image, scores, PROVENANCE))
    _stamped(sr)
    assert sr.StudyInstanceUID == image.StudyInstanceUID
    text = str(sr)
    assert image.SOPInstanceUID in text
    assert "Adequate exposure" in text and "Probability of Underexposed" in text
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    refs = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert refs[0].ReferencedSOPInstanceUID == image.SOPInstanceUID


def test_ui_json_has_polygons_with_holes_labels_and_styles() -> None:
    from radpacs.ai.results.uijson import build_ui_json

    volume = _volume("axial")
    _, ring = _shapes(volume.array.shape)
    result = build_ui_json(volume, ring.astype(np.uint8), {1: Label("ring")}, PROVENANCE)
    assert result["labels"][0]["style"]["stroke"] == "#e6194b"
    assert result["model"]["weights_sha256"] == "ab" * 32
    middle = next(s for s in result["slices"] if s["index"] == 6)
    assert sorted(p["hole"] for p in middle["polygons"]) == [False, True]
    assert len(middle["polygons"][0]["patient"][0]) == 3
