"""The built-in classical segmenter for CT and MR (no weights): focal lesions or a window.

Two modes, chosen by the parameters (all overridable per job):

**Focal** (default, neither ``lower`` nor ``upper`` given): regions that stand out from the
tissue around them, brighter (``polarity: bright``) or darker (``dark``).

1. Detection on a coarse grid (block means to about ``coarse_mm`` per voxel, Gaussian
   smoothing of ``smoothing_mm``): a white (bright) or black (dark) top-hat with a box of
   ``max_diameter_mm`` keeps what is smaller than the box and differs from its surroundings;
   candidates are connected regions above ``min_contrast`` (default: the top-hat's median
   plus 4 robust standard deviations, 1.4826 x its median absolute deviation, so the image's
   own noise sets it) of at least a quarter of ``min_size_mm3``, not touching the image's
   edges (rows and columns; a lesion cut by the first or last slice is kept).
2. Refinement per candidate, on the original voxels inside its bounding box: the
   surroundings level is the median of a shell 3 to 7 mm around it; the lesion level is the
   median of its voxels more than one voxel inside a first half-way outline (so that
   partial-volume edge voxels do not pull it down); the boundary is the half-way level
   between the two (unsmoothed voxels, holes filled), which puts the surface where a
   partial-volume edge crosses 50 % and so keeps volumes unbiased. A candidate whose shell
   is more than ``max_shell_fraction`` above that level is not surrounded by darker tissue
   (an organ edge, not a focal lesion) and is dropped, as is one wider than
   ``max_diameter_mm``. For ``dark`` the image is negated first.

**Window** (``lower`` and/or ``upper`` given, modality units, HU for CT; ``lower`` defaults
to Otsu's threshold and ``upper`` to no limit): seeds are smoothed voxels inside the window;
the region grows through unsmoothed voxels inside the window widened by ``hysteresis`` x the
contrast between the seeds' median and the window bound (hysteresis thresholding connected
to a seed), so the margin depends on how far the region stands above the bound, never on
the window's width or the image's range; holes are filled.

Both: optional opening/closing balls of ``opening_mm`` / ``closing_mm`` (default off: they
move boundaries), components under ``min_size_mm3`` dropped, the ``max_regions`` largest
kept, each as its own label "<label> <n>". Work is done in float32 and, past detection,
inside bounding boxes, so a 200 x 512 x 512 CT takes a few seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from radpacs.ai.interface import Accepts, ModelResult, Progress, SeriesInput, Task
from radpacs.ai.results.labels import Label
from radpacs.errors import InvalidInput

__all__ = ["ClassicalSegmenter", "segment"]

DEFAULTS: dict[str, Any] = {
    "polarity": "bright",
    "lower": None,
    "upper": None,
    "min_contrast": None,
    "max_diameter_mm": 50.0,
    "max_shell_fraction": 0.2,
    "coarse_mm": 2.0,
    "smoothing_mm": 1.0,
    "hysteresis": 0.0,
    "opening_mm": 0.0,
    "closing_mm": 0.0,
    "min_size_mm3": 100.0,
    "max_regions": 5,
    "label": "region",
}

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
Box = tuple[slice, slice, slice]
# Shell around a candidate where the surroundings are sampled (mm from the candidate).
_SHELL_MM = (3.0, 7.0)


@dataclass
class _Region:
    box: Box
    mask: BoolArray

    @property
    def voxels(self) -> int:
        return int(self.mask.sum())


def _ball(radius_mm: float, spacing_kji: tuple[float, ...]) -> BoolArray | None:
    """A ball structuring element on the (k, j, i) grid; None when smaller than a voxel."""
    radii = [radius_mm / s for s in spacing_kji]
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


def _coarse(array: FloatArray, factors: tuple[int, int, int]) -> FloatArray:
    """Block means of ``factors`` voxels (the trailing partial blocks are left out)."""
    fk, fj, fi = factors
    k, j, i = (array.shape[0] // fk) * fk, (array.shape[1] // fj) * fj, (array.shape[2] // fi) * fi
    view = array[:k, :j, :i].reshape(k // fk, fk, j // fj, fj, i // fi, fi)
    return np.asarray(view.mean(axis=(1, 3, 5), dtype=np.float32), dtype=np.float32)


def _full_box(
    coarse_box: Box, factors: tuple[int, int, int], margin: tuple[int, ...], shape: tuple[int, ...]
) -> Box:
    """The original-grid bounding box of a coarse one, widened by ``margin`` voxels per axis."""
    return tuple(  # type: ignore[return-value]
        slice(max(0, s.start * f - m), min(n, s.stop * f + m))
        for s, f, m, n in zip(coarse_box, factors, margin, shape, strict=True)
    )


def _upsample(
    coarse_mask: BoolArray, coarse_box: Box, box: Box, factors: tuple[int, int, int]
) -> BoolArray:
    """``coarse_mask`` (the coarse voxels of ``coarse_box``) on the original voxels of ``box``."""
    axes, valid = [], []
    for b, f, c in zip(box, factors, coarse_box, strict=True):
        index = np.arange(b.start, b.stop) // f - c.start
        valid.append((index >= 0) & (index < c.stop - c.start))
        axes.append(np.clip(index, 0, c.stop - c.start - 1))
    vk, vj, vi = valid[0][:, None, None], valid[1][None, :, None], valid[2][None, None, :]
    return np.asarray(coarse_mask[np.ix_(*axes)] & vk & vj & vi)


def _focal(
    array: FloatArray,
    spacing_kji: tuple[float, float, float],
    p: Mapping[str, Any],
    progress: Progress,
) -> list[_Region]:
    from scipy import ndimage

    polarity = str(p["polarity"])
    if polarity not in ("bright", "dark"):
        raise InvalidInput(f"polarity must be 'bright' or 'dark', not {polarity!r}")
    sign = np.float32(1.0 if polarity == "bright" else -1.0)
    factors = tuple(max(1, round(float(p["coarse_mm"]) / s)) for s in spacing_kji)
    factors = tuple(min(f, n) for f, n in zip(factors, array.shape, strict=True))
    coarse_spacing = [s * f for s, f in zip(spacing_kji, factors, strict=True)]
    coarse = _coarse(array, factors)  # type: ignore[arg-type]
    if sign < 0:
        coarse = -coarse
    sigma = [float(p["smoothing_mm"]) / s for s in coarse_spacing]
    if max(sigma) > 0:
        coarse = ndimage.gaussian_filter(coarse, sigma)
    progress(0.2)
    box_size = [max(3, round(float(p["max_diameter_mm"]) / s) | 1) for s in coarse_spacing]
    tophat = coarse - ndimage.maximum_filter(ndimage.minimum_filter(coarse, box_size), box_size)
    if p["min_contrast"] is not None:
        threshold = float(p["min_contrast"])
    else:  # the top-hat of noise is biased upwards: take its own median and spread
        sample = tophat[:: max(1, len(tophat) // 16)].ravel()
        centre = float(np.median(sample))
        spread = 1.4826 * float(np.median(np.abs(sample - centre)))
        threshold = centre + 4.0 * spread
    threshold = max(threshold, 1e-3)
    labelled, _ = ndimage.label(tophat > threshold)
    coarse_voxel_mm3 = float(np.prod(coarse_spacing))
    sizes = np.bincount(labelled.ravel()) * coarse_voxel_mm3
    progress(0.5)
    margin = tuple(int(np.ceil(_SHELL_MM[1] / s)) + 1 for s in spacing_kji)
    regions = []
    boxes = ndimage.find_objects(labelled)
    for number, coarse_box in enumerate(boxes, start=1):
        if coarse_box is None or sizes[number] < 0.25 * float(p["min_size_mm3"]):
            continue
        rows, columns = coarse_box[1], coarse_box[2]
        if (
            rows.start == 0
            or columns.start == 0
            or rows.stop == labelled.shape[1]
            or columns.stop == labelled.shape[2]
        ):
            # touches the image's edge (the air between body and field of view): not
            # surrounded, so not focal; the first and last slices are the scan's range, and
            # a lesion cut by them is still reported
            continue
        extent = [(b.stop - b.start) * s for b, s in zip(coarse_box, coarse_spacing, strict=True)]
        if max(extent) > float(p["max_diameter_mm"]) + 2 * max(coarse_spacing):
            continue
        box = _full_box(coarse_box, factors, margin, array.shape)  # type: ignore[arg-type]
        seed = _upsample(labelled[coarse_box] == number, coarse_box, box, factors)  # type: ignore[arg-type]
        region = _refine(sign * array[box], seed, spacing_kji, threshold, p)
        if region is not None:
            regions.append(_Region(box, region))
    progress(0.8)
    return regions


def _refine(
    sub: FloatArray,
    seed: BoolArray,
    spacing_kji: tuple[float, float, float],
    threshold: float,
    p: Mapping[str, Any],
) -> BoolArray | None:
    """The lesion around ``seed`` in ``sub`` (bright polarity), at the half-way level."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(~seed, sampling=spacing_kji)
    shell = (distance > _SHELL_MM[0]) & (distance <= _SHELL_MM[1])
    if not shell.any():
        return None
    background = float(np.median(sub[shell]))
    core = sub[seed & (sub > background + threshold)]
    if core.size == 0:
        return None
    # The lesion's own level: its voxels a voxel or more inside a first half-way outline, so
    # that partial-volume voxels at its edge do not pull the level down.
    first = background + 0.5 * (float(np.median(core)) - background)
    depth = ndimage.distance_transform_edt((sub >= first) & seed, sampling=spacing_kji)
    inner = sub[depth > max(spacing_kji)]
    plateau = float(np.median(inner)) if inner.size >= 8 else float(np.percentile(core, 75))
    level = background + 0.5 * (plateau - background)
    if float(np.mean(sub[shell] >= level)) > float(p["max_shell_fraction"]):
        return None
    mask = (sub >= level) & (distance <= _SHELL_MM[0])
    labelled, _ = ndimage.label(mask)
    keep = np.unique(labelled[mask & seed])
    mask = np.isin(labelled, keep[keep > 0])
    mask = ndimage.binary_fill_holes(mask)
    if not mask.any():
        return None
    spans = [
        (int(np.ptp(np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0])) + 1)
        * spacing_kji[axis]
        for axis in range(3)
    ]
    if max(spans) > float(p["max_diameter_mm"]):
        return None
    return np.asarray(mask)


