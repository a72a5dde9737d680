"""Running one job attempt in its own process: load, infer, write results, record them.

:func:`run_attempt` is what a worker thread calls for a job id. It claims the job, starts
:func:`_child` in a fresh process (``forkserver``, whose server has imported this module
once), and supervises it: heartbeats and progress every ``ai_heartbeat_seconds``, a kill
after ``ai_job_timeout`` seconds or on cancel. A crash or a timeout is a failed attempt:
the job goes back to the queue after ``ai_retry_delay * 2 ** (attempt - 1)`` seconds until
``max_attempts`` is reached. The web server's event loop never runs any of this.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from pydicom import Dataset

from radpacs.ai.discovery import discover_models
from radpacs.ai.interface import (
    Model,
    ModelResult,
    SeriesInput,
    Task,
    provenance_of,
)
from radpacs.ai.queue import JobQueue
from radpacs.archive import Archive, Level, Outcome, StoreResult, parse_query
from radpacs.archive.jobs import Job, JobState, JobStore
from radpacs.errors import InvalidInput, RadpacsError, StorageError
from radpacs.settings import Settings

__all__ = ["accepted_series", "run_attempt"]

log = logging.getLogger(__name__)


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["radpacs.ai.execute"])
    return context


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


def _load(archive: Archive, study_uid: str, series_uid: str) -> list[Dataset]:
    return [archive.read_file(file) for file in archive.instance_files(study_uid, series_uid)]


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_results(
    model: Model, series: SeriesInput, result: ModelResult, parameters: dict[str, Any]
) -> tuple[list[Dataset], dict[str, Any]]:
    """The DICOM objects and the UI JSON of one series' result (built in memory)."""
    from pydicom.uid import generate_uid

    from radpacs.ai.results.measure import measure_region
    from radpacs.ai.results.rtstruct import build_rtstruct
    from radpacs.ai.results.seg import build_seg
    from radpacs.ai.results.sr import build_classification_sr, build_measurement_sr
    from radpacs.ai.results.uijson import build_ui_json

    provenance = provenance_of(model, {**result.parameters, **parameters})
    if model.task is Task.CLASSIFICATION:
        by_uid = {str(ds.SOPInstanceUID): ds for ds in series.datasets}
        sr_series = generate_uid()
        objects = [
            build_classification_sr(
                by_uid[item.sop_uid],
                item.scores,
                provenance,
                series_uid=sr_series,
                instance_number=number,
            )
            for number, item in enumerate(result.classifications, start=1)
        ]
        images = [
            {
                "sop_uid": item.sop_uid,
                "finding": max(item.scores, key=lambda s: s.probability).code[2],
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


def execute(settings: Settings, job_id: str) -> None:
    """Run a claimed job to the end in this process and record success (raises on failure)."""
    from radpacs.followup.feed import FollowupService

    archive = Archive.from_settings(settings)
    # results stored here feed the follow-up as they would through the server, once the job
    # has succeeded (the follow-up's work does not count against the job's time)
    stored_results: list[StoreResult] = []
    archive.add_listener(stored_results.extend)
    store = JobStore(archive.engine)
    try:
        job = store.get(job_id)
        model = discover_models(settings).get(job.model)
        targets, refused = accepted_series(archive, model, job.study_uid, job.series_uid or None)
        if not targets:
            raise InvalidInput(
                f"model {model.name} accepts no series of study {job.study_uid}: "
                + "; ".join(refused or ["no series"])
            )
        timings = {"load": 0.0, "infer": 0.0, "write": 0.0}
        results: list[dict[str, Any]] = []
        ui: list[dict[str, Any]] = []
        last_beat = 0.0
        for index, series_uid in enumerate(targets):

            def progress(fraction: float, index: int = index) -> None:
                nonlocal last_beat
                if time.monotonic() - last_beat > settings.ai_heartbeat_seconds:
                    last_beat = time.monotonic()
                    store.heartbeat(job_id, (index + 0.1 + 0.7 * fraction) / len(targets))

            start = time.perf_counter()
            series = SeriesInput(_load(archive, job.study_uid, series_uid))
            if model.task is not Task.CLASSIFICATION:
                series.volume  # noqa: B018 - build the volume inside the load timing
            loaded = time.perf_counter()
            result = model.run(series, progress, job.parameters)
            inferred = time.perf_counter()
            objects, series_ui = write_results(model, series, result, job.parameters)
            stored = archive.store_many([_bytes(ds) for ds in objects]) if objects else []
            failed = [r for r in stored if r.outcome is Outcome.FAILED]
            if failed:
                raise StorageError(f"the archive refused a result: {failed[0].message}")
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
                        "source_series": series_uid,
                    }
                )
            ui.append({"source_series": series_uid, **series_ui})
        timings = {k: round(v, 4) for k, v in timings.items()}
        store.succeed(job_id, _group(results), timings, json.dumps({"results": ui}))
        FollowupService.from_settings(settings, archive).on_stored(stored_results)
    finally:
        archive.close()


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


def _child(settings: Settings, job_id: str, errors: Connection) -> None:
    try:
        execute(settings, job_id)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, RadpacsError) else traceback.format_exc(limit=8)
        try:
            errors.send(f"{type(exc).__name__}: {message}".strip())
        finally:
            raise SystemExit(1) from None


def run_attempt(settings: Settings, queue: JobQueue, job_id: str) -> JobState | None:
    """Claim and run one attempt of ``job_id`` in a child process; the state it ends in."""
    with Archive.from_settings(settings) as archive:
        store = JobStore(archive.engine)
        job = store.claim(job_id)
        if job is None:
            return None  # already done, cancelled, or running elsewhere
        return _supervise(settings, queue, store, job)


def _supervise(settings: Settings, queue: JobQueue, store: JobStore, job: Job) -> JobState:
    context = _context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child,
        args=(settings, job.id, send),
        name=f"radpacs-ai-{job.id[:8]}",
        daemon=True,
    )
    process.start()
    send.close()
    started = time.monotonic()
    error = ""
    while True:
        process.join(settings.ai_heartbeat_seconds)
        if not process.is_alive():
            break
        if store.heartbeat(job.id):
            _stop(process)
            store.mark_cancelled(job.id)
            return JobState.CANCELLED
        if time.monotonic() - started > settings.ai_job_timeout:
            _stop(process)
            error = f"timed out after {settings.ai_job_timeout:g} s"
            break
    if not error and process.exitcode == 0:
        current = store.get(job.id)
        if current.state is JobState.SUCCEEDED:
            return JobState.SUCCEEDED
        error = "the job process ended without recording a result"
    if not error:
        try:
            error = receive.recv() if receive.poll() else ""
        except (EOFError, OSError):  # the child died before it could say why
            error = ""
        error = error or f"the job process died (exit code {process.exitcode})"
    receive.close()
    delay = settings.ai_retry_delay * 2 ** max(0, job.attempts - 1)
    after = store.fail(job.id, error, retry_in=delay)
    log.warning("AI job %s attempt %d failed: %s", job.id, job.attempts, error.splitlines()[0])
    if after.state is JobState.QUEUED:
        queue.enqueue(job.id, delay)
    return after.state


def _stop(process: Any) -> None:
    process.terminate()
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()
