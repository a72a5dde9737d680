"""From a patient's findings and readers' corrections to timepoints, lesions and responses.

:func:`track` is a pure function; it runs every time a source of the patient changes and
whenever a correction is made, so its result is always re-computed from the stored
findings, and corrections (stored apart, naming findings by their stable keys) survive.

Steps:

1. Excluded findings are dropped.
2. Timepoints: one per study date (studies of one day are one timepoint; a study without a
   date is its own), in date order; the first is the baseline, ``visit`` counts from 0.
3. Within a timepoint, findings of one lesion from several sources (radpacs writes a SEG
   and an RTSTRUCT from the same labels; a reader measures a lesion the AI segmented) are
   one observation: same frame of reference and centroids within
   ``max(5 mm, 0.3 x diameter)``; its values come from the preferred source (a reader's SR,
   then SEG, then RTSTRUCT; the newest first).
4. Tracks: baseline observations start the lesions; each later timepoint is matched to each
   lesion's last observation (:mod:`radpacs.followup.matching`). An unmatched observation
   starts a new lesion; a lesion without a match is "disappeared" there (sizes 0).
5. Corrections, in the order they were made: merge, split, reassign, rename, role
   (exclusions were step 1).
6. Roles (:func:`radpacs.followup.response.select_targets` at baseline, "new" after), then
   RECIST 1.1, volumetric and, if asked, RANO-BM per timepoint.

A lesion's tracking UID is derived from the key of its first finding (UUID-derived
``2.25.`` UID, PS3.5 B.2), so it stays the same across re-computations.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from radpacs.followup.matching import Point, match
from radpacs.followup.model import SOURCE_PRIORITY, Finding, LesionRole
from radpacs.followup.response import (
    Criteria,
    LesionState,
    Response,
    rano_bm,
    recist,
    select_targets,
    volumetric,
)

__all__ = [
    "Correction",
    "CorrectionKind",
    "PatientFollowup",
    "lesion_uid",
    "track",
]

_NAMESPACE = uuid.UUID("6f1b1c1e-6a55-4a3f-9a51-7261647061cf")
SAME_LESION_MM = 5.0


class CorrectionKind(StrEnum):
    """What a reader changed; the payload names findings by key (see :class:`Correction`)."""

    RENAME = "rename"  # {"lesion": key, "label": text}
    MERGE = "merge"  # {"lesion": key, "other": key}: other's lesion joins lesion's
    SPLIT = "split"  # {"at": key}: from that finding's timepoint on, a lesion of its own
    REASSIGN = "reassign"  # {"finding": key, "lesion": key}
    ROLE = "role"  # {"lesion": key, "role": target|non-target|new}
    EXCLUDE = "exclude"  # {"finding": key}


@dataclass(frozen=True)
class Correction:
    """One reader's correction; ``payload`` holds finding keys (stable) and values."""

    kind: CorrectionKind
    payload: dict[str, str]
    id: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CorrectionKind(self.kind))
        needed = {
            CorrectionKind.RENAME: ("lesion", "label"),
            CorrectionKind.MERGE: ("lesion", "other"),
            CorrectionKind.SPLIT: ("at",),
            CorrectionKind.REASSIGN: ("finding", "lesion"),
            CorrectionKind.ROLE: ("lesion", "role"),
            CorrectionKind.EXCLUDE: ("finding",),
        }[self.kind]
        missing = [name for name in needed if not self.payload.get(name)]
        if missing:
            raise ValueError(f"a {self.kind.value} correction needs {', '.join(missing)}")
        if self.kind is CorrectionKind.ROLE:
            LesionRole(self.payload["role"])


def lesion_uid(key: str) -> str:
    """The tracking UID of a lesion first seen as finding ``key``."""
    return f"2.25.{uuid.uuid5(_NAMESPACE, key).int}"


