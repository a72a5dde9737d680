"""An app's JSON result as DICOM: TID 1500 Measurement Reports in Comprehensive 3D SR.

:func:`result_datasets` turns a completed :class:`~radpacs.client.apps.AnalysisResult` into
at most two SR documents, each in a new series of the inputs' study (series number 9020,
descriptions "<app> regions" and "<app> findings"; PS3.16 TID 1500):

- the *regions* report: one TID 1410 planar ROI group per region, its outline as an Image
  Region SCOORD (PS3.3 C.18.6) on the referenced image and frame, a tracking identifier
  naming the Cornerstone3D tool OHIF draws it with (``Cornerstone3DTools@^0.1.0:<tool>
  <label> #n``: PlanarFreehandROI for polygons and polylines, Length for a 2-point line,
  CircleROI, EllipticalROI, Probe for points), the label as Finding, and its area (SCT
  42798000, mm2) or, for an open polyline, its length (SCT 410668003, mm) when the image has
  PixelSpacing, inferred from a copy of the outline (OHIF's tools read the outline there).
  A ``POLYGON`` becomes a closed POLYLINE (2D SCOORD has no POLYGON), a ``MULTIPOINT``
  region one POINT group per point (TID 1410 has no multipoint region). OHIF draws these.
- the *findings* report: one TID 1501 group for the whole input with the classifications
  (Finding, DCM 121071, and the probability as a measurement in UCUM ``1``), the measurements
  without an image and the display text (a TEXT Comment, DCM 121106); and one TID 1501 group
  per image with its measurements (UCUM units as given) and its quality-control verdict (a
  qualitative evaluation ``Image quality control`` with a pass, warn or fail code, and the
  reason as a Comment).

The algorithm is the app: its name is the observer device, AlgorithmIdentification and the
ContributingEquipmentSequence (:class:`radpacs.ai.provenance.Provenance`); the workitem UID is
one of its AlgorithmParameters. Labels without a standard code use the private scheme
``99RADPACS``.

Example::

    [regions_sr, findings_sr] = result_datasets(result, headers, app_name="threshold",
                                                workitem_uid="2.25.1")
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.uid import generate_uid

from radpacs.ai.provenance import Provenance
from radpacs.ai.results.sr import (
    PRIVATE_SCHEME,
    _algorithm,
    _document,
    _observation_context,
)
from radpacs.client.apps import (
    AnalysisResult,
    GraphicType,
    ImageRef,
    QualityStatus,
    Region,
    ResultStatus,
)
from radpacs.errors import InvalidInput

__all__ = ["APP_VERSION", "SERIES_NUMBER", "result_datasets"]

APP_VERSION = "external app"  # the contract carries no app version
SERIES_NUMBER = 9020
_POINT_COUNTS = {
    GraphicType.POINT: (1, 1),
    GraphicType.CIRCLE: (2, 2),
    GraphicType.ELLIPSE: (4, 4),
    GraphicType.POLYLINE: (2, None),
    GraphicType.POLYGON: (3, None),
    GraphicType.MULTIPOINT: (1, None),
}
# OHIF draws an SR region with the Cornerstone3D tool its tracking identifier starts with
# (@cornerstonejs/adapters); without one it draws only points and 4-corner polylines.
_VIEWER_TAG = "Cornerstone3DTools@^0.1.0"
_VIEWER_TOOLS = {
    GraphicType.POINT: "Probe",
    GraphicType.MULTIPOINT: "Probe",
    GraphicType.POLYLINE: "PlanarFreehandROI",
    GraphicType.POLYGON: "PlanarFreehandROI",
    GraphicType.CIRCLE: "CircleROI",
    GraphicType.ELLIPSE: "EllipticalROI",
}
_QUALITY_CODES = {
    QualityStatus.PASS: ("QCPASS", "Image quality acceptable"),
    QualityStatus.WARN: ("QCWARN", "Image quality questionable"),
    QualityStatus.FAIL: ("QCFAIL", "Image quality unacceptable"),
}


def _code_value(label: str, prefix: str = "") -> str:
    """A short code value (16 characters at most) for a free-text label, stable per label."""
    slug = re.sub(r"[^A-Z0-9]+", "-", label.upper()).strip("-") or "X"
    value = f"{prefix}{slug}"
    if len(value) <= 16:
        return value
    digest = hashlib.sha256(label.encode()).hexdigest()[:6].upper()
    return f"{value[:9]}-{digest}"


def _concept(label: str, prefix: str = "") -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(_code_value(label, prefix), PRIVATE_SCHEME, label[:64])


def _text(name: Any, value: str) -> Any:
    import highdicom as hd

    return hd.sr.TextContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )


class _Sources:
    """The referenced instances' headers by SOP Instance UID, and the reference checks."""

    def __init__(self, sources: Sequence[Dataset]) -> None:
        self.by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}

    def image(self, ref: ImageRef, what: str) -> Dataset:
        source = self.by_uid.get(ref.sop_instance_uid)
        if source is None:
            raise InvalidInput(
                f"{what} names instance {ref.sop_instance_uid}, which is not an input of the "
                "analysis"
            )
        frames = int(source.get("NumberOfFrames", 1) or 1)
        if ref.frame > frames:
            raise InvalidInput(
                f"{what} names frame {ref.frame} of instance {ref.sop_instance_uid}, which has "
                f"{frames} frame(s)"
            )
        return source

    @staticmethod
    def frames(source: Dataset, ref: ImageRef) -> list[int] | None:
        """The frame to reference, for an image of a multi-frame IOD only (highdicom refuses
        frame numbers for others)."""
        from highdicom._standard_utils import is_multiframe_image

        return [ref.frame] if is_multiframe_image(source) else None


