"""The built-in classical segmenter for CT and MR (no weights): window, edges, morphology.

Steps, each with a parameter (all overridable per job):

1. Gaussian smoothing of ``smoothing_mm`` (sigma in mm, per axis from the real spacing);
2. intensity window ``[lower, upper]`` in modality units (HU for CT); ``lower`` defaults
   to Otsu's threshold of the smoothed volume (MR), ``upper`` to no limit;
3. edge-aware thresholding: seeds are window voxels whose gradient magnitude is below the
   ``edge_percentile`` of the gradient inside the window (so boundaries never seed); the
   region then grows from the seeds through voxels inside the window relaxed by
   ``hysteresis`` x window width (hysteresis thresholding, connected to a seed);
4. morphological opening then closing with balls of ``opening_mm`` / ``closing_mm``;
5. 3-D connected components; components under ``min_size_mm3`` are dropped, the
   ``max_regions`` largest are kept, each as its own label "<label> <n>".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from radpacs.ai.interface import Accepts, ModelResult, Progress, SeriesInput, Task
from radpacs.ai.results.labels import Label
from radpacs.errors import InvalidInput

__all__ = ["ClassicalSegmenter", "segment"]

DEFAULTS: dict[str, Any] = {
    "lower": None,
    "upper": None,
    "smoothing_mm": 1.0,
    "edge_percentile": 90.0,
    "hysteresis": 0.1,
    "opening_mm": 1.0,
    "closing_mm": 1.0,
    "min_size_mm3": 100.0,
    "max_regions": 5,
    "label": "region",
}


def _ball(radius_mm: float, spacing: tuple[float, float, float]) -> npt.NDArray[np.bool_] | None:
    """A ball structuring element on the (k, j, i) grid; None when smaller than a voxel."""
    radii = [radius_mm / s for s in (spacing[2], spacing[1], spacing[0])]
    if max(radii) < 1.0:
        return None
    extent = [int(np.floor(r)) for r in radii]
    k, j, i = np.ogrid[
        -extent[0] : extent[0] + 1, -extent[1] : extent[1] + 1, -extent[2] : extent[2] + 1
    ]
    return np.asarray(
        (k / max(radii[0], 1e-6)) ** 2
        + (j / max(radii[1], 1e-6)) ** 2
        + (i / max(radii[2], 1e-6)) ** 2
        <= 1.0
    )


def segment(
    array: npt.NDArray[np.floating],
    spacing: tuple[float, float, float],
    parameters: Mapping[str, Any],
    progress: Progress = lambda fraction: None,
) -> tuple[npt.NDArray[np.uint8], list[int]]:
    """Label map of ``array[k, j, i]`` (spacing as (i, j, k) mm) and each label's voxel count."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    p = {**DEFAULTS, **{k: v for k, v in parameters.items() if v is not None}}
    sigma = [float(p["smoothing_mm"]) / s for s in (spacing[2], spacing[1], spacing[0])]
    smooth = (
        ndimage.gaussian_filter(array.astype(np.float32), sigma) if p["smoothing_mm"] else array
    )
    progress(0.2)
    lower = float(p["lower"]) if p["lower"] is not None else float(threshold_otsu(smooth))
    upper = float(p["upper"]) if p["upper"] is not None else float("inf")
    if upper <= lower:
        raise InvalidInput(f"upper ({upper}) must be above lower ({lower})")
    inside = (smooth >= lower) & (smooth <= upper)
    if not inside.any():
        return np.zeros(array.shape, dtype=np.uint8), []
    gradient = ndimage.gaussian_gradient_magnitude(smooth, [max(s, 0.5) for s in sigma])
    edge_limit = float(np.percentile(gradient[inside], float(p["edge_percentile"])))
    seeds = inside & (gradient <= edge_limit)
    width = (upper - lower) if np.isfinite(upper) else float(np.ptp(smooth)) or 1.0
    margin = float(p["hysteresis"]) * width
    relaxed = (smooth >= lower - margin) & (smooth <= upper + margin)
    labelled, _ = ndimage.label(relaxed)
    grown = np.isin(labelled, np.unique(labelled[seeds & relaxed]))
    grown &= labelled > 0
    progress(0.5)
    opening = _ball(float(p["opening_mm"]), spacing)
    if opening is not None:
        grown = ndimage.binary_opening(grown, opening)
    closing = _ball(float(p["closing_mm"]), spacing)
    if closing is not None:
        grown = ndimage.binary_closing(grown, closing)
    progress(0.7)
    components, count = ndimage.label(grown)
    if count == 0:
        return np.zeros(array.shape, dtype=np.uint8), []
    sizes = np.bincount(components.ravel())[1:]
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    order = [
        int(c) + 1 for c in np.argsort(-sizes) if sizes[c] * voxel_mm3 >= float(p["min_size_mm3"])
    ]
    order = order[: int(p["max_regions"])]
    lookup = np.zeros(count + 1, dtype=np.uint8)
    for value, component in enumerate(order, start=1):
        lookup[component] = value
    progress(0.9)
    return lookup[components], [int(sizes[c - 1]) for c in order]


class ClassicalSegmenter:
    """Threshold-and-morphology segmentation of CT and MR series (see the module docstring)."""

    name = "classical-segmenter"
    version = "1.0.0"
    task = Task.SEGMENTATION
    accepts = Accepts(modalities=("CT", "MR"), min_slices=3)
    weights_sha256 = ""
    description = (
        "Smoothing, intensity window (Otsu when not given), edge-aware hysteresis "
        "thresholding, opening/closing, connected components over a minimum size."
    )

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def run(
        self, series: SeriesInput, progress: Progress, parameters: Mapping[str, Any]
    ) -> ModelResult:
        unknown = set(parameters) - set(DEFAULTS)
        if unknown:
            raise InvalidInput(f"unknown parameters for {self.name}: {', '.join(sorted(unknown))}")
        volume = series.volume
        merged = {**DEFAULTS, **parameters}
        label_map, _ = segment(volume.array, volume.spacing, merged, progress)
        name = str(merged["label"])
        labels = {
            value: Label.default(f"{name} {value}", value)
            for value in range(1, int(label_map.max()) + 1)
        }
        used = {k: v for k, v in merged.items() if v is not None}
        return ModelResult(label_map=label_map, labels=labels, parameters=used)