@dataclass
class _Observation:
    timepoint: int
    findings: list[Finding]

    @property
    def main(self) -> Finding:
        return self.findings[0]

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.findings]

    def point(self) -> Point:
        f = self.main
        return Point(f.centroid, f.frame_of_reference, f.anchor, f.long_axis_mm or 0.0)


@dataclass
class _Track:
    uid: str
    observations: list[_Observation]
    label: str = ""
    role: LesionRole | None = None
    confidence: str = "high"

    def finding_keys(self) -> set[str]:
        return {k for o in self.observations for k in o.keys}

    def at(self, timepoint: int) -> list[_Observation]:
        return [o for o in self.observations if o.timepoint == timepoint]

    @property
    def start(self) -> int:
        return min(o.timepoint for o in self.observations)

    def last(self) -> _Observation:
        return max(self.observations, key=lambda o: o.timepoint)


@dataclass
class PatientFollowup:
    """The result for one patient, as the API and the exports give it (see :meth:`to_json`)."""

    patient_id: str
    timepoints: list[dict[str, Any]] = field(default_factory=list)
    lesions: list[dict[str, Any]] = field(default_factory=list)
    responses: dict[str, list[Response]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "timepoints": self.timepoints,
            "lesions": self.lesions,
            "responses": {k: [r.to_json() for r in v] for k, v in self.responses.items()},
            "notes": self.notes,
        }

    def latest_response(self) -> str:
        recist_list = self.responses.get("recist") or []
        return recist_list[-1].category if recist_list else ""


def _timepoint_key(f: Finding) -> str:
    return f.study_date or f"~{f.study_uid}"


def _same_lesion(a: Finding, b: Finding) -> bool:
    if a.centroid is None or b.centroid is None or a.frame_of_reference != b.frame_of_reference:
        return False
    limit = max(SAME_LESION_MM, 0.3 * max(a.long_axis_mm or 0.0, b.long_axis_mm or 0.0))
    return float(np.linalg.norm(np.subtract(a.centroid, b.centroid))) <= limit


def _observations(timepoint: int, findings: Iterable[Finding]) -> list[_Observation]:
    # preferred source first, the newest first within a kind
    ordered = sorted(
        sorted(findings, key=lambda f: f.created, reverse=True),
        key=lambda f: SOURCE_PRIORITY[f.kind],
    )
    groups: list[_Observation] = []
    for finding in ordered:
        for group in groups:
            if _same_lesion(group.main, finding) and finding.sop_uid not in {
                g.sop_uid for g in group.findings
            }:
                group.findings.append(finding)
                break
        else:
            groups.append(_Observation(timepoint, [finding]))
    return groups


def _find(tracks: list[_Track], key: str) -> _Track | None:
    return next((t for t in tracks if key in t.finding_keys()), None)


def _apply(tracks: list[_Track], correction: Correction, notes: list[str]) -> None:
    p = correction.payload
    kind = correction.kind
    if kind is CorrectionKind.MERGE:
        a, b = _find(tracks, p["lesion"]), _find(tracks, p["other"])
        if a is None or b is None:
            notes.append(f"correction {correction.id} (merge) names a finding no longer stored")
        elif a is not b:
            a.observations.extend(b.observations)
            a.confidence = "high"
            tracks.remove(b)
    elif kind is CorrectionKind.SPLIT:
        t = _find(tracks, p["at"])
        if t is None:
            notes.append(f"correction {correction.id} (split) names a finding no longer stored")
            return
        obs = next(o for o in t.observations if p["at"] in o.keys)
        moved = [o for o in t.observations if o.timepoint >= obs.timepoint]
        if len(moved) == len(t.observations):
            moved = [obs]
        if len(moved) == len(t.observations):
            return  # a lesion of one observation is already on its own
        t.observations = [o for o in t.observations if o not in moved]
        tracks.append(_Track(lesion_uid(obs.main.key), moved))
    elif kind is CorrectionKind.REASSIGN:
        source, target = _find(tracks, p["finding"]), _find(tracks, p["lesion"])
        if source is None or target is None:
            notes.append(f"correction {correction.id} (reassign) names a finding no longer stored")
            return
        obs = next(o for o in source.observations if p["finding"] in o.keys)
        finding = next(f for f in obs.findings if f.key == p["finding"])
        obs.findings.remove(finding)
        if not obs.findings:
            source.observations.remove(obs)
        if not source.observations:
            tracks.remove(source)
        target.observations.append(_Observation(obs.timepoint, [finding]))
    elif kind in (CorrectionKind.RENAME, CorrectionKind.ROLE):
        t = _find(tracks, p["lesion"])
        if t is None:
            notes.append(f"correction {correction.id} ({kind}) names a finding no longer stored")
        elif kind is CorrectionKind.RENAME:
            t.label = p["label"][:64]
        else:
            t.role = LesionRole(p["role"])


