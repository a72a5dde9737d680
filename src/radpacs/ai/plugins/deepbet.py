"""deepbet brain extraction (MIT; TorchScript weights shipped in its wheel) as a model plugin.

Optional: listed only when ``deepbet`` and ``torch`` import. The core never imports torch;
this module imports it inside :meth:`DeepBet.run`. The series becomes a NIfTI image in RAS
(the LPS affine of :mod:`radpacs.ai.geometry` with x and y negated, the array as (i, j, k)),
deepbet reorients it to the closest canonical orientation itself, and the mask it returns
in the input orientation goes back to the (k, j, i) grid of the series.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from radpacs.ai.interface import Accepts, ModelResult, Progress, SeriesInput, Task
from radpacs.ai.results.labels import Label

__all__ = ["DeepBet", "models"]


def _weights() -> Path | None:
    spec = importlib.util.find_spec("deepbet")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).resolve().parents[1] / "data" / "models" / "model.pt"
    return path if path.is_file() else None


class DeepBet:
    """Brain mask of a T1-weighted head MR (deepbet 1.0.2, CPU)."""

    name = "deepbet"
    task = Task.SEGMENTATION
    accepts = Accepts(modalities=("MR",), min_slices=16)
    description = "deepbet brain extraction (TorchScript, CPU), from the deepbet wheel"

    def __init__(self, weights: Path) -> None:
        from importlib.metadata import version

        self.weights = weights
        self.version = version("deepbet")
        digest = hashlib.sha256()
        for path in sorted(weights.parent.glob("*.pt")):
            digest.update(path.read_bytes())
        self.weights_sha256 = digest.hexdigest()

    @property
    def parameters(self) -> dict[str, Any]:
        return {"threshold": 0.5, "n_dilate": 0}

    def run(
        self, series: SeriesInput, progress: Progress, parameters: Mapping[str, Any]
    ) -> ModelResult:
        import nibabel as nib
        import torch
        from deepbet import BrainExtraction

        p = {**self.parameters, **parameters}
        torch.set_num_threads(max(1, torch.get_num_threads()))
        volume = series.volume
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
        image = nib.Nifti1Image(np.transpose(volume.array, (2, 1, 0)).astype(np.float32), ras)
        progress(0.1)
        extractor = BrainExtraction(no_gpu=True)
        _, mask, _ = extractor.run(
            image, threshold=float(p["threshold"]), n_dilate=int(p["n_dilate"])
        )
        label_map = np.transpose(np.asarray(mask.dataobj) > 0, (2, 1, 0)).astype(np.uint8)
        progress(1.0)
        labels = {1: Label("brain", (255, 200, 0), type_code=("12738006", "SCT", "Brain"))}
        return ModelResult(label_map=label_map, labels=labels, parameters=dict(p))


def models(settings: Any) -> list[DeepBet]:
    """The plugin when deepbet (with its weights) and torch are installed, else nothing."""
    weights = _weights()
    if weights is None or importlib.util.find_spec("torch") is None:
        return []
    return [DeepBet(weights)]
