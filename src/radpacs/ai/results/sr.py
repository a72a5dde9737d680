"""Structured reports (highdicom): classification findings and TID 1500 measurement reports.

- :func:`build_classification_sr`: a Comprehensive 3D SR holding a TID 1500 Measurement Report
  with one TID 1501 measurement group per classified image: the most probable class (or, for
  multi-label models, each class above the threshold) as a coded Finding (DCM 121071), one
  probability measurement per class (UCUM "1"), the model
  as AlgorithmIdentification (TID 4019) and the image as source (SourceImageForMeasurementGroup).
- :func:`build_measurement_sr`: a Comprehensive 3D SR, TID 1500 with one TID 1411 volumetric
  group per segment, referencing the SEG segment (ReferencedSegment) and holding its volume
  (SCT 118565006, mm3), longest diameter (SCT 81827009, mm) and slice range (first and last
  slice, 1-based, in volume order along the normal).

Class and finding codes without a standard code use the private scheme ``99RADPACS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset

from radpacs.ai.provenance import MANUFACTURER, Provenance
from radpacs.ai.results.measure import RegionMeasurement
from radpacs.ai.results.uids import new_uid
from radpacs.errors import InvalidInput

__all__ = ["ClassScore", "build_classification_sr", "build_measurement_sr"]

PRIVATE_SCHEME = "99RADPACS"


@dataclass(frozen=True)
class ClassScore:
    """One class of a classifier and its probability in [0, 1]."""

    code: tuple[str, str, str]
    probability: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability {self.probability!r} is not in [0, 1]")


def _concept(code: tuple[str, str, str]) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(*code)


def _observation_context(provenance: Provenance) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=new_uid(),
                name=provenance.name[:64],
                manufacturer_name=MANUFACTURER,
                model_name=f"{provenance.name} {provenance.version}"[:64],
            ),
        )
    )


def _algorithm(provenance: Provenance) -> Any:
    import highdicom as hd

    return hd.sr.AlgorithmIdentification(
        name=provenance.name[:64],
        version=provenance.version[:64],
        parameters=[f"{k}={v}"[:64] for k, v in provenance.algorithm_parameters().items()],
    )


def _document(
    evidence: Sequence[Dataset],
    report: Any,
    provenance: Provenance,
    description: str,
    series_number: int,
    series_uid: str | None,
    instance_number: int,
) -> Dataset:
    import highdicom as hd

    sr = hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=report,
        series_instance_uid=series_uid or new_uid(),
        series_number=series_number,
        sop_instance_uid=new_uid(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        series_description=description[:64],
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    return provenance.stamp(sr)


def build_classification_sr(
    image: Dataset,
    scores: Sequence[ClassScore],
    provenance: Provenance,
    series_number: int = 9010,
    series_uid: str | None = None,
    instance_number: int = 1,
    findings: Sequence[ClassScore] | None = None,
) -> Dataset:
    """An SR for one classified image: every class's probability, and as Finding (DCM 121071)
    each of ``findings`` (default: the most probable class; multi-label models pass the
    classes above their threshold, possibly none)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not scores:
        raise InvalidInput("a classification needs at least one class score")
    if findings is None:
        findings = [max(scores, key=lambda score: score.probability)]
    measurements = [
        hd.sr.Measurement(
            name=hd.sr.CodedConcept(
                f"P-{score.code[0]}"[:16], PRIVATE_SCHEME, f"Probability of {score.code[2]}"[:64]
            ),
            value=round(score.probability, 6),
            unit=codes.UCUM.NoUnits,
            algorithm_id=_algorithm(provenance),
        )
        for score in scores
    ]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=new_uid(), identifier=f"{provenance.name} classification"[:64]
        ),
        algorithm_id=_algorithm(provenance),
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(name=codes.DCM.Finding, value=_concept(f.code))
            for f in findings
        ]
        or None,
        measurements=measurements,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(image)],
    )
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(provenance),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[group],
    )
    return _document(
        [image],
        report,
        provenance,
        f"{provenance.name} classification",
        series_number,
        series_uid,
        instance_number,
    )


def build_measurement_sr(
    seg: Dataset,
    source_images: Sequence[Dataset],
    measurements: Mapping[int, RegionMeasurement],
    provenance: Provenance,
    series_number: int = 9003,
) -> Dataset:
    """A TID 1500 report with the measurements of each SEG segment (segment number -> values)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    parsed = hd.seg.Segmentation.from_dataset(seg, copy=True)
    groups = []
    for number, values in sorted(measurements.items()):
        description = parsed.get_segment_description(number)
        items = [
            hd.sr.Measurement(
                name=codes.SCT.Volume,
                value=round(values.volume_mm3, 3),
                unit=codes.UCUM.CubicMillimeter,
            ),
            hd.sr.Measurement(
                name=codes.SCT.Diameter,
                value=round(values.longest_diameter_mm, 3),
                unit=codes.UCUM.Millimeter,
            ),
            hd.sr.Measurement(
                name=hd.sr.CodedConcept("FIRSTSLICE", PRIVATE_SCHEME, "First slice"),
                value=values.first_slice,
                unit=codes.UCUM.NoUnits,
            ),
            hd.sr.Measurement(
                name=hd.sr.CodedConcept("LASTSLICE", PRIVATE_SCHEME, "Last slice"),
                value=values.last_slice,
                unit=codes.UCUM.NoUnits,
            ),
        ]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=new_uid(), identifier=str(description.segment_label)[:64]
                ),
                # built by hand: highdicom's from_segmentation looks for the segment in the
                # per-frame groups, where a one-segment SEG does not put it
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg.SOPClassUID,
                    sop_instance_uid=seg.SOPInstanceUID,
                    segment_number=number,
                    source_series=hd.sr.SourceSeriesForSegmentation(
                        source_images[0].SeriesInstanceUID
                    ),
                ),
                finding_type=description.segmented_property_type,
                algorithm_id=_algorithm(provenance),
                measurements=items,
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(provenance),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    return _document(
        [seg, *source_images],
        report,
        provenance,
        f"{provenance.name} measurements",
        series_number,
        None,
        1,
    )
