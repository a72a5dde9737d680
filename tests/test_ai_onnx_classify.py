"""ONNX classification per manifest: softmax (one finding) and sigmoid (multi-label)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset

from _ai_support import make_series
from _dciodvfy import dciodvfy_errors
from radpacs.ai.discovery import discover_models
from radpacs.ai.execute import write_results
from radpacs.ai.interface import SeriesInput
from radpacs.errors import InvalidInput
from radpacs.settings import load_settings

CLASSES = [
    "bright",
    "dark",
    {"name": "film present", "code": ["FILM", "99TEST", "Film present"]},
]


def _classifier(folder: Path, activation: str | None) -> str:
    """Mean intensity (window 0..1000) -> logits [10(m - .5), -10(m - .5), 3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.array([[10.0, -10.0, 0.0]], np.float32), "w")
    bias = numpy_helper.from_array(np.array([-5.0, 5.0, 3.0], np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
        ],
        "mean-classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    name = f"mean-{activation or 'default'}"
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    manifest: dict[str, object] = {
        "name": name,
        "version": "1",
        "task": "classification",
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "input_size": [32, 32],
        "normalisation": {"window": [0, 1000]},
        "labels": CLASSES,
        "accepts": {"modalities": ["DX"]},
    }
    if activation:
        manifest["activation"] = activation
    (folder / f"{name}.json").write_text(json.dumps(manifest))
    return name


def _groups(sr: Dataset) -> list[Dataset]:
    """The TID 1501 measurement groups of a TID 1500 report."""
    [measurements] = [i for i in sr.ContentSequence if i.ValueType == "CONTAINER"]
    return list(measurements.ContentSequence)


def _images() -> SeriesInput:
    bright = np.full((1, 32, 32), 900, dtype=np.int16)
    dark = np.full((1, 32, 32), 100, dtype=np.int16)
    return SeriesInput(make_series(bright, modality="DX") + make_series(dark, modality="DX"))


def _registry(tmp_path: Path) -> object:
    models = tmp_path / "models"
    models.mkdir()
    for activation in (None, "softmax", "sigmoid"):
        _classifier(models, activation)
    return discover_models(load_settings(data_dir=tmp_path, ai_models_dir=models))


def test_sigmoid_gives_independent_probabilities_and_several_findings(tmp_path: Path) -> None:
    model = _registry(tmp_path).get("mean-sigmoid")  # type: ignore[attr-defined]
    series = _images()
    result = model.run(series, lambda f: None, {})
    bright, dark = result.classifications
    p = {s.code[2]: s.probability for s in bright.scores}
    assert p["bright"] == pytest.approx(1 / (1 + np.exp(-4.0)), abs=1e-4)
    assert p["Film present"] == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-4)
    assert sum(p.values()) > 1.5  # not a softmax
    assert [f.code[2] for f in bright.coded_findings] == ["bright", "Film present"]
    assert [f.code[2] for f in dark.coded_findings] == ["dark", "Film present"]
    # a higher threshold (run parameter) leaves only what clears it
    strict = model.run(series, lambda f: None, {"threshold": 0.97})
    assert [f.code[2] for f in strict.classifications[0].coded_findings] == ["bright"]
    assert strict.parameters == {"threshold": "0.97"}
    with pytest.raises(InvalidInput, match="threshold"):
        model.run(series, lambda f: None, {"threshold": 2})
    # one SR per image: every class's probability, each finding coded, dciodvfy-clean
    objects, ui = write_results(model, series, result, {})
    assert len(objects) == 2
    [group] = _groups(objects[0])
    findings = [
        (i.ConceptCodeSequence[0].CodeValue, i.ConceptCodeSequence[0].CodeMeaning)
        for i in group.ContentSequence
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "121071"
    ]
    assert findings == [("C0", "bright"), ("FILM", "Film present")]
    assert sum(i.ValueType == "NUM" for i in group.ContentSequence) == 3
    assert ui["images"][0]["findings"] == ["bright", "Film present"]
    for ds in objects:
        assert dciodvfy_errors(ds) == []


def test_softmax_gives_one_finding_and_probabilities_summing_to_one(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for name in ("mean-default", "mean-softmax"):
        model = registry.get(name)  # type: ignore[attr-defined]
        result = model.run(_images(), lambda f: None, {})
        bright, dark = result.classifications
        assert sum(s.probability for s in bright.scores) == pytest.approx(1.0)
        assert [f.code[2] for f in bright.coded_findings] == ["bright"]
        assert [f.code[2] for f in dark.coded_findings] == ["dark"]
        with pytest.raises(InvalidInput, match="threshold"):
            model.run(_images(), lambda f: None, {"threshold": 0.5})


def test_an_unknown_activation_refuses_the_manifest(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    name = _classifier(models, "relu")
    registry = discover_models(load_settings(data_dir=tmp_path, ai_models_dir=models))
    assert name not in registry.models
    assert "activation" in registry.errors[f"manifest {name}.json"]
