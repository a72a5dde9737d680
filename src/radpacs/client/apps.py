"""What radpacs and an external AI app say to each other (the callback pattern, docs/ai-apps.md).

radpacs POSTs an :class:`AnalysisRequest` to the app's URL when the app is triggered (on a
series' arrival by its rules, or on demand). The app reads the inputs over WADO-RS with the
request's token and answers at ``result_url`` with an :class:`AnalysisResult` (JSON) or
stores DICOM (SR, SEG, RTSTRUCT) over STOW-RS at ``stow_url`` and then posts a result with
``status: completed``. The token is scoped to reading the request's study and writing
results into it, and expires at ``token_expires``.

Coordinates are in image pixels of the named instance and frame: ``(column, row)`` with
``(0, 0)`` the top-left corner of the top-left pixel, as DICOM SCOORD (PS3.3 C.18.6).

Example (the body of a result with one polygon)::

    AnalysisResult(
        status=ResultStatus.COMPLETED,
        display_text="1 nodule",
        regions=[Region(label="nodule", graphic_type=GraphicType.POLYGON,
                        image=ImageRef(sop_instance_uid="1.2.3", frame=1),
                        points=[(10, 10), (20, 10), (20, 20), (10, 10)])],
    )
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnalysisRequest",
    "AnalysisResult",
    "Classification",
    "GraphicType",
    "ImageQuality",
    "ImageRef",
    "Measurement",
    "QualityStatus",
    "Region",
    "ResultStatus",
    "Style",
]

_UID = r"^[0-9]+(\.[0-9]+)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnalysisRequest(_Strict):
    """What radpacs POSTs to an app: the work, where to read it and where to answer."""

    workitem_uid: str = Field(pattern=_UID, max_length=64, description="UPS workitem UID")
    app: str = Field(description="the app's registered name")
    study_uid: str = Field(pattern=_UID, max_length=64)
    series_uids: list[str] = Field(default_factory=list, description="empty: the whole study")
    dicomweb_url: str = Field(description="DICOMweb root, e.g. https://pacs/dicom-web")
    stow_url: str = Field(description="STOW-RS URL of the study, for DICOM results")
    result_url: str = Field(description="where to POST AnalysisResult bodies")
    token: str = Field(description="Bearer token scoped to this study, read and results only")
    token_expires: datetime
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


class ResultStatus(StrEnum):
    """running: progress only (the workitem stays IN PROGRESS); completed or failed end it."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class GraphicType(StrEnum):
    """DICOM SCOORD graphic types (PS3.3 C.18.6.1.2)."""

    POINT = "POINT"
    MULTIPOINT = "MULTIPOINT"
    POLYLINE = "POLYLINE"
    POLYGON = "POLYGON"
    CIRCLE = "CIRCLE"
    ELLIPSE = "ELLIPSE"


class ImageRef(_Strict):
    """One frame of one stored instance."""

    sop_instance_uid: str = Field(pattern=_UID, max_length=64)
    frame: int = Field(default=1, ge=1, le=100_000)


class Style(_Strict):
    """How a viewer should draw a region (kept in the JSON; DICOM SR has no colour)."""

    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    line_width: float | None = Field(default=None, gt=0, le=100)


class Region(_Strict):
    """A labelled point, line or outline on one image."""

    label: str = Field(min_length=1, max_length=64)
    graphic_type: GraphicType
    image: ImageRef
    points: list[tuple[float, float]] = Field(min_length=1, max_length=10_000)
    style: Style | None = None


class Classification(_Strict):
    """A finding for the whole input, with the app's probability when it has one."""

    label: str = Field(min_length=1, max_length=64)
    probability: float | None = Field(default=None, ge=0, le=1)


class Measurement(_Strict):
    """A number with its UCUM unit (``mm``, ``mm3``, ``[hnsf'U]``, ``1``)."""

    label: str = Field(min_length=1, max_length=64)
    value: float = Field(allow_inf_nan=False)
    unit: str = Field(min_length=1, max_length=16)
    image: ImageRef | None = None


class QualityStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


class ImageQuality(_Strict):
    """The app's quality-control verdict on one input image."""

    image: ImageRef
    status: QualityStatus
    reason: str | None = Field(default=None, max_length=256)


class AnalysisResult(_Strict):
    """What an app POSTs to ``result_url``: progress, or the final result."""

    status: ResultStatus
    progress: float | None = Field(default=None, ge=0, le=100, description="percent")
    display_text: str | None = Field(default=None, max_length=1024)
    reason: str | None = Field(default=None, max_length=1024, description="why it failed")
    regions: list[Region] = Field(default_factory=list, max_length=10_000)
    classifications: list[Classification] = Field(default_factory=list, max_length=1_000)
    measurements: list[Measurement] = Field(default_factory=list, max_length=10_000)
    quality: list[ImageQuality] = Field(default_factory=list, max_length=100_000)
