"""Models: discovery, the classical segmenter, the exposure classifier, the ONNX runner."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from _ai_support import ball, dice, make_series
from radpacs.ai.builtin.exposure import ExposureClassifier
from radpacs.ai.builtin.segmenter import ClassicalSegmenter
from radpacs.ai.discovery import discover_models
from radpacs.ai.interface import SeriesInput
from radpacs.settings import load_settings


def _phantom(shape: tuple[int, int, int] = (16, 64, 64)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    lesion = ball(shape, (8, 30, 34), 9.0, (1.0, 1.0, 2.0))
    array = np.where(lesion, 200, 0) + rng.normal(0, 15, shape)
    return array.astype(np.int16), lesion


def test_entry_points_list_the_built_in_models(tmp_path: Path) -> None:
    registry = discover_models(load_settings(data_dir=tmp_path))
    assert {"classical-segmenter", "xray-exposure"} <= set(registry.models)
    assert registry.models["classical-segmenter"].accepts.modalities == ("CT", "MR")


def test_classical_segmenter_finds_the_ball_on_a_sagittal_series() -> None:
    array, lesion = _phantom()
    series = SeriesInput(make_series(array, "sagittal", spacing=(1.0, 1.0, 2.0)))
    result = ClassicalSegmenter().run(series, lambda f: None, {"lower": 100, "min_size_mm3": 50})
    assert result.label_map is not None
    assert set(result.labels) == {1}
    assert dice(result.label_map == 1, lesion) > 0.9
    assert result.parameters["lower"] == 100


def test_exposure_classifier_scores_dark_and_bright_images() -> None:
    dark = np.full((1, 64, 64), 300, dtype=np.int16)
    dark[0, 20:40, 20:40] = 900
    bright = np.full((1, 64, 64), 32767, dtype=np.int16)
    images = make_series(dark, modality="DX") + make_series(bright, modality="DX")
    for ds in images:
        ds.BitsStored = 15
        ds.HighBit = 14
        ds.PixelRepresentation = 0
    result = ExposureClassifier().run(SeriesInput(images), lambda f: None, {})
    findings = [max(c.scores, key=lambda s: s.probability).code[2] for c in result.classifications]
    assert findings == ["Underexposed radiograph", "Overexposed radiograph"]
    for item in result.classifications:
        assert sum(s.probability for s in item.scores) == pytest.approx(1.0)


def _tiny_onnx(folder: Path, threshold: float = 0.5) -> Path:
    """A 1x1 convolution: channel 1 wins where the normalised input is above ``threshold``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.array([[[[-1.0]]], [[[1.0]]]], np.float32), "w")
    bias = numpy_helper.from_array(np.array([threshold, -threshold], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, 32, 32])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "tiny.onnx"
    onnx.save(model, path)
    manifest = {
        "name": "tiny-threshold",
        "version": "1",
        "task": "segmentation",
        "file": "tiny.onnx",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "input_size": [32, 32],
        "normalisation": {"window": [0, 200]},
        "labels": {"1": "bright"},
        "accepts": {"modalities": ["CT"], "min_slices": 1},
    }
    (folder / "tiny.json").write_text(json.dumps(manifest))
    return path


def test_onnx_model_from_a_manifest_segments_and_checks_its_checksum(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    _tiny_onnx(models)
    registry = discover_models(load_settings(data_dir=tmp_path, ai_models_dir=models))
    model = registry.get("tiny-threshold")
    array = np.zeros((3, 64, 64), dtype=np.int16)
    array[:, 16:48, 8:40] = 180
    result = model.run(SeriesInput(make_series(array)), lambda f: None, {})
    assert result.label_map is not None
    assert dice(result.label_map == 1, array > 100) > 0.95
    (models / "tiny.onnx").write_bytes((models / "tiny.onnx").read_bytes() + b"\0")
    registry = discover_models(load_settings(data_dir=tmp_path, ai_models_dir=models))
    assert "tiny-threshold" not in registry.models
    assert "sha256" in registry.errors["manifest tiny.json"]
