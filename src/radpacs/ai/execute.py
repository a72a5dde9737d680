"""Running one AI job (kind ``ai``): load the series, infer, write and store the results.

:func:`run_ai_job` is the handler the job worker (:mod:`radpacs.jobs.worker`) runs in a
child process of its own for each attempt; the worker supervises heartbeats, timeouts,
cancel and retries for every kind alike. The web server's event loop never runs this.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from pydicom import Dataset

from radpacs.ai.discovery import discover_models
from radpacs.ai.interface import (
    Model,
    ModelResult,
    SeriesInput,
    SeriesRole,
    Task,
    provenance_of,
)
from radpacs.ai.results.uids import derived_uids
from radpacs.archive import Archive, Level, Outcome, StoreResult, parse_query
from radpacs.errors import InvalidInput, NotFound, StorageError
from radpacs.followup.feed import FollowupService
from radpacs.followup.jobs import store_submitter
from radpacs.jobs.registry import JobContext, JobOutcome

__all__ = ["KIND", "PROGRESS_SCALE", "accepted_series", "assign_roles", "run_ai_job"]

KIND = "ai"
PROGRESS_SCALE = 10000
"""An AI job's progress (0..1) is recorded as ``done`` of this ``total``."""

log = logging.getLogger(__name__)


def accepted_series(
    archive: Archive, model: Model, study_uid: str, series_uid: str | None
) -> tuple[list[str], list[str]]:
    """The series of a study (or the one named) the model accepts, and why others are not."""
    params = [("SeriesInstanceUID", series_uid)] if series_uid else []
    params.append(("includefield", "BodyPartExamined"))
    matches = archive.search(parse_query(Level.SERIES, params, study_uid=study_uid)).matches
    accepted, refused = [], []
    for match in matches:
        uid = match["0020000E"]["Value"][0]
        modality = (match.get("00080060", {}).get("Value") or [""])[0]
        body_part = (match.get("00180015", {}).get("Value") or [""])[0]
        count = int((match.get("00201209", {}).get("Value") or [0])[0])
        reason = model.accepts.refusal(modality, body_part, count)
        if reason is None:
            accepted.append(uid)
        else:
            refused.append(f"series {uid}: {reason}")
    return accepted, refused


def assign_roles(
    archive: Archive, roles: Sequence[SeriesRole], study_uid: str, first: str | None = None
) -> dict[str, str]:
    """Series of the study for each role of a multi-series model (role name -> series UID).

    Roles are filled in order, each with the first series (by SeriesNumber) that matches it
    and no earlier role took; ``first`` fixes the first role's series. A role left without
    a series is an :class:`InvalidInput` naming the series descriptions that were there.
    """
    params = [("includefield", "SeriesNumber")]
    matches = archive.search(parse_query(Level.SERIES, params, study_uid=study_uid)).matches

    def value(match: dict[str, Any], tag: str) -> str:
        return str((match.get(tag, {}).get("Value") or [""])[0])

    series = sorted(
        (
            (value(m, "0020000E"), value(m, "00080060"), value(m, "0008103E"), value(m, "00200011"))
            for m in matches
        ),
        key=lambda s: int(s[3]) if s[3].lstrip("-").isdigit() else 0,
    )
    assigned: dict[str, str] = {}
    for index, role in enumerate(roles):
        if index == 0 and first:
            assigned[role.name] = first
            continue
        for uid, modality, description, _ in series:
            if uid not in assigned.values() and role.matches(modality, description):
                assigned[role.name] = uid
                break
        else:
            seen = ", ".join(repr(s[2]) for s in series) or "none"
            raise InvalidInput(
                f"no series of study {study_uid} is a {role.name} series "
                f"(SeriesDescription matching {', '.join(role.patterns)}); series: {seen}"
            )
    return assigned


def _load(archive: Archive, study_uid: str, series_uid: str) -> list[Dataset]:
    return [archive.read_file(file) for file in archive.instance_files(study_uid, series_uid)]


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_results(
    model: Model, series: SeriesInput, result: ModelResult, parameters: dict[str, Any]
) -> tuple[list[Dataset], dict[str, Any]]:
    """The DICOM objects and the UI JSON of one series' result (built in memory); their UIDs
    come from :func:`radpacs.ai.results.uids.new_uid` (derived inside ``derived_uids``)."""
    from radpacs.ai.results.measure import measure_region
    from radpacs.ai.results.rtstruct import build_rtstruct
    from radpacs.ai.results.seg import build_seg
    from radpacs.ai.results.sr import build_classification_sr, build_measurement_sr
    from radpacs.ai.results.uids import new_uid
    from radpacs.ai.results.uijson import build_ui_json

    provenance = provenance_of(model, {**result.parameters, **parameters})
    if model.task is Task.CLASSIFICATION:
        by_uid = {str(ds.SOPInstanceUID): ds for ds in series.datasets}
        sr_series = new_uid()
        objects = [
            build_classification_sr(
                by_uid[item.sop_uid],
                item.scores,
                provenance,
                series_uid=sr_series,
                instance_number=number,
                findings=item.coded_findings,
            )
            for number, item in enumerate(result.classifications, start=1)
        ]
        images = [
            {
                "sop_uid": item.sop_uid,
                "finding": max(item.scores, key=lambda s: s.probability).code[2],
                "findings": [f.code[2] for f in item.coded_findings],
                "scores": [
                    {
                        "code": s.code[0],
                        "scheme": s.code[1],
                        "meaning": s.code[2],
                        "probability": round(s.probability, 6),
                    }
                    for s in item.scores
                ],
            }
            for item in result.classifications
        ]
        return objects, {"model": provenance.to_json(), "images": images}
    if result.label_map is None:
        raise InvalidInput(f"model {model.name} returned no label map")
    volume = series.volume
    present = {v: label for v, label in result.labels.items() if (result.label_map == v).any()}
    if not present:
        return [], {"model": provenance.to_json(), "labels": [], "slices": []}
    measurements = {v: measure_region(volume, result.label_map == v) for v in present}
    seg = build_seg(volume, result.label_map, present, provenance)
    rtstruct = build_rtstruct(volume, result.label_map, present, provenance)
    by_segment = {n: measurements[v] for n, v in enumerate(sorted(present), start=1)}
    report = build_measurement_sr(seg, volume.datasets, by_segment, provenance)
    ui = build_ui_json(volume, result.label_map, present, provenance, measurements)
    return [seg, rtstruct, report], ui


