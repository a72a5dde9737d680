"""The follow-up model: patient -> timepoint -> lesion -> measurement.

A :class:`Finding` is one measured object as a source states it (a SEG segment, an RTSTRUCT
ROI, a TID 1500 measurement group); it is keyed by ``key`` (source SOP Instance UID and the
item within it), which stays the same as long as the source is stored, so that readers'
corrections can name it across re-computations. :func:`radpacs.followup.tracking.track`
turns a patient's findings into timepoints, lesions and per-timepoint measurements.

Coordinates are patient coordinates in mm (LPS, PS3.3 C.7.6.2.1.1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "LesionRole", "SourceKind"]


class SourceKind(StrEnum):
    """Which kind of object a finding came from."""

    SEG = "SEG"
    RTSTRUCT = "RTSTRUCT"
    SR = "SR"


class LesionRole(StrEnum):
    """RECIST 1.1 role of a lesion (new lesions are found after baseline)."""

    TARGET = "target"
    NON_TARGET = "non-target"
    NEW = "new"


#: Priority of a source when two findings describe one lesion at one timepoint: a reader's
#: measurement wins over a segmentation, a SEG over the RTSTRUCT written from the same labels.
SOURCE_PRIORITY = {SourceKind.SR: 0, SourceKind.SEG: 1, SourceKind.RTSTRUCT: 2}


@dataclass
class Finding:
    """One measured object of one source; lengths in mm, volume in mm3, None when unknown.

    ``first_slice_mm``/``last_slice_mm`` are the extent of the object along the patient's
    feet-head axis (z); ``anchor`` is the centre of the body (or field of view) of the image
    the finding was made on, used to compare positions across frames of reference.
    """

    key: str
    kind: SourceKind
    study_uid: str
    series_uid: str
    sop_uid: str
    label: str
    study_date: str = ""
    frame_of_reference: str = ""
    centroid: tuple[float, float, float] | None = None
    anchor: tuple[float, float, float] | None = None
    volume_mm3: float | None = None
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    first_slice_mm: float | None = None
    last_slice_mm: float | None = None
    lymph_node: bool = False
    organ: str = ""
    source: str = ""
    tracking_uid: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = SourceKind(self.kind)
        if self.centroid is not None:
            self.centroid = tuple(float(v) for v in self.centroid)  # type: ignore[assignment]
        if self.anchor is not None:
            self.anchor = tuple(float(v) for v in self.anchor)  # type: ignore[assignment]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        values = dict(data)
        for name in ("centroid", "anchor"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)