def _check_points(region: Region, source: Dataset, what: str) -> None:
    least, most = _POINT_COUNTS[region.graphic_type]
    count = len(region.points)
    if count < least or (most is not None and count > most):
        wanted = str(least) if least == most else f"at least {least}"
        raise InvalidInput(f"{what}: a {region.graphic_type} needs {wanted} points, not {count}")
    columns, rows = int(source.Columns), int(source.Rows)
    for column, row in region.points:
        if not (0 <= column <= columns and 0 <= row <= rows):
            raise InvalidInput(
                f"{what}: point ({column}, {row}) is outside the image of {columns} columns x "
                f"{rows} rows"
            )


def _viewer_tool(graphic_type: GraphicType, count: int) -> str:
    """The Cornerstone3D tool that draws a region of this kind in OHIF."""
    if graphic_type is GraphicType.POLYLINE and count == 2:
        return "Length"
    return _VIEWER_TOOLS[graphic_type]


def _graphic_data(region: Region) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """(graphic type, viewer tool, points) of each SCOORD the region becomes; polygons
    closed."""
    points = [(float(c), float(r)) for c, r in region.points]
    tool = _viewer_tool(region.graphic_type, len(points))
    if region.graphic_type is GraphicType.MULTIPOINT:
        return [("POINT", tool, [point]) for point in points]
    if region.graphic_type is GraphicType.POLYGON:  # 2D SCOORD has no POLYGON (C.18.6.1.2)
        return [("POLYLINE", tool, points if points[0] == points[-1] else [*points, points[0]])]
    return [(region.graphic_type.value, tool, points)]


def _spacing(source: Dataset) -> tuple[float, float] | None:
    """(column, row) pixel spacing in mm from PixelSpacing (row, column), if present."""
    spacing = source.get("PixelSpacing")
    if not spacing or len(spacing) != 2:
        return None
    return float(spacing[1]), float(spacing[0])


def _size(graphic_type: str, points: list[tuple[float, float]], dx: float, dy: float) -> Any:
    """The region's area (mm2) or, for an open polyline, its length (mm), as a (code, unit,
    value) triple; None for points. Pixels scale by (dx, dy); an area by dx * dy."""
    from pydicom.sr.codedict import codes

    if graphic_type == "POINT":
        return None
    if graphic_type == "CIRCLE":
        (cx, cy), (ex, ey) = points
        area = math.pi * ((ex - cx) ** 2 + (ey - cy) ** 2) * dx * dy
    elif graphic_type == "ELLIPSE":
        (ax, ay), (bx, by), (cx, cy), (ex, ey) = points
        major, minor = math.dist((ax, ay), (bx, by)), math.dist((cx, cy), (ex, ey))
        area = math.pi * major * minor / 4 * dx * dy
    elif points[0] == points[-1] and len(points) > 3:  # a closed polyline: shoelace
        twice = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(points))
        area = abs(twice) / 2 * dx * dy
    else:
        length = sum(
            math.hypot((x1 - x0) * dx, (y1 - y0) * dy)
            for (x0, y0), (x1, y1) in itertools.pairwise(points)
        )
        return codes.SCT.Length, codes.UCUM.Millimeter, length
    return codes.SCT.Area, codes.UCUM.SquareMillimeter, area