def _combine(observations: Sequence[_Observation]) -> dict[str, Any]:
    mains = [o.main for o in observations]

    def total(name: str) -> float | None:
        values = [getattr(f, name) for f in mains]
        return None if any(v is None for v in values) else float(sum(values))

    def largest(name: str) -> float | None:
        values = [getattr(f, name) for f in mains if getattr(f, name) is not None]
        return max(values) if values else None

    centroids = [f.centroid for f in mains if f.centroid is not None]
    firsts = [f.first_slice_mm for f in mains if f.first_slice_mm is not None]
    lasts = [f.last_slice_mm for f in mains if f.last_slice_mm is not None]
    return {
        "status": "present",
        "volume_mm3": total("volume_mm3"),
        "long_axis_mm": largest("long_axis_mm"),
        "short_axis_mm": largest("short_axis_mm"),
        "centroid": [round(float(v), 2) for v in np.mean(centroids, axis=0)] if centroids else None,
        "first_slice_mm": min(firsts) if firsts else None,
        "last_slice_mm": max(lasts) if lasts else None,
        "frame_of_reference": mains[0].frame_of_reference,
        "findings": [
            {
                "key": f.key,
                "kind": f.kind.value,
                "sop_uid": f.sop_uid,
                "series_uid": f.series_uid,
                "study_uid": f.study_uid,
                "source": f.source,
                "label": f.label,
                "used": f is o.main,
            }
            for o in observations
            for f in o.findings
        ],
        "source": "; ".join(sorted({f.source for f in mains if f.source})),
    }


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def track(
    patient_id: str,
    findings: Sequence[Finding],
    corrections: Sequence[Correction] = (),
    criteria: Criteria = Criteria(),
    rano: bool = False,
) -> PatientFollowup:
    """The follow-up of one patient (see the module for the steps)."""
    result = PatientFollowup(patient_id)
    excluded = {c.payload["finding"] for c in corrections if c.kind is CorrectionKind.EXCLUDE}
    kept = [f for f in findings if f.key not in excluded]
    by_key: dict[str, list[Finding]] = {}
    for f in kept:
        by_key.setdefault(_timepoint_key(f), []).append(f)
    keys = sorted(by_key)
    for visit, key in enumerate(keys):
        studies = sorted({f.study_uid for f in by_key[key]})
        result.timepoints.append(
            {
                "visit": visit,
                "date": "" if key.startswith("~") else key,
                "study_uids": studies,
                "baseline": visit == 0,
            }
        )
    tracks: list[_Track] = []
    for visit, key in enumerate(keys):
        observations = _observations(visit, by_key[key])
        if visit:
            lasts = [t.last() for t in tracks]
            links = match([o.point() for o in lasts], [o.point() for o in observations])
            linked: set[int] = set()
            for link in links:
                tracks[link.a].observations.append(observations[link.b])
                if link.confidence == "low":
                    tracks[link.a].confidence = "low"
                linked.add(link.b)
            observations = [o for i, o in enumerate(observations) if i not in linked]
        for obs in observations:
            tracks.append(_Track(lesion_uid(obs.main.key), [obs]))
    for correction in corrections:
        if correction.kind is not CorrectionKind.EXCLUDE:
            _apply(tracks, correction, result.notes)
    tracks.sort(key=lambda t: (t.start, -(t.at(t.start)[0].main.long_axis_mm or 0.0), t.uid))
    # per-timepoint values of each lesion
    rows: list[list[dict[str, Any] | None]] = []
    for t in tracks:
        row: list[dict[str, Any] | None] = []
        for visit in range(len(keys)):
            here = t.at(visit)
            if here:
                row.append(_combine(here))
            elif visit > t.start:
                row.append(
                    {
                        "status": "disappeared",
                        "volume_mm3": 0.0,
                        "long_axis_mm": 0.0,
                        "short_axis_mm": 0.0,
                        "centroid": None,
                        "findings": [],
                    }
                )
            else:
                row.append(None)
        rows.append(row)
    # roles
    first_main = [t.at(t.start)[0].main for t in tracks]
    baseline_states = [
        LesionState(
            t.uid,
            LesionRole.NON_TARGET,
            f.lymph_node,
            f.long_axis_mm,
            f.short_axis_mm,
            f.volume_mm3,
            f.organ,
        )
        for t, f in zip(tracks, first_main, strict=True)
        if t.start == 0
    ]
    targets = set(select_targets(baseline_states, criteria, per_organ=not rano))
    for t in tracks:
        if t.role is None:
            if t.start > 0:
                t.role = LesionRole.NEW
            else:
                t.role = LesionRole.TARGET if t.uid in targets else LesionRole.NON_TARGET
    # lesions, with measurements per timepoint and changes from baseline
    for number, (t, f, row) in enumerate(zip(tracks, first_main, rows, strict=True), start=1):
        base = row[t.start] or {}
        measurements = []
        for visit, values in enumerate(row):
            if values is None:
                measurements.append({"visit": visit, "status": "absent"})
                continue
            entry = {"visit": visit, **values}
            if visit == t.start and visit > 0:
                entry["status"] = "new"
            for name in ("volume_mm3", "long_axis_mm", "short_axis_mm"):
                entry[name] = _rounded(entry.get(name))
            bv, v = base.get("volume_mm3"), entry.get("volume_mm3")
            entry["volume_change_pct"] = (
                round(100 * (v - bv) / bv, 1) if bv and v is not None else None
            )
            measurements.append(entry)
        result.lesions.append(
            {
                "uid": t.uid,
                "number": number,
                "tracking_id": f"L{number}",
                "label": t.label or f.label,
                "role": t.role.value if t.role else "",
                "lymph_node": f.lymph_node,
                "organ": f.organ,
                "first_visit": t.start,
                "confidence": t.confidence,
                "anchor_key": t.at(t.start)[0].main.key,
                "measurements": measurements,
            }
        )
    # responses
    states_per_visit: list[list[LesionState]] = []
    for visit in range(len(keys)):
        states = []
        for number, (t, f, row) in enumerate(zip(tracks, first_main, rows, strict=True), 1):
            name = f"L{number}"
            values = row[visit]
            if values is None:
                if t.role is not LesionRole.NEW:
                    states.append(
                        LesionState(
                            name,
                            t.role or LesionRole.NON_TARGET,
                            f.lymph_node,
                            None,
                            None,
                            None,
                            f.organ,
                        )
                    )
                continue
            states.append(
                LesionState(
                    name,
                    t.role or LesionRole.NON_TARGET,
                    f.lymph_node,
                    values["long_axis_mm"],
                    values["short_axis_mm"],
                    values["volume_mm3"],
                    f.organ,
                )
            )
        states_per_visit.append(states)
    if keys:
        result.responses["recist"] = recist(states_per_visit, criteria)
        result.responses["volumetric"] = volumetric(states_per_visit, criteria)
        if rano:
            result.responses["rano_bm"] = rano_bm(states_per_visit, criteria)
    return result
