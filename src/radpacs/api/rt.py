"""Radiotherapy routes: DVHs of uploaded or stored RTSTRUCT + RTDOSE pairs, and DVH plots.

- ``POST /api/dvh``: multipart ``file_struct`` and ``file_dose`` (as in the workshop API),
  optional form fields ``roi`` (number or name), ``prescription`` (Gy), ``relative_volume``,
  ``bin_width`` (Gy), ``metrics`` (comma-separated, e.g. ``D95,D2cc,V20Gy,V95%``).
  Answers the DVH object when one ROI is computed (``roi`` given, or a single ROI with
  contours, as in the workshop: one structure per request), else ``{"dvhs": [...]}`` with one
  object per ROI, a body that /api/dvh/plot takes as it is (see :meth:`radpacs.rt.DVH.to_dict`).
- ``POST /api/rt/dvh``: the same from stored objects, JSON
  ``{"rtstruct": uid, "rtdose": uid, "roi": ...}``, read from the archive.
- ``POST /api/rt/dvh/store``: the same, kept in the study as an RT Dose with an RT DVH
  module (:mod:`radpacs.rt.dicom_dvh`); answers its UIDs.
- ``GET /api/rt/studies/{study}/objects``: the study's plans, structure sets and doses and
  their references (:mod:`radpacs.rt.objects`).
- ``GET /api/rt/plans/{plan}/statistics``: statistics of every ROI of a stored plan's
  structure set in its dose (the ``PLAN`` dose, or the sum of the doses referencing it),
  ``?metrics=D95,V20Gy&prescription=60``; no curves, for scripts going over many plans.
- ``POST /api/dvh/plot``: JSON ``{"dvhs": [...]}``, or what /api/dvh answered as it is (one
  DVH object, or ``{"dvhs": [...]}``), or a bare list;
  PNG, or SVG with ``?format=svg`` or ``Accept: image/svg+xml``; ``?volume=absolute``
  keeps each curve's volume units, ``relative`` (default) scales to % of each ROI.

Several RTDOSEs (``file_dose`` parts, or ``"rtdose": [uid, ...]``) are a plan sum, with
``weights`` (form field ``1,0.5`` or JSON list), see :mod:`radpacs.rt.plansum`.

Parse, call :mod:`radpacs.rt`, respond: the routes are plain ``def`` so the DVH work runs
in the thread pool, never on the event loop.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import pydicom
from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from radpacs.errors import InvalidInput
from radpacs.http.deps import ArchiveDep
from radpacs.rt import (
    DVHOptions,
    PlotFormat,
    VolumeScale,
    curves_from_json,
    dvhs_from_datasets,
    plot_dvhs,
    read_dataset,
)
from radpacs.rt.dicom_dvh import dvh_dataset
from radpacs.rt.objects import KINDS, RTObjects, index

__all__ = ["StoredDVHRequest", "router"]

router = APIRouter(prefix="/api", tags=["rt"])


class StoredDVHRequest(BaseModel):
    """A DVH request on stored objects."""

    rtstruct: str = Field(min_length=1, description="SOP Instance UID of the RTSTRUCT")
    rtdose: str | list[str] = Field(
        min_length=1, description="SOP Instance UID of the RTDOSE, or several for a plan sum"
    )
    weights: list[float] | None = Field(
        default=None, description="plan sum: one factor per RTDOSE (default 1 each)"
    )
    roi: int | str | None = Field(default=None, description="ROI number or name; all if absent")
    prescription: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="prescription dose, Gy"
    )
    relative_volume: bool = False
    bin_width: float = Field(
        default=0.01, gt=0, allow_inf_nan=False, description="dose step of the curve, Gy"
    )
    metrics: list[str] | None = None


@router.post("/dvh")
def dvh_from_files(
    file_struct: Annotated[UploadFile | None, File(description="the RTSTRUCT")] = None,
    file_dose: Annotated[
        list[UploadFile] | None, File(description="the RTDOSE; several for a plan sum")
    ] = None,
    roi: Annotated[str | None, Form(description="ROI number or name")] = None,
    prescription: Annotated[float | None, Form(gt=0, allow_inf_nan=False)] = None,
    relative_volume: Annotated[bool, Form()] = False,
    bin_width: Annotated[float, Form(gt=0, allow_inf_nan=False)] = 0.01,
    metrics: Annotated[str | None, Form(description="comma-separated, e.g. D95,V20Gy")] = None,
    weights: Annotated[
        str | None, Form(description="plan sum: comma-separated factor per file_dose")
    ] = None,
) -> dict[str, Any]:
    """DVH of each ROI with contours (or of ``roi``) of an uploaded RTSTRUCT and RTDOSE
    (several ``file_dose`` parts are summed, with ``weights``)."""
    if file_struct is None or not file_dose:
        raise InvalidInput("both 'file_struct' (RTSTRUCT) and 'file_dose' (RTDOSE) are required")
    rtstruct = read_dataset(file_struct.file.read(), "file_struct")
    rtdoses = [read_dataset(part.file.read(), "file_dose") for part in file_dose]
    names = [name.strip() for name in metrics.split(",") if name.strip()] if metrics else None
    factors = _weights(weights) if weights else None
    return _dvh_response(
        rtstruct, rtdoses, roi, prescription, relative_volume, bin_width, names, factors
    )


def _weights(text: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError as exc:
        raise InvalidInput(f"weights must be comma-separated numbers, not {text!r}") from exc


@router.post("/rt/dvh")
def dvh_from_archive(archive: ArchiveDep, body: StoredDVHRequest) -> dict[str, Any]:
    """DVHs of an RTSTRUCT and an RTDOSE already in the archive, by SOP Instance UID."""
    rtstruct = archive.read_dataset(body.rtstruct)
    uids = [body.rtdose] if isinstance(body.rtdose, str) else body.rtdose
    rtdoses = [archive.read_dataset(uid) for uid in uids]
    return _dvh_response(
        rtstruct,
        rtdoses,
        body.roi,
        body.prescription,
        body.relative_volume,
        body.bin_width,
        body.metrics,
        body.weights,
    )


@router.post("/rt/dvh/store")
def store_dvh(archive: ArchiveDep, body: StoredDVHRequest) -> dict[str, Any]:
    """Compute as POST /api/rt/dvh and keep the DVHs in the study as an RT Dose with an
    RT DVH module (:mod:`radpacs.rt.dicom_dvh`)."""
    rtstruct = archive.read_dataset(body.rtstruct)
    uids = [body.rtdose] if isinstance(body.rtdose, str) else body.rtdose
    rtdoses = [archive.read_dataset(uid) for uid in uids]
    dvhs = dvhs_from_datasets(rtstruct, rtdoses, body.roi, DVHOptions(), body.weights)
    dataset = dvh_dataset(dvhs, rtstruct, rtdoses, body.weights, body.bin_width)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    [result] = archive.store_many([buffer.getvalue()])
    if result.outcome.value not in ("stored", "already_stored"):
        raise InvalidInput(f"the DVH object was not stored: {result.message}")
    return {
        "sop_instance_uid": str(dataset.SOPInstanceUID),
        "series_instance_uid": str(dataset.SeriesInstanceUID),
        "study_instance_uid": str(dataset.StudyInstanceUID),
        "rois": [{"name": dvh.name, "roi_number": dvh.roi_number} for dvh in dvhs],
        "method": str(dataset.DoseComment),
    }


@router.get("/rt/studies/{study}/objects")
def study_objects(archive: ArchiveDep, study: str) -> dict[str, Any]:
    """The RT plans, structure sets and doses of a stored study."""
    return _objects(archive, study).to_dict()


@router.get("/rt/plans/{plan}/statistics")
def plan_statistics(
    archive: ArchiveDep,
    plan: str,
    metrics: Annotated[str | None, Query(description="comma-separated, e.g. D95,V20Gy")] = None,
    prescription: Annotated[float | None, Query(gt=0, description="Gy")] = None,
) -> dict[str, Any]:
    """Statistics of every ROI with contours of a stored plan, in one answer."""
    header = archive.read_dataset(plan)
    objects = _objects(archive, str(header.get("StudyInstanceUID", "")))
    rtstruct_uid = objects.plan_structure_set(plan)
    dose_uids = objects.plan_doses(plan)
    names = [name.strip() for name in metrics.split(",") if name.strip()] if metrics else None
    rtstruct = archive.read_dataset(rtstruct_uid)
    rtdoses = [archive.read_dataset(uid) for uid in dose_uids]
    dvhs = dvhs_from_datasets(rtstruct, rtdoses, None, DVHOptions())
    return {
        "plan": plan,
        "rtstruct": rtstruct_uid,
        "rtdose": dose_uids,
        "prescription": prescription,
        "rois": [
            {
                "name": dvh.name,
                "roi_number": dvh.roi_number,
                "statistics": {
                    key: metric.to_dict()
                    for key, metric in dvh.statistics(names, prescription).items()
                },
                "warnings": list(dvh.warnings),
            }
            for dvh in dvhs
        ],
    }


def _objects(archive: Any, study: str) -> RTObjects:
    files = [item for item in archive.instance_files(study) if item.sop_class_uid in KINDS]
    headers = []
    for item in files:
        with archive.open(item) as stream:
            headers.append(pydicom.dcmread(stream, stop_before_pixels=True))
    return index(headers)


@router.post(
    "/dvh/plot",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
def dvh_plot(
    request: Request,
    payload: Annotated[dict[str, Any] | list[Any], Body()],
    format: Annotated[PlotFormat | None, Query(description="png (default) or svg")] = None,
    volume: Annotated[VolumeScale | None, Query(description="relative or absolute")] = None,
) -> Response:
    """Plot DVHs given as ``{"dvhs": [...]}``, one DVH object or a bare list, as PNG or SVG."""
    if isinstance(payload, dict):
        if "dvhs" not in payload and "doses" not in payload:
            raise InvalidInput("the body must hold 'dvhs': a list of DVH objects")
        items = payload.get("dvhs", payload)
        if isinstance(items, dict):  # one DVH, as /api/dvh answers for one ROI
            items = [items]
        if volume is None and "dvhs" in payload and "volume" in payload:
            try:
                volume = VolumeScale(str(payload["volume"]))
            except ValueError as exc:
                raise InvalidInput(f"volume must be relative or absolute: {exc}") from exc
        title = payload.get("title") if "dvhs" in payload else None
    else:
        items, title = payload, None
    if format is None:
        accept = request.headers.get("accept", "")
        format = PlotFormat.SVG if "image/svg+xml" in accept else PlotFormat.PNG
    image = plot_dvhs(
        curves_from_json(items),
        volume=volume or VolumeScale.RELATIVE,
        fmt=format,
        title=str(title) if title else None,
    )
    return Response(content=image, media_type=format.media_type)


def _dvh_response(
    rtstruct: pydicom.Dataset,
    rtdoses: list[pydicom.Dataset],
    roi: int | str | None,
    prescription: float | None,
    relative_volume: bool,
    bin_width: float,
    metrics: list[str] | None,
    weights: list[float] | None = None,
) -> dict[str, Any]:
    dvhs = dvhs_from_datasets(rtstruct, rtdoses, roi, DVHOptions(), weights)
    objects = [
        dvh.to_dict(
            bin_width=bin_width,
            relative_volume=relative_volume,
            prescription=prescription,
            metrics=metrics,
        )
        for dvh in dvhs
    ]
    return objects[0] if len(objects) == 1 else {"dvhs": objects}