def _size_measurement(
    graphic_type: str, points: list[tuple[float, float]], source: Dataset, image: Any
) -> tuple[Any, Any] | None:
    """The region's area or length as a TID 1419 measurement, and the copy of its outline it
    is inferred from; None for points or an image without PixelSpacing."""
    import highdicom as hd
    import numpy as np

    spacing = _spacing(source)
    size = _size(graphic_type, points, *spacing) if spacing else None
    if size is None:
        return None
    name, unit, value = size
    inferred = hd.sr.CoordinatesForMeasurement(
        graphic_type=graphic_type,
        graphic_data=np.asarray(points, dtype=np.float64),
        source_image=image,
    )
    return hd.sr.Measurement(name=name, value=round(value, 3), unit=unit), inferred


def _infer_from(group: Any, inferred: Any) -> None:
    """Hang ``inferred`` (an INFERRED FROM SCOORD) under the group's measurement. By hand:
    highdicom refuses coordinates on a TID 1410 group's measurement, but OHIF's drawing tools
    find a group's outline only under its NUM (docs/decisions.md)."""
    [number] = [item for item in group[0].ContentSequence if item.ValueType == "NUM"]
    if "ContentSequence" not in number:
        number.ContentSequence = []
    number.ContentSequence.append(inferred)


def _region_groups(
    result: AnalysisResult, sources: _Sources, provenance: Provenance
) -> tuple[list[Any], list[Dataset]]:
    import highdicom as hd
    import numpy as np

    groups: list[Any] = []
    used: list[Dataset] = []
    for index, region in enumerate(result.regions, start=1):
        what = f"region {index} ({region.label!r})"
        source = sources.image(region.image, what)
        _check_points(region, source, what)
        used.append(source)
        for graphic_type, tool, points in _graphic_data(region):
            number = len(groups) + 1
            image = hd.sr.SourceImageForRegion.from_source_image(
                source, sources.frames(source, region.image)
            )
            size = _size_measurement(graphic_type, points, source, image)
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=generate_uid(),
                        identifier=f"{_VIEWER_TAG}:{tool} {region.label} #{number}"[:64],
                    ),
                    referenced_region=hd.sr.ImageRegion(
                        graphic_type=graphic_type,
                        graphic_data=np.asarray(points, dtype=np.float64),
                        source_image=image,
                    ),
                    finding_type=_concept(region.label),
                    algorithm_id=_algorithm(provenance),
                    measurements=[size[0]] if size else None,
                )
            )
            if size:
                _infer_from(groups[-1], size[1])
    return groups, used


@dataclass
class _ImageItems:
    """What the findings report says about one image: measurements and content items."""

    source: Dataset
    ref: ImageRef
    measurements: list[Any] = field(default_factory=list)
    evaluations: list[Any] = field(default_factory=list)


