"""An app's JSON result as DICOM: TID 1500 Measurement Reports in Comprehensive 3D SR.

:func:`result_datasets` turns a completed :class:`~radpacs.client.apps.AnalysisResult` into
at most two SR documents, each in a new series of the inputs' study (series number 9020,
descriptions "<app> regions" and "<app> findings"; PS3.16 TID 1500):

- the *regions* report: one TID 1410 planar ROI group per region, its outline as an Image
  Region SCOORD (PS3.3 C.18.6) on the referenced image and frame, a tracking identifier
  (``label #n``) and the label as Finding; a ``POLYGON`` becomes a closed POLYLINE (2D SCOORD
  has no POLYGON), a ``MULTIPOINT`` region becomes one POINT group per
  point, as TID 1410 has no multipoint region. OHIF draws these.
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


def _graphic_data(region: Region) -> list[tuple[str, list[tuple[float, float]]]]:
    """(graphic type, points) of each SCOORD the region becomes; polygons closed."""
    points = [(float(c), float(r)) for c, r in region.points]
    if region.graphic_type is GraphicType.MULTIPOINT:
        return [("POINT", [point]) for point in points]
    if region.graphic_type is GraphicType.POLYGON:  # 2D SCOORD has no POLYGON (C.18.6.1.2)
        return [("POLYLINE", points if points[0] == points[-1] else [*points, points[0]])]
    return [(region.graphic_type.value, points)]


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
        for graphic_type, points in _graphic_data(region):
            number = len(groups) + 1
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=generate_uid(), identifier=f"{region.label} #{number}"[:64]
                    ),
                    referenced_region=hd.sr.ImageRegion(
                        graphic_type=graphic_type,
                        graphic_data=np.asarray(points, dtype=np.float64),
                        source_image=hd.sr.SourceImageForRegion.from_source_image(
                            source, sources.frames(source, region.image)
                        ),
                    ),
                    finding_type=_concept(region.label),
                    algorithm_id=_algorithm(provenance),
                )
            )
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