def _window(
    array: FloatArray,
    spacing_kji: tuple[float, float, float],
    p: Mapping[str, Any],
    progress: Progress,
) -> list[_Region]:
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    factors = tuple(max(1, round(float(p["coarse_mm"]) / s)) for s in spacing_kji)
    factors = tuple(min(f, n) for f, n in zip(factors, array.shape, strict=True))
    coarse_spacing = [s * f for s, f in zip(spacing_kji, factors, strict=True)]
    coarse = _coarse(array, factors)  # type: ignore[arg-type]
    sigma_c = [float(p["smoothing_mm"]) / s for s in coarse_spacing]
    if max(sigma_c) > 0:
        coarse = ndimage.gaussian_filter(coarse, sigma_c)
    progress(0.2)
    lower = float(p["lower"]) if p["lower"] is not None else float(threshold_otsu(coarse))
    upper = float(p["upper"]) if p["upper"] is not None else float("inf")
    if upper <= lower:
        raise InvalidInput(f"upper ({upper}) must be above lower ({lower})")
    seeds = (coarse >= lower) & (coarse <= upper)
    if not seeds.any():
        return []
    level = float(np.median(coarse[seeds]))
    hysteresis = float(p["hysteresis"])
    relaxed_lower = lower - hysteresis * max(level - lower, 0.0)
    relaxed_upper = upper + hysteresis * max(upper - level, 0.0) if np.isfinite(upper) else upper
    relaxed = (coarse >= relaxed_lower) & (coarse <= relaxed_upper)
    labelled, _ = ndimage.label(relaxed)
    wanted = set(np.unique(labelled[seeds & relaxed]).tolist()) - {0}
    progress(0.5)
    sigma = [float(p["smoothing_mm"]) / s for s in spacing_kji]
    regions = []
    for number, coarse_box in enumerate(ndimage.find_objects(labelled), start=1):
        if coarse_box is None or number not in wanted:
            continue
        box = _full_box(coarse_box, factors, factors, array.shape)  # type: ignore[arg-type]
        sub = array[box]
        smooth = ndimage.gaussian_filter(sub, sigma) if max(sigma) > 0 else sub
        inner = (smooth >= lower) & (smooth <= upper)
        grown = (sub >= relaxed_lower) & (sub <= relaxed_upper)
        grown |= inner
        parts, _ = ndimage.label(grown)
        keep = np.unique(parts[inner])
        mask = ndimage.binary_fill_holes(np.isin(parts, keep[keep > 0]))
        if mask.any():
            regions.append(_Region(box, np.asarray(mask)))
    progress(0.8)
    return regions