def _finding_groups(result: AnalysisResult, sources: _Sources, provenance: Provenance) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    comment = hd.sr.CodedConcept("121106", "DCM", "Comment")
    quality_name = hd.sr.CodedConcept("IMAGEQC", PRIVATE_SCHEME, "Image quality control")
    per_image: dict[tuple[str, int], _ImageItems] = {}

    def entry(ref: ImageRef, what: str) -> _ImageItems:
        key = (ref.sop_instance_uid, ref.frame)
        if key not in per_image:
            per_image[key] = _ImageItems(sources.image(ref, what), ref)
        return per_image[key]

    def measurement(label: str, value: float, unit: str, name: Any = None) -> Any:
        return hd.sr.Measurement(
            name=name or _concept(label),
            value=value,
            unit=hd.sr.CodedConcept(unit, "UCUM", unit),
            algorithm_id=_algorithm(provenance),
        )

    whole_measurements: list[Any] = []
    whole_evaluations: list[Any] = []
    for item in result.classifications:
        whole_evaluations.append(
            hd.sr.QualitativeEvaluation(name=codes.DCM.Finding, value=_concept(item.label))
        )
        if item.probability is not None:
            whole_measurements.append(
                measurement(
                    item.label,
                    round(item.probability, 6),
                    "1",
                    _concept(f"Probability of {item.label}", "P-"),
                )
            )
    for index, given in enumerate(result.measurements, start=1):
        built = measurement(given.label, given.value, given.unit)
        if given.image is None:
            whole_measurements.append(built)
        else:
            what = f"measurement {index} ({given.label!r})"
            entry(given.image, what).measurements.append(built)
    for index, quality in enumerate(result.quality, start=1):
        code, meaning = _QUALITY_CODES[quality.status]
        evaluations = entry(quality.image, f"quality verdict {index}").evaluations
        evaluations.extend(
            hd.sr.QualitativeEvaluation(
                name=quality_name, value=hd.sr.CodedConcept(code, PRIVATE_SCHEME, meaning)
            )
        )
        if quality.reason:
            evaluations.append(_text(comment, quality.reason))

    groups: list[Any] = []
    if whole_measurements or whole_evaluations or result.display_text:
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=f"{provenance.name} findings"[:64]
            ),
            algorithm_id=_algorithm(provenance),
            measurements=whole_measurements or None,
            qualitative_evaluations=whole_evaluations or None,
        )
        if result.display_text:
            group[0].ContentSequence.append(_text(comment, result.display_text))
        groups.append(group)
    for number, items in enumerate(per_image.values(), start=1):
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=f"{provenance.name} image {number}"[:64]
            ),
            algorithm_id=_algorithm(provenance),
            source_images=[
                hd.sr.SourceImageForMeasurementGroup.from_source_image(
                    items.source, sources.frames(items.source, items.ref)
                )
            ],
            measurements=items.measurements or None,
        )
        # added by hand: highdicom's group takes no TEXT item
        group[0].ContentSequence.extend(items.evaluations)
        groups.append(group)
    return groups


def _report(groups: list[Any], provenance: Provenance) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.sr.MeasurementReport(
        observation_context=_observation_context(provenance),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )


def _unique(datasets: Sequence[Dataset]) -> list[Dataset]:
    seen: dict[str, Dataset] = {}
    for ds in datasets:
        seen.setdefault(str(ds.SOPInstanceUID), ds)
    return list(seen.values())


def result_datasets(
    result: AnalysisResult,
    sources: Sequence[Dataset],
    *,
    app_name: str,
    workitem_uid: str,
) -> list[Dataset]:
    """The SR documents for ``result`` (regions first, then findings; empty when the result is
    not completed or holds nothing), each in a new series of the sources' study.

    ``sources`` are the headers of the instances the result may name (pixel data not needed);
    the findings SR references all of them, so pass at least one input even for a result
    that names no image (with none, such a result makes no DICOM).
    Raises :class:`~radpacs.errors.InvalidInput` for a region, measurement or verdict naming
    an instance not in ``sources`` or a frame beyond its NumberOfFrames, a point outside its
    Columns x Rows, or a wrong number of points for the graphic type.
    """
    if result.status is not ResultStatus.COMPLETED:
        return []
    provenance = Provenance(
        name=app_name[:64], version=APP_VERSION, parameters={"workitem": workitem_uid}
    )
    checked = _Sources(sources)
    try:
        region_groups, region_images = _region_groups(result, checked, provenance)
        finding_groups = _finding_groups(result, checked, provenance)
    except (ValueError, TypeError) as exc:  # highdicom's constructors, e.g. a SEG as source
        raise InvalidInput(f"the result cannot be written as DICOM SR: {exc}") from exc
    if not sources:  # nothing named an image: whole-input findings with no study to join
        return []
    documents: list[Dataset] = []
    for groups, images, kind in (
        (region_groups, region_images, "regions"),
        (finding_groups, list(sources), "findings"),
    ):
        if not groups:
            continue
        documents.append(
            _document(
                _unique(images),
                _report(groups, provenance),
                provenance,
                f"{app_name} {kind}",
                SERIES_NUMBER,
                None,  # a new series: each its own description
                1,
            )
        )
    return documents
