"""Everything radpacs writes passes dciodvfy with no error: SEG, RTSTRUCT, the measurement
and classification SRs, and de-identified copies (PS3.3 IOD rules, checked by dicom3tools)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from _ai_support import ball, make_series
from _dciodvfy import dciodvfy_errors
from _deid_support import RT_WORKSHOP, SECRET
from radpacs.ai.geometry import Volume, volume_from_datasets
from radpacs.ai.provenance import Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.measure import measure_region
from radpacs.ai.results.rtstruct import build_rtstruct
from radpacs.ai.results.seg import build_seg
from radpacs.ai.results.sr import ClassScore, build_classification_sr, build_measurement_sr
from radpacs.deid.anonymizer import Anonymizer

PROVENANCE = Provenance("test-model", "1.2.3", "ab" * 32, parameters={"lower": "100"})
SPACING = (0.9, 0.9, 2.0)


def _volume(orientation: str) -> tuple[Volume, np.ndarray]:
    shape = (12, 48, 40)
    volume = volume_from_datasets(
        make_series(np.zeros(shape, dtype=np.int16), orientation, spacing=SPACING)
    )
    label_map = np.zeros(shape, dtype=np.uint8)
    label_map[ball(shape, (6, 20, 15), 8.0, SPACING)] = 1
    label_map[ball(shape, (6, 30, 28), 6.0, SPACING) & (label_map == 0)] = 2
    return volume, label_map


def _labels() -> dict[int, Label]:
    return {1: Label.default("region 1", 1), 2: Label.default("region 2", 2)}


def _results(orientation: str) -> dict[str, pydicom.Dataset]:
    volume, label_map = _volume(orientation)
    seg = build_seg(volume, label_map, _labels(), PROVENANCE)
    measurements = {v: measure_region(volume, label_map == v) for v in (1, 2)}
    [image] = make_series(np.zeros((1, 32, 32), dtype=np.int16), modality="DX")
    scores = [
        ClassScore(("ADEQUATE", "99RADPACS", "Adequate exposure"), 0.7),
        ClassScore(("UNDER", "99RADPACS", "Underexposed"), 0.3),
    ]
    return {
        "seg": seg,
        "rtstruct": build_rtstruct(volume, label_map, _labels(), PROVENANCE),
        "measurement-sr": build_measurement_sr(seg, volume.datasets, measurements, PROVENANCE),
        "classification-sr": build_classification_sr(image, scores, PROVENANCE),
    }


@pytest.mark.parametrize("orientation", ["axial", "sagittal"])
def test_ai_results_pass_dciodvfy(orientation: str) -> None:
    for name, ds in _results(orientation).items():
        assert dciodvfy_errors(ds) == [], name


def test_rtstruct_carries_the_frame_of_reference_module() -> None:
    volume, label_map = _volume("axial")
    rtstruct = build_rtstruct(volume, label_map, _labels(), PROVENANCE)
    assert rtstruct.FrameOfReferenceUID == volume.datasets[0].FrameOfReferenceUID
    assert "PositionReferenceIndicator" in rtstruct


def test_deidentified_copies_of_radpacs_objects_pass_dciodvfy() -> None:
    anonymizer = Anonymizer(SECRET)
    volume, _ = _volume("axial")
    sources = {"ct": volume.datasets[0], **_results("axial")}
    for name, ds in sources.items():
        assert dciodvfy_errors(ds) == [], name  # clean before, so any error is the copy's
        copy = anonymizer.anonymize(ds, pixels_checked=True)
        assert copy.PatientIdentityRemoved == "YES"
        assert dciodvfy_errors(copy) == [], name


@pytest.mark.parametrize("path", sorted(RT_WORKSHOP.glob("*.dcm")), ids=lambda p: Path(p).name)
def test_deidentification_adds_no_dciodvfy_error_to_rt_files(path: Path) -> None:
    original = pydicom.dcmread(path)
    copy = Anonymizer(SECRET).anonymize(original, pixels_checked=True)
    before = set(dciodvfy_errors(original))
    after = set(dciodvfy_errors(copy))
    assert after <= before, after - before
