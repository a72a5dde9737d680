"""The torchxrayvision plugin with the library's real DenseNet-121, untrained weights saved
into the weights folder the way the library names them (skipped without torchxrayvision,
except in CI)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset

from _ai_support import make_series
from _dciodvfy import dciodvfy_errors
from radpacs.ai.discovery import discover_models
from radpacs.ai.execute import write_results
from radpacs.ai.interface import SeriesInput
from radpacs.ai.plugins.xrv import XrvClassifier, _import_xrv, models, weights_file
from radpacs.errors import ConfigurationError
from radpacs.settings import load_settings

if importlib.util.find_spec("torchxrayvision") is None and not os.environ.get("CI"):
    pytest.skip("torchxrayvision is not installed", allow_module_level=True)
torch = pytest.importorskip("torch")

WEIGHTS = "densenet121-res224-all"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained DenseNet-121 (18 outputs) saved as the library saves its released weights."""
    xrv = _import_xrv()
    torch.manual_seed(0)
    model = xrv.models.DenseNet(num_classes=18)
    path = tmp_path_factory.mktemp("xrv") / weights_file(WEIGHTS)
    torch.save(model, path)
    return path.parent


def _radiographs() -> list[Dataset]:
    """A 12-bit MONOCHROME2 and a 12-bit MONOCHROME1 image, 300 x 260 (not square)."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 4096, size=(2, 300, 260)).astype(np.int16)
    array[:, 100:200, 80:180] = 4095
    images = make_series(array, modality="DX", shuffle=False)
    for ds in images:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.PixelData = np.asarray(ds.pixel_array, dtype=np.uint16).tobytes()
    images[1].PhotometricInterpretation = "MONOCHROME1"
    return images


def test_loads_the_weights_from_the_folder(folder: Path) -> None:
    classifier = XrvClassifier(WEIGHTS, folder)
    model = classifier.model()
    saved = torch.load(folder / weights_file(WEIGHTS), weights_only=False)
    assert torch.equal(model.classifier.weight, saved.classifier.weight)
    assert len(model.pathologies) == 18 and "Effusion" in model.pathologies
    assert model.op_threshs is not None  # the library's calibration of the released weights


def test_missing_weights_name_the_file_and_download_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=weights_file(WEIGHTS)):
        XrvClassifier(WEIGHTS, tmp_path)
    settings = load_settings(
        data_dir=tmp_path, xrv_weights_dir=tmp_path, ai_plugins=["radpacs.ai.plugins.xrv:models"]
    )
    registry = discover_models(settings)
    assert any(weights_file(WEIGHTS) in error for error in registry.errors.values())
    assert not list(tmp_path.glob("*.pt"))


def test_preprocessing_is_the_librarys(folder: Path) -> None:
    from pydicom.filebase import DicomBytesIO

    classifier = XrvClassifier(WEIGHTS, folder)
    plain, inverted = _radiographs()
    tensors = []
    for ds in (plain, inverted):
        buffer = DicomBytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        tensors.append(classifier.preprocess(buffer.getvalue()))
    assert tensors[0].shape == (1, 1, 224, 224)
    # 12 bits: 4095 -> +1024 (bit depth scaling); MONOCHROME1 inverted, so -1024 there
    assert float(tensors[0].max()) == pytest.approx(1024, abs=1)
    assert float(tensors[0][0, 0, 112, 112]) == pytest.approx(1024, abs=1)
    assert float(tensors[1][0, 0, 112, 112]) == pytest.approx(-1024, abs=1)


def test_every_pathology_in_one_sr_per_image_findings_above_the_threshold(
    folder: Path, tmp_path: Path
) -> None:
    settings = load_settings(data_dir=tmp_path, xrv_weights_dir=folder, xrv_threshold=0.5)
    [classifier] = models(settings)
    series = SeriesInput(_radiographs())
    result = classifier.run(series, lambda f: None, {})
    assert len(result.classifications) == 2
    for item in result.classifications:
        assert len(item.scores) == 18
        assert all(0.0 <= s.probability <= 1.0 for s in item.scores)
        assert item.findings == tuple(s for s in item.scores if s.probability >= 0.5)
    middle = float(np.median([s.probability for s in result.classifications[0].scores]))
    again = classifier.run(series, lambda f: None, {"threshold": middle})
    first = again.classifications[0]
    assert first.findings == tuple(s for s in first.scores if s.probability >= middle)
    assert 0 < len(first.findings or ()) < 18
    assert again.parameters == {"threshold": str(middle)}
    objects, ui = write_results(classifier, series, result, {})
    assert len(objects) == 2  # one SR per image
    for sr, item in zip(objects, result.classifications, strict=True):
        [measurements] = [i for i in sr.ContentSequence if i.ValueType == "CONTAINER"]
        [group] = measurements.ContentSequence
        probabilities = [i for i in group.ContentSequence if i.ValueType == "NUM"]
        assert len(probabilities) == 18
        names = {i.ConceptNameCodeSequence[0].CodeMeaning for i in probabilities}
        assert "Probability of Pleural effusion" in names
        coded = [
            i.ConceptCodeSequence[0].CodeMeaning
            for i in group.ContentSequence
            if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "121071"
        ]
        assert coded == [s.code[2] for s in item.coded_findings]
        assert dciodvfy_errors(sr) == []
    assert ui["images"][0]["findings"] == [
        s.code[2] for s in result.classifications[0].findings or ()
    ]
