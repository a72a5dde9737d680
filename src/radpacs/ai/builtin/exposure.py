"""The built-in radiograph classifier: exposure adequacy from the histogram (a classical rule).

It is not a diagnostic model and has no weights. It looks at the image as stored (scaled
to [0, 1] by BitsStored, inverted for MONOCHROME1) and scores three classes:

- underexposed: the median of the body (pixels above the 5th percentile) is dark and
  noisy; score from a logistic of ``0.25 - median``;
- overexposed: many pixels saturate at the top of the range; score from a logistic of
  ``saturated fraction - 0.05``;
- adequate: what remains.

The three raw scores are normalised to probabilities that sum to one. It stands in for a
chest-X-ray network (seed 003 used torchxrayvision) so that the X-ray flow (one SR per
image with coded findings and probabilities) runs without downloaded weights; an ONNX
classifier with a manifest plugs into the same flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from radpacs.ai.interface import (
    Accepts,
    ImageClassification,
    ModelResult,
    Progress,
    SeriesInput,
    Task,
)
from radpacs.ai.results.sr import ClassScore
from radpacs.errors import InvalidInput

__all__ = ["CLASSES", "ExposureClassifier"]

CLASSES = {
    "underexposed": ("RP-UNDER", "99RADPACS", "Underexposed radiograph"),
    "adequate": ("RP-ADEQUATE", "99RADPACS", "Adequately exposed radiograph"),
    "overexposed": ("RP-OVER", "99RADPACS", "Overexposed radiograph"),
}


def _logistic(x: float, steepness: float = 25.0) -> float:
    return float(1.0 / (1.0 + np.exp(-steepness * x)))


class ExposureClassifier:
    """Scores radiographs as under-, adequately or over-exposed (see the module docstring)."""

    name = "xray-exposure"
    version = "1.0.0"
    task = Task.CLASSIFICATION
    accepts = Accepts(modalities=("CR", "DX", "DR", "RG", "XR"))
    weights_sha256 = ""
    description = "Classical exposure-adequacy rule on the histogram of each radiograph."

    @property
    def parameters(self) -> dict[str, Any]:
        return {"dark_median": 0.25, "saturated_fraction": 0.05}

    def run(
        self, series: SeriesInput, progress: Progress, parameters: Mapping[str, Any]
    ) -> ModelResult:
        p = {**self.parameters, **parameters}
        results = []
        for index, ds in enumerate(series.datasets):
            try:
                pixels = ds.pixel_array.astype(np.float64)
            except Exception as exc:
                raise InvalidInput(f"cannot decode {ds.SOPInstanceUID}: {exc}") from exc
            if pixels.ndim != 2:
                pixels = pixels.reshape(-1, *pixels.shape[-2:])[0]
            top = float(2 ** int(ds.get("BitsStored", 8)) - 1)
            scaled = np.clip(pixels / top, 0.0, 1.0)
            if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
                scaled = 1.0 - scaled
            body = scaled[scaled > np.percentile(scaled, 5)]
            median = float(np.median(body)) if body.size else 0.0
            saturated = float((scaled >= 0.98).mean())
            under = _logistic(float(p["dark_median"]) - median)
            over = _logistic(saturated - float(p["saturated_fraction"]), 60.0)
            adequate = max(0.0, 1.0 - max(under, over))
            total = under + over + adequate or 1.0
            scores = (
                ClassScore(CLASSES["underexposed"], under / total),
                ClassScore(CLASSES["adequate"], adequate / total),
                ClassScore(CLASSES["overexposed"], over / total),
            )
            results.append(ImageClassification(str(ds.SOPInstanceUID), scores))
            progress((index + 1) / len(series.datasets))
        return ModelResult(classifications=results, parameters={k: str(v) for k, v in p.items()})
