"""The RT objects of a study and how they refer to one another (PS3.3 C.8.8).

An RTPLAN names its structure set in Referenced Structure Set Sequence (300C,0060); an
RTDOSE names its plan in Referenced RT Plan Sequence (300C,0002) and says in Dose
Summation Type (3004,000A) whether it is the whole plan (``PLAN``), one fraction group,
one beam, or a sum of plans. :func:`index` reads those references from the objects'
headers (no pixel data needed) and :meth:`RTObjects.plan_doses` picks the dose of a plan:
its ``PLAN`` dose, else the sum of all doses that reference it (beams or fraction groups).

Example::

    objects = index(headers)            # pydicom datasets read with stop_before_pixels
    plan = objects.plans[0]
    objects.plan_doses(plan.uid)        # -> ["1.2.3..."]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pydicom

from radpacs.errors import InvalidInput, NotFound

__all__ = ["RTDOSE", "RTPLAN", "RTSTRUCT", "RTObject", "RTObjects", "index"]

RTDOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RTPLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
KINDS = {RTDOSE: "RTDOSE", RTSTRUCT: "RTSTRUCT", RTPLAN: "RTPLAN", RT_ION_PLAN: "RTPLAN"}


@dataclass(frozen=True)
class RTObject:
    """One stored RT object: its kind, label and what it refers to."""

    uid: str
    kind: str
    series_uid: str
    label: str
    frame_of_reference_uid: str
    references: tuple[str, ...] = ()
    summation: str = ""
    rois: tuple[tuple[int, str], ...] = ()
    has_grid: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        result: dict[str, Any] = {
            "uid": self.uid,
            "kind": self.kind,
            "series_uid": self.series_uid,
            "label": self.label,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "references": list(self.references),
        }
        if self.kind == "RTDOSE":
            result["dose_summation_type"] = self.summation
            result["has_grid"] = self.has_grid
        if self.kind == "RTSTRUCT":
            result["rois"] = [{"number": number, "name": name} for number, name in self.rois]
        return result


@dataclass(frozen=True)
class RTObjects:
    """The RT objects of a study, by kind."""

    plans: list[RTObject] = field(default_factory=list)
    structure_sets: list[RTObject] = field(default_factory=list)
    doses: list[RTObject] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plans": [item.to_dict() for item in self.plans],
            "structure_sets": [item.to_dict() for item in self.structure_sets],
            "doses": [item.to_dict() for item in self.doses],
        }

    def plan(self, uid: str) -> RTObject:
        for item in self.plans:
            if item.uid == uid:
                return item
        raise NotFound(f"no RTPLAN {uid} in this study")

    def plan_structure_set(self, uid: str) -> str:
        """The structure set a plan names; InvalidInput when it names none."""
        plan = self.plan(uid)
        if not plan.references:
            raise InvalidInput(f"the RTPLAN {uid} names no structure set")
        return plan.references[0]

    def plan_doses(self, uid: str) -> list[str]:
        """The plan's ``PLAN`` dose, else every dose grid that references it."""
        self.plan(uid)
        doses = [item for item in self.doses if uid in item.references and item.has_grid]
        whole = [item.uid for item in doses if item.summation == "PLAN"]
        if whole:
            return whole[:1]
        if not doses:
            raise InvalidInput(f"no RTDOSE grid in the study references the RTPLAN {uid}")
        return [item.uid for item in doses]


def index(headers: Iterable[pydicom.Dataset]) -> RTObjects:
    """Sort RT headers (other objects are skipped) into plans, structure sets and doses."""
    result = RTObjects()
    for header in headers:
        kind = KINDS.get(str(header.get("SOPClassUID", "")))
        if kind is None:
            continue
        uid = str(header.get("SOPInstanceUID", ""))
        series = str(header.get("SeriesInstanceUID", ""))
        frame = str(header.get("FrameOfReferenceUID", ""))
        if kind == "RTPLAN":
            label = str(header.get("RTPlanLabel", "") or header.get("RTPlanName", ""))
            refs = _referenced(header, "ReferencedStructureSetSequence")
            result.plans.append(RTObject(uid, kind, series, label, frame, refs))
        elif kind == "RTSTRUCT":
            rois = tuple(
                (int(item.get("ROINumber", 0)), str(item.get("ROIName", "")))
                for item in header.get("StructureSetROISequence", [])
            )
            label = str(header.get("StructureSetLabel", ""))
            frame = frame or _structure_frame(header)
            result.structure_sets.append(RTObject(uid, kind, series, label, frame, rois=rois))
        else:
            label = str(header.get("SeriesDescription", "") or header.get("DoseComment", ""))
            result.doses.append(
                RTObject(
                    uid,
                    kind,
                    series,
                    label,
                    frame,
                    _referenced(header, "ReferencedRTPlanSequence"),
                    summation=str(header.get("DoseSummationType", "")),
                    has_grid="Rows" in header and "GridFrameOffsetVector" in header,
                )
            )
    return result


def _referenced(header: pydicom.Dataset, keyword: str) -> tuple[str, ...]:
    return tuple(
        str(item.get("ReferencedSOPInstanceUID", ""))
        for item in header.get(keyword, [])
        if item.get("ReferencedSOPInstanceUID")
    )


def _structure_frame(header: pydicom.Dataset) -> str:
    for item in header.get("ReferencedFrameOfReferenceSequence", []):
        if item.get("FrameOfReferenceUID"):
            return str(item.FrameOfReferenceUID)
    return ""