def run_ai_job(ctx: JobContext) -> JobOutcome:
    """Run the job's model on the accepted series of its study and store the results."""
    archive, params = ctx.archive, ctx.params
    study_uid, series_uid = params["study"], params.get("series") or None
    model = discover_models(ctx.settings).get(params["model"])
    parameters: dict[str, Any] = params.get("parameters") or {}
    roles: Sequence[SeriesRole] = getattr(model, "inputs", ())
    companions: dict[str, str] = {}
    if roles:  # one run over several series; results reference the first role's series
        assigned = assign_roles(archive, roles, study_uid, series_uid)
        targets, refused = [assigned[roles[0].name]], list[str]()
        companions = {r.name: assigned[r.name] for r in roles[1:]}
    else:
        targets, refused = accepted_series(archive, model, study_uid, series_uid)
    if not targets:
        raise InvalidInput(
            f"model {model.name} accepts no series of study {study_uid}: "
            + "; ".join(refused or ["no series"])
        )
    timings = {"load": 0.0, "infer": 0.0, "write": 0.0}
    stored_all: list[StoreResult] = []
    results: list[dict[str, Any]] = []
    ui: list[dict[str, Any]] = []
    for index, target in enumerate(targets):

        def progress(fraction: float, index: int = index) -> None:
            share = (index + 0.1 + 0.7 * max(0.0, min(1.0, fraction))) / len(targets)
            ctx.progress(round(share * PROGRESS_SCALE), PROGRESS_SCALE)

        start = time.perf_counter()
        series = SeriesInput(
            _load(archive, study_uid, target),
            {r: SeriesInput(_load(archive, study_uid, u)) for r, u in companions.items()},
        )
        if model.task is not Task.CLASSIFICATION:
            series.volume  # noqa: B018 - build the volume inside the load timing
        loaded = time.perf_counter()
        result = model.run(series, progress, parameters)
        inferred = time.perf_counter()
        with derived_uids(ctx.job.id, target):  # a retry names its results alike
            objects, series_ui = write_results(model, series, result, parameters)
        stored = _store_once(archive, objects)
        failed = [r for r in stored if r.outcome is Outcome.FAILED]
        if failed:
            raise StorageError(f"the archive refused a result: {failed[0].message}")
        stored_all.extend(stored)
        written = time.perf_counter()
        timings["load"] += loaded - start
        timings["infer"] += inferred - loaded
        timings["write"] += written - inferred
        for ds in objects:
            results.append(
                {
                    "series": str(ds.SeriesInstanceUID),
                    "sop_uid": str(ds.SOPInstanceUID),
                    "modality": str(ds.Modality),
                    "source_series": target,
                }
            )
        ui.append({"source_series": target, **series_ui})
    rounded = {k: round(v, 4) for k, v in timings.items()}
    # the results feed the follow-up as objects stored through the server do: as jobs
    FollowupService.from_settings(
        ctx.settings, archive, submit=store_submitter(ctx.settings, ctx.store)
    ).on_stored(stored_all)
    return JobOutcome(
        {"result_series": _group(results), "timings": rounded}, json.dumps({"results": ui})
    )


def _store_once(archive: Archive, objects: Sequence[Dataset]) -> list[StoreResult]:
    """Store a job's result objects once. Their UIDs derive from the job's id, so one already
    indexed was stored by an earlier attempt of this job (which then timed out or died):
    it counts as this job's result and is not stored again, whatever its timestamps."""
    earlier: dict[int, StoreResult] = {}
    for index, ds in enumerate(objects):
        try:
            study_uid, series_uid = archive.locate(sop_uid=str(ds.SOPInstanceUID))
        except NotFound:
            continue
        earlier[index] = StoreResult(
            Outcome.STORED,
            str(ds.SOPClassUID),
            str(ds.SOPInstanceUID),
            study_uid,
            series_uid,
            message="stored by an earlier attempt of this job",
        )
    fresh = [_bytes(ds) for index, ds in enumerate(objects) if index not in earlier]
    stored = iter(archive.store_many(fresh) if fresh else [])
    return [earlier[index] if index in earlier else next(stored) for index in range(len(objects))]


def _group(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Result instances grouped by series: [{series, modality, source_series, instances}]."""
    grouped: dict[str, dict[str, Any]] = {}
    for item in results:
        entry = grouped.setdefault(
            item["series"],
            {
                "series": item["series"],
                "modality": item["modality"],
                "source_series": item["source_series"],
                "instances": [],
            },
        )
        entry["instances"].append(item["sop_uid"])
    return list(grouped.values())
