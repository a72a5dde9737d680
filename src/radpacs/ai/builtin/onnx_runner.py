"""ONNX models from a local folder, described by a JSON manifest next to each model file.

Manifest (``<models dir>/<anything>.json``)::

    {
      "name": "liver-2d", "version": "3", "task": "segmentation",   # or "classification"
      "file": "liver.onnx", "sha256": "<hex digest of the file>",
      "input_size": [256, 256],             # rows, columns of the model input
      "spacing": [1.0, 1.0],                # optional: mm per pixel (row, column) expected
      "normalisation": {"window": [-100, 300]}  # or {"mean": m, "std": s} or "zscore"
      "labels": {"1": "liver"},             # segmentation: output channel -> name
                                            # classification: ["normal", "abnormal"], or
                                            # items {"name": .., "code": [value, scheme, meaning]}
      "activation": "softmax",              # classification: "softmax" (one label per image)
                                            # or "sigmoid" (multi-label: independent findings)
      "threshold": 0.5,                     # sigmoid: a class at or above it is a finding
      "accepts": {"modalities": ["CT"], "body_parts": [], "min_slices": 1}
    }

The checksum is verified when the manifest is read and again before every session is
created; a mismatch refuses the model. Segmentation models are 2-D: each slice is resampled
to ``spacing`` (when given), centre-cropped or padded to ``input_size``, normalised, fed as
``[1, 1, rows, columns]`` float32; the output ``[1, channels, rows, columns]`` is arg-maxed
and mapped back to the slice grid (nearest neighbour). Classification models take each
image the same way and output ``[1, classes]`` logits: with ``softmax`` the probabilities
sum to one and the most probable class is the finding; with ``sigmoid`` each class is an
independent probability and every class at or above ``threshold`` (a run parameter too) is a
finding, so an image may have several findings or none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radpacs.ai.interface import (
    Accepts,
    ImageClassification,
    ModelResult,
    Progress,
    SeriesInput,
    Task,
)
from radpacs.ai.results.labels import Label
from radpacs.ai.results.sr import ClassScore
from radpacs.errors import ConfigurationError, InvalidInput

__all__ = ["OnnxModel", "load_manifests", "sha256_of"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxModel:
    """One manifest-described ONNX model (see the module docstring)."""

    description = "ONNX model from the local models folder"

    def __init__(self, manifest_path: Path) -> None:
        try:
            manifest = json.loads(manifest_path.read_text())
            self.name = str(manifest["name"])
            self.version = str(manifest["version"])
            self.task = Task(manifest.get("task", "segmentation"))
            self.file = manifest_path.parent / str(manifest["file"])
            self.weights_sha256 = str(manifest["sha256"]).lower()
            self.input_size = tuple(int(v) for v in manifest["input_size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"manifest {manifest_path} is invalid: {exc}") from exc
        if len(self.input_size) != 2:
            raise ConfigurationError(f"manifest {manifest_path}: input_size must be [rows, cols]")
        spacing = manifest.get("spacing")
        self.spacing = tuple(float(v) for v in spacing) if spacing else None
        self.normalisation: Any = manifest.get("normalisation", "zscore")
        labels = manifest.get("labels", {})
        self.activation = str(manifest.get("activation", "softmax"))
        if self.activation not in ("softmax", "sigmoid"):
            raise ConfigurationError(
                f"manifest {manifest_path}: activation must be softmax or sigmoid, "
                f"not {self.activation!r}"
            )
        self.threshold = float(manifest.get("threshold", 0.5))
        if self.task is Task.CLASSIFICATION:
            self.class_codes = [_class_code(i, v, manifest_path) for i, v in enumerate(labels)]
        else:
            self.class_codes = []
            self.labels = {int(k): Label.default(str(v), int(k)) for k, v in labels.items()}
        accepts = manifest.get("accepts", {})
        self.accepts = Accepts(
            tuple(accepts.get("modalities", ())),
            tuple(accepts.get("body_parts", ())),
            int(accepts.get("min_slices", 1)),
        )
        self.description = str(manifest.get("description", self.description))
        self.verify()
        self._session: Any = None

    @property
    def parameters(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "input_size": list(self.input_size),
            "spacing": list(self.spacing) if self.spacing else None,
            "normalisation": self.normalisation,
        }
        if self.task is Task.CLASSIFICATION:
            described["activation"] = self.activation
            if self.activation == "sigmoid":
                described["threshold"] = self.threshold
        return described

    def verify(self) -> None:
        """Refuse the model when its file is missing or its SHA-256 differs from the manifest."""
        if not self.file.is_file():
            raise ConfigurationError(f"model file {self.file} does not exist")
        actual = sha256_of(self.file)
        if actual != self.weights_sha256:
            raise ConfigurationError(
                f"model file {self.file} has sha256 {actual}, the manifest says "
                f"{self.weights_sha256}; refusing it"
            )

    def session(self) -> Any:
        if self._session is None:
            import onnxruntime

            self.verify()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(self.file), options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def _normalise(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        spec = self.normalisation
        if isinstance(spec, dict) and "window" in spec:
            low, high = (float(v) for v in spec["window"])
            return np.asarray(np.clip((x - low) / (high - low), 0.0, 1.0), dtype=np.float32)
        if isinstance(spec, dict) and "mean" in spec:
            return ((x - float(spec["mean"])) / float(spec.get("std", 1.0))).astype(np.float32)
        std = float(x.std()) or 1.0
        return ((x - float(x.mean())) / std).astype(np.float32)

    def _to_input(
        self, plane: npt.NDArray[np.float32], pixel_spacing: tuple[float, float]
    ) -> tuple[npt.NDArray[np.float32], tuple[int, int], tuple[int, int]]:
        """Resample to the model spacing, then centre crop/pad; returns the resampled shape."""
        from skimage.transform import resize

        shape = plane.shape
        if self.spacing:
            target = (
                max(1, round(shape[0] * pixel_spacing[0] / self.spacing[0])),
                max(1, round(shape[1] * pixel_spacing[1] / self.spacing[1])),
            )
        else:
            target = (self.input_size[0], self.input_size[1])
        resampled = resize(plane, target, order=1, preserve_range=True, anti_aliasing=False)
        canvas = np.full(self.input_size, resampled.min(), dtype=np.float32)
        offset = (
            (self.input_size[0] - target[0]) // 2,
            (self.input_size[1] - target[1]) // 2,
        )
        src = tuple(
            slice(max(0, -o), max(0, -o) + min(t, s))
            for o, t, s in zip(offset, target, self.input_size, strict=True)
        )
        dst = tuple(
            slice(max(0, o), max(0, o) + min(t, s))
            for o, t, s in zip(offset, target, self.input_size, strict=True)
        )
        canvas[dst] = resampled[src]
        return canvas, target, offset

    def _from_output(
        self,
        labels: npt.NDArray[np.integer],
        target: tuple[int, int],
        offset: tuple[int, int],
        shape: tuple[int, int],
    ) -> npt.NDArray[np.uint8]:
        from skimage.transform import resize

        resampled = np.zeros(target, dtype=np.uint8)
        src = tuple(
            slice(max(0, o), max(0, o) + min(t, s))
            for o, t, s in zip(offset, target, self.input_size, strict=True)
        )
        dst = tuple(
            slice(max(0, -o), max(0, -o) + min(t, s))
            for o, t, s in zip(offset, target, self.input_size, strict=True)
        )
        resampled[dst] = labels[src]
        back = resize(resampled, shape, order=0, preserve_range=True, anti_aliasing=False)
        return np.asarray(back, dtype=np.uint8)

    def run(
        self, series: SeriesInput, progress: Progress, parameters: Mapping[str, Any]
    ) -> ModelResult:
        allowed = {"threshold"} if self.activation == "sigmoid" else set()
        unknown = set(parameters) - allowed
        if unknown:
            raise InvalidInput(
                f"{self.name} takes no run parameter {', '.join(sorted(unknown))}"
                + (" (only threshold)" if allowed else "")
            )
        threshold = float(parameters.get("threshold", self.threshold))
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInput(f"threshold {threshold} is not in [0, 1]")
        session = self.session()
        input_name = session.get_inputs()[0].name
        if self.task is Task.CLASSIFICATION:
            return self._classify(series, progress, session, input_name, threshold)
        volume = series.volume
        spacing = (volume.spacing[1], volume.spacing[0])
        label_map = np.zeros(volume.array.shape, dtype=np.uint8)
        for k, plane in enumerate(volume.array):
            x, target, offset = self._to_input(plane, spacing)
            x = self._normalise(x)[None, None]
            [output] = session.run(None, {input_name: x})[:1]
            predicted = np.argmax(output[0], axis=0)
            label_map[k] = self._from_output(predicted, target, offset, plane.shape)
            progress((k + 1) / len(volume.array))
        return ModelResult(label_map=label_map, labels=dict(self.labels))

    def _classify(
        self,
        series: SeriesInput,
        progress: Progress,
        session: Any,
        input_name: str,
        threshold: float,
    ) -> ModelResult:
        from radpacs.ai.geometry import volume_from_datasets

        results = []
        for index, ds in enumerate(series.datasets):
            volume = volume_from_datasets([ds])
            x, _, _ = self._to_input(volume.array[0], (volume.spacing[1], volume.spacing[0]))
            [logits] = session.run(None, {input_name: self._normalise(x)[None, None]})[:1]
            values = np.asarray(logits, dtype=np.float64).reshape(-1)
            if len(values) != len(self.class_codes):
                raise InvalidInput(
                    f"{self.name} gave {len(values)} outputs for {len(self.class_codes)} classes"
                )
            if self.activation == "sigmoid":
                probabilities = 1.0 / (1.0 + np.exp(-values))
            else:
                exp = np.exp(values - values.max())
                probabilities = exp / exp.sum()
            scores = tuple(
                ClassScore(code, float(np.clip(p, 0.0, 1.0)))
                for code, p in zip(self.class_codes, probabilities, strict=True)
            )
            findings = (
                tuple(s for s in scores if s.probability >= threshold)
                if self.activation == "sigmoid"
                else None
            )
            results.append(ImageClassification(str(ds.SOPInstanceUID), scores, findings))
            progress((index + 1) / len(series.datasets))
        return ModelResult(classifications=results, parameters=self._used(threshold))

    def _used(self, threshold: float) -> dict[str, str]:
        return {"threshold": str(threshold)} if self.activation == "sigmoid" else {}


def _class_code(index: int, item: Any, manifest_path: Path) -> tuple[str, str, str]:
    """A class of the manifest as (value, scheme, meaning); plain names get ``C<index>``."""
    if isinstance(item, dict):
        name = str(item.get("name", ""))
        code = item.get("code")
        if code is not None:
            if not isinstance(code, list) or len(code) != 3:
                raise ConfigurationError(
                    f"manifest {manifest_path}: class {name or index} code must be "
                    "[value, scheme, meaning]"
                )
            return (str(code[0]), str(code[1]), str(code[2]))
        return (f"C{index}", "99RADPACS", name or f"class {index}")
    return (f"C{index}", "99RADPACS", str(item))


def load_manifests(folder: Path) -> list[tuple[Path, OnnxModel | str]]:
    """Every ``*.json`` manifest of ``folder``: the model, or why it was refused."""
    found: list[tuple[Path, OnnxModel | str]] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            found.append((path, OnnxModel(path)))
        except ConfigurationError as exc:
            found.append((path, str(exc)))
    return found