def segment(
    array: npt.NDArray[np.floating],
    spacing: tuple[float, float, float],
    parameters: Mapping[str, Any],
    progress: Progress = lambda fraction: None,
) -> tuple[npt.NDArray[np.uint8], list[int]]:
    """Label map of ``array[k, j, i]`` (spacing as (i, j, k) mm) and each label's voxel count.

    Labels are numbered from 1 by decreasing size.
    """
    from scipy import ndimage

    p = {**DEFAULTS, **{k: v for k, v in parameters.items() if v is not None}}
    data = np.asarray(array, dtype=np.float32)
    spacing_kji = (float(spacing[2]), float(spacing[1]), float(spacing[0]))
    if p["lower"] is None and p["upper"] is None:
        regions = _focal(data, spacing_kji, p, progress)
    else:
        regions = _window(data, spacing_kji, p, progress)
    opening = _ball(float(p["opening_mm"]), spacing_kji)
    closing = _ball(float(p["closing_mm"]), spacing_kji)
    for region in regions:
        if opening is not None:
            region.mask = ndimage.binary_opening(region.mask, opening)
        if closing is not None:
            region.mask = ndimage.binary_closing(region.mask, closing)
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    kept = sorted(
        (r for r in regions if r.voxels * voxel_mm3 >= float(p["min_size_mm3"])),
        key=lambda r: -r.voxels,
    )[: int(p["max_regions"])]
    label_map = np.zeros(data.shape, dtype=np.uint8)
    sizes = []
    for value, region in enumerate(kept, start=1):
        target = label_map[region.box]
        write = region.mask & (target == 0)
        target[write] = value
        sizes.append(int(write.sum()))
    progress(0.9)
    return label_map, sizes


class ClassicalSegmenter:
    """Focal-lesion or window segmentation of CT and MR series (see the module docstring)."""

    name = "classical-segmenter"
    version = "2.0.0"
    task = Task.SEGMENTATION
    accepts = Accepts(modalities=("CT", "MR"), min_slices=3)
    weights_sha256 = ""
    description = (
        "Focal lesions brighter or darker than their surroundings (top-hat detection, "
        "half-way boundary), or an intensity window with hysteresis; components over a "
        "minimum size."
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
