"""Exports of a patient's follow-up: flat rows (CSV, JSON) and a DICOM SR (TID 1500).

:func:`rows` gives one row per lesion per timepoint, with the timepoint's responses
repeated on each row, in a long ("tidy") shape that R, pandas or SPSS load directly:
``pandas.read_csv(url)``; sizes are in mm and mm3, an empty cell is "not measured".

:func:`build_tracking_sr` writes a Comprehensive 3D SR holding a TID 1500 Measurement
Report (PS3.16 A.35) with one TID 1501 group per lesion per timepoint:

- TID 4108 tracking identifier and tracking unique identifier: the lesion's UID is the same
  in each timepoint's group, which is how another archive or OHIF follows the lesion;
- TID 1502 time point context: the visit date as Time Point, Time Point Type Baseline
  (DCM 121079) or Posttreatment (DCM 126074), Time Point Order (visit + 1);
- finding Lesion (SCT 52988006), long axis (SCT 103339001), short axis (SCT 103340004) and
  volume (SCT 118565006);
- the lesion's role and each timepoint's RECIST 1.1 category, which have no standard code,
  as qualitative evaluations in the private scheme ``99RADPACS``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from pydicom import Dataset
from pydicom.uid import generate_uid

from radpacs.errors import InvalidInput

__all__ = [
    "COLUMNS",
    "REPORT_DESCRIPTION",
    "build_tracking_sr",
    "is_followup_report",
    "rows",
    "to_csv",
]

COLUMNS = [
    "patient_id",
    "visit",
    "date",
    "study_uids",
    "lesion_uid",
    "tracking_id",
    "label",
    "role",
    "lymph_node",
    "organ",
    "confidence",
    "status",
    "long_axis_mm",
    "short_axis_mm",
    "volume_mm3",
    "volume_change_pct",
    "source",
    "recist",
    "recist_sum_mm",
    "recist_change_from_baseline_pct",
    "recist_change_from_nadir_pct",
    "volumetric",
]
PRIVATE_SCHEME = "99RADPACS"
MANUFACTURER = "radpacs"
#: SeriesDescription of the follow-up report: the feed does not read it back as measurements.
REPORT_DESCRIPTION = "Longitudinal follow-up"


def is_followup_report(ds: Dataset) -> bool:
    """Whether ``ds`` is a report :func:`build_tracking_sr` wrote."""
    return (
        str(ds.get("SeriesDescription", "")) == REPORT_DESCRIPTION
        and str(ds.get("Manufacturer", "")) == MANUFACTURER
    )


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per lesion per timepoint (see :data:`COLUMNS`)."""
    responses = result.get("responses", {})
    recist = responses.get("recist", [])
    volumetric = responses.get("volumetric", [])
    out = []
    for tp in result["timepoints"]:
        visit = tp["visit"]
        r = recist[visit] if visit < len(recist) else {}
        v = volumetric[visit] if visit < len(volumetric) else {}
        for lesion in result["lesions"]:
            m = lesion["measurements"][visit]
            out.append(
                {
                    "patient_id": result["patient_id"],
                    "visit": visit,
                    "date": tp["date"],
                    "study_uids": " ".join(tp["study_uids"]),
                    "lesion_uid": lesion["uid"],
                    "tracking_id": lesion["tracking_id"],
                    "label": lesion["label"],
                    "role": lesion["role"],
                    "lymph_node": lesion["lymph_node"],
                    "organ": lesion["organ"],
                    "confidence": lesion["confidence"],
                    "status": m["status"],
                    "long_axis_mm": m.get("long_axis_mm"),
                    "short_axis_mm": m.get("short_axis_mm"),
                    "volume_mm3": m.get("volume_mm3"),
                    "volume_change_pct": m.get("volume_change_pct"),
                    "source": m.get("source", ""),
                    "recist": r.get("category", ""),
                    "recist_sum_mm": r.get("total"),
                    "recist_change_from_baseline_pct": r.get("change_from_baseline_pct"),
                    "recist_change_from_nadir_pct": r.get("change_from_nadir_pct"),
                    "volumetric": v.get("category", ""),
                }
            )
    return out


def to_csv(result: dict[str, Any]) -> str:
    """:func:`rows` as CSV with a header line; None is an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(result):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def _private(value: str, meaning: str) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(value[:16], PRIVATE_SCHEME, meaning[:64])


def build_tracking_sr(
    result: dict[str, Any],
    evidence: Sequence[Dataset],
    series_number: int = 9020,
) -> Dataset:
    """The follow-up as a TID 1500 report (see the module); ``evidence[0]`` is an instance of
    the study the report goes into (its patient and study attributes are copied), the rest
    the source objects the measurements came from."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not result.get("lesions"):
        raise InvalidInput(f"patient {result.get('patient_id')} has no lesion to report")
    recist = result.get("responses", {}).get("recist", [])
    groups = []
    for tp in result["timepoints"]:
        visit = tp["visit"]
        context = hd.sr.TimePointContext(
            time_point=(tp["date"] or f"visit {visit}")[:64],
            time_point_type=codes.DCM.Baseline if visit == 0 else codes.DCM.Posttreatment,
            time_point_order=visit + 1,
        )
        for lesion in result["lesions"]:
            m = lesion["measurements"][visit]
            if m["status"] == "absent":
                continue
            measurements = [
                hd.sr.Measurement(name=name, value=round(float(m[key]), 3), unit=unit)
                for name, key, unit in (
                    (codes.SCT.LongAxis, "long_axis_mm", codes.UCUM.Millimeter),
                    (codes.SCT.ShortAxis, "short_axis_mm", codes.UCUM.Millimeter),
                    (codes.SCT.Volume, "volume_mm3", codes.UCUM.CubicMillimeter),
                )
                if m.get(key) is not None
            ]
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=lesion["uid"],
                        identifier=f"{lesion['tracking_id']} {lesion['label']}"[:64],
                    ),
                    time_point_context=context,
                    finding_type=codes.SCT.Lesion,
                    measurements=measurements or None,
                    qualitative_evaluations=[
                        hd.sr.QualitativeEvaluation(
                            name=_private("ROLE", "Lesion role"),
                            value=_private(lesion["role"].upper(), f"{lesion['role']} lesion"),
                        ),
                        hd.sr.QualitativeEvaluation(
                            name=_private("STATUS", "Lesion status"),
                            value=_private(m["status"].upper(), m["status"]),
                        ),
                    ],
                )
            )
        if visit < len(recist):
            response = recist[visit]
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=generate_uid(), identifier=f"RECIST 1.1 visit {visit}"
                    ),
                    time_point_context=context,
                    measurements=[
                        hd.sr.Measurement(
                            name=_private("SUMDIAM", "Sum of diameters"),
                            value=round(float(response["total"]), 3),
                            unit=codes.UCUM.Millimeter,
                        )
                    ]
                    if response.get("total") is not None
                    else None,
                    qualitative_evaluations=[
                        hd.sr.QualitativeEvaluation(
                            name=_private("RECIST11", "RECIST 1.1 response"),
                            value=_private(
                                response["category"].upper(), f"RECIST {response['category']}"
                            ),
                        )
                    ],
                )
            )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                    uid=generate_uid(), name="radpacs follow-up", manufacturer_name=MANUFACTURER
                ),
            )
        ),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=report,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=REPORT_DESCRIPTION,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
