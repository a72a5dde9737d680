"""Radiotherapy routes: DVHs of uploaded or stored RTSTRUCT + RTDOSE pairs, and DVH plots.

- ``POST /api/dvh``: multipart ``file_struct`` and ``file_dose`` (as in the workshop API),
  optional form fields ``roi`` (number or name), ``prescription`` (Gy), ``relative_volume``,
  ``bin_width`` (Gy), ``metrics`` (comma-separated, e.g. ``D95,D2cc,V20Gy,V95%``).
  Answers the DVH object when one ROI is computed (``roi`` given, or a single ROI with
  contours, as in the workshop: one structure per request), else ``{"dvhs": [...]}`` with one
  object per ROI, a body that /api/dvh/plot takes as it is (see :meth:`radpacs.rt.DVH.to_dict`).
- ``POST /api/rt/dvh``: the same from stored objects, JSON
  ``{"rtstruct": uid, "rtdose": uid, "roi": ...}``, read from the archive.
- ``POST /api/dvh/plot``: JSON ``{"dvhs": [...]}`` (or the list /api/dvh answered);
  PNG, or SVG with ``?format=svg`` or ``Accept: image/svg+xml``; ``?volume=absolute``
  keeps each curve's volume units, ``relative`` (default) scales to % of each ROI.

Parse, call :mod:`radpacs.rt`, respond: the routes are plain ``def`` so the DVH work runs
in the thread pool, never on the event loop.
"""

from __future__ import annotations

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

__all__ = ["StoredDVHRequest", "router"]

router = APIRouter(prefix="/api", tags=["rt"])


class StoredDVHRequest(BaseModel):
    """A DVH request on stored objects."""

    rtstruct: str = Field(min_length=1, description="SOP Instance UID of the RTSTRUCT")
    rtdose: str = Field(min_length=1, description="SOP Instance UID of the RTDOSE")
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
    file_dose: Annotated[UploadFile | None, File(description="the RTDOSE")] = None,
    roi: Annotated[str | None, Form(description="ROI number or name")] = None,
    prescription: Annotated[float | None, Form(gt=0, allow_inf_nan=False)] = None,
    relative_volume: Annotated[bool, Form()] = False,
    bin_width: Annotated[float, Form(gt=0, allow_inf_nan=False)] = 0.01,
    metrics: Annotated[str | None, Form(description="comma-separated, e.g. D95,V20Gy")] = None,
) -> dict[str, Any]:
    """DVH of each ROI with contours (or of ``roi``) of an uploaded RTSTRUCT and RTDOSE."""
    if file_struct is None or file_dose is None:
        raise InvalidInput("both 'file_struct' (RTSTRUCT) and 'file_dose' (RTDOSE) are required")
    rtstruct = read_dataset(file_struct.file.read(), "file_struct")
    rtdose = read_dataset(file_dose.file.read(), "file_dose")
    names = [name.strip() for name in metrics.split(",") if name.strip()] if metrics else None
    return _dvh_response(rtstruct, rtdose, roi, prescription, relative_volume, bin_width, names)


@router.post("/rt/dvh")
def dvh_from_archive(archive: ArchiveDep, body: StoredDVHRequest) -> dict[str, Any]:
    """DVHs of an RTSTRUCT and an RTDOSE already in the archive, by SOP Instance UID."""
    rtstruct = archive.read_dataset(body.rtstruct)
    rtdose = archive.read_dataset(body.rtdose)
    return _dvh_response(
        rtstruct,
        rtdose,
        body.roi,
        body.prescription,
        body.relative_volume,
        body.bin_width,
        body.metrics,
    )


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
    """Plot DVHs given as ``{"dvhs": [...]}`` (or a bare list) as PNG or SVG."""
    if isinstance(payload, dict):
        if "dvhs" not in payload:
            raise InvalidInput("the body must hold 'dvhs': a list of DVH objects")
        items = payload["dvhs"]
        if volume is None and "volume" in payload:
            try:
                volume = VolumeScale(str(payload["volume"]))
            except ValueError as exc:
                raise InvalidInput(f"volume must be relative or absolute: {exc}") from exc
        title = payload.get("title")
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
    rtdose: pydicom.Dataset,
    roi: int | str | None,
    prescription: float | None,
    relative_volume: bool,
    bin_width: float,
    metrics: list[str] | None,
) -> dict[str, Any]:
    dvhs = dvhs_from_datasets(rtstruct, rtdose, roi, DVHOptions())
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
