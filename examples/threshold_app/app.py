# mypy: disallow-untyped-calls=False
"""The threshold app: in each CT image, the brightest connected blob above a threshold.

For each image of the request's series it finds the pixels above ``threshold`` HU (a request
parameter, default 300), keeps the connected blob with the highest mean, and answers:

- its outline as a POLYGON region (pixel coordinates, ``[column, row]``), labelled "bright
  blob", and its centre of mass as a POINT;
- its area in mm2 (UCUM ``mm2``) as a measurement on that image;
- a quality verdict per image: ``fail`` without PixelSpacing, ``warn`` with nothing above the
  threshold, ``pass`` otherwise;
- a classification "bright blob" or "no bright blob" for the whole input, and a display text;
- with the parameter ``seg: true``, a binary DICOM SEG of the blobs (highdicom), per series,
  stored over STOW-RS before the JSON result.

Serve it with ``uvicorn threshold_app.app:app --port 9000`` (from examples/), or
``python -m threshold_app --port 9000``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from skimage import measure

from radpacs.client.app_kit import Inputs, create_app
from radpacs.client.apps import (
    AnalysisRequest,
    AnalysisResult,
    Classification,
    GraphicType,
    ImageQuality,
    Measurement,
    QualityStatus,
    Region,
    ResultStatus,
    Style,
)

__all__ = ["NAME", "analyze", "app", "brightest_blob"]

NAME = "threshold"
VERSION = "1.0"
LABEL = "bright blob"


@dataclass(frozen=True)
class Blob:
    """One blob on one image: its mask, outline (column, row) and centre."""

    mask: npt.NDArray[np.bool_]
    outline: list[tuple[float, float]]
    centre: tuple[float, float]


def hounsfield(ds: Dataset) -> npt.NDArray[np.float64]:
    """The image in HU (modality LUT: stored value * slope + intercept)."""
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return np.asarray(ds.pixel_array, dtype=np.float64) * slope + intercept


def brightest_blob(image: npt.NDArray[np.float64], threshold: float) -> Blob | None:
    """The connected region above ``threshold`` with the highest mean, or None."""
    labels = measure.label(image > threshold, connectivity=1)
    if labels.max() == 0:
        return None
    best = max(measure.regionprops(labels, intensity_image=image), key=lambda r: r.intensity_mean)
    mask = labels == best.label
    # contours of the padded mask at 0.5 run along pixel edges: pixel (r, c) spans
    # [c, c+1] x [r, r+1] in DICOM image coordinates, so add 0.5 to centre-based indices
    contours = measure.find_contours(np.pad(mask, 1).astype(float), 0.5)
    contour = max(contours, key=len) - 1.0
    contour = measure.approximate_polygon(contour, tolerance=0.5)
    outline = [(float(c) + 0.5, float(r) + 0.5) for r, c in contour]
    height, width = image.shape
    outline = [(min(max(c, 0.0), width), min(max(r, 0.0), height)) for c, r in outline]
    row, column = best.centroid
    return Blob(mask, outline, (float(column) + 0.5, float(row) + 0.5))


def _segmentation(images: list[Dataset], masks: list[npt.NDArray[np.bool_]]) -> Dataset:
    """A binary SEG of one series' blobs (one frame per source image)."""
    algorithm = hd.AlgorithmIdentificationSequence(
        name=NAME, family=codes.cid7162.ArtificialIntelligence, version=VERSION
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    return hd.seg.Segmentation(
        source_images=images,
        pixel_array=np.stack(masks).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=generate_uid(),
        series_number=9021,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="radpacs example",
        manufacturer_model_name=NAME,
        software_versions=VERSION,
        device_serial_number="1",
        series_description=f"{NAME} blobs",
    )


def analyze(request: AnalysisRequest, inputs: Inputs) -> AnalysisResult:
    """The brightest blob of every image; see the module."""
    threshold = float(request.parameters.get("threshold", 300))
    images = inputs.instances()
    regions: list[Region] = []
    measurements: list[Measurement] = []
    quality: list[ImageQuality] = []
    masks: dict[str, tuple[list[Dataset], list[npt.NDArray[np.bool_]]]] = defaultdict(
        lambda: ([], [])
    )
    largest = 0.0
    for number, ds in enumerate(images, start=1):
        if number % max(1, len(images) // 4) == 0:
            inputs.progress(100 * number / len(images))  # also stops here when cancelled
        if ds.get("Modality") != "CT" or "PixelData" not in ds:
            continue
        ref = inputs.image(ds)
        if "PixelSpacing" not in ds:
            quality.append(
                ImageQuality(image=ref, status=QualityStatus.FAIL, reason="no PixelSpacing")
            )
            continue
        blob = brightest_blob(hounsfield(ds), threshold)
        series_images, series_masks = masks[str(ds.SeriesInstanceUID)]
        series_images.append(ds)
        if blob is None:
            series_masks.append(np.zeros((int(ds.Rows), int(ds.Columns)), dtype=bool))
            reason = f"no pixel above {threshold:g} HU"
            quality.append(ImageQuality(image=ref, status=QualityStatus.WARN, reason=reason))
            continue
        series_masks.append(blob.mask)
        quality.append(ImageQuality(image=ref, status=QualityStatus.PASS))
        regions.append(
            Region(
                label=LABEL,
                graphic_type=GraphicType.POLYGON,
                image=ref,
                points=blob.outline,
                style=Style(color="#ffcc00", line_width=2),
            )
        )
        regions.append(
            Region(label="centre", graphic_type=GraphicType.POINT, image=ref, points=[blob.centre])
        )
        spacing = [float(v) for v in ds.PixelSpacing]
        area = float(blob.mask.sum()) * spacing[0] * spacing[1]
        largest = max(largest, area)
        measurements.append(
            Measurement(label="blob area", value=round(area, 2), unit="mm2", image=ref)
        )
    if request.parameters.get("seg") is True:
        segs = [
            _segmentation(series_images, series_masks)
            for series_images, series_masks in masks.values()
            if any(mask.any() for mask in series_masks)
        ]
        if segs:
            inputs.store(segs)
    found = sum(1 for region in regions if region.label == LABEL)
    return AnalysisResult(
        status=ResultStatus.COMPLETED,
        display_text=(
            f"{found} bright blob(s) above {threshold:g} HU in {len(quality)} images"
            + (f", the largest {largest:.0f} mm²" if found else "")
        ),
        regions=regions,
        classifications=[Classification(label=LABEL if found else f"no {LABEL}")],
        measurements=measurements,
        quality=quality,
    )


app = create_app(analyze, name=NAME)
