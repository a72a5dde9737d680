"""The callback-app service of a server process: the registry, triggers, results, cancels.

:meth:`AppService.trigger` makes one analysis: a UPS workitem (PS3.4 Annex CC) that radpacs
claims at once with a Transaction UID of its own (the app performs it through radpacs, so
no other performer can claim it), an ``app_run`` row and an ``app-delivery`` job that POSTs
the :class:`~radpacs.client.apps.AnalysisRequest` (:mod:`radpacs.apps.delivery`). What the
app posts back goes through :meth:`AppService.post_result`: ``running`` sets the workitem's
progress, ``completed`` keeps the JSON (once: an identical second post answers the first),
stores the DICOM made from it and completes the workitem, ``failed`` cancels it with the
app's reason. A result for a finished workitem is a Conflict. :meth:`AppService.cancel`
cancels the workitem and the delivery, and queues an ``app-cancel`` job that tells the app.

On-arrival apps are matched by the AI arrival watcher (:mod:`radpacs.ai.triggers`): each
enabled on-arrival app gives one rule per accepted modality and body part.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

from radpacs.ai.triggers import ArrivalRule
from radpacs.apps.registry import AppInput, AppSpec, AppTrigger, AppUpdate, check_url
from radpacs.apps.to_dicom import result_datasets
from radpacs.archive import Archive, Level, Outcome, parse_query
from radpacs.archive.apps import AppRecord, AppRun, AppStore
from radpacs.archive.workitems import (
    CANCELED,
    COMPLETED,
    IN_PROGRESS,
    PERFORMED,
    PROGRESS,
    STATE,
    TRANSACTION,
    Event,
    WorkitemStore,
)
from radpacs.client.apps import AnalysisResult, ResultStatus
from radpacs.errors import Conflict, InvalidInput, StorageError
from radpacs.jobs import Jobs
from radpacs.settings import Settings

__all__ = ["CANCEL_KIND", "DELIVERY_KIND", "WORKLIST_LABEL", "AppService", "ResultOutcome"]

log = logging.getLogger(__name__)

DELIVERY_KIND = "app-delivery"
CANCEL_KIND = "app-cancel"
WORKLIST_LABEL = "radpacs apps"
_FINAL = (COMPLETED, CANCELED)
_ARRIVAL_NAMESPACE = uuid.UUID("6f1c1c38-52a4-4a4e-9a53-2f4d3c1a7b10")  # arrival workitem UIDs
_SOURCES_MAX = 20_000  # input headers read to check a result and build its DICOM


def _dt(value: datetime | None = None) -> str:
    return (value or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")


def _first(match: dict[str, Any], tag: str) -> Any:
    return (match.get(tag, {}).get("Value") or [""])[0]


class ResultOutcome:
    """What :meth:`AppService.post_result` did: the workitem's state after it, whether it
    stored anything (False for progress and for a repeated identical result), the series
    of the result's DICOM, and the UPS events to publish."""

    def __init__(self, state: str, stored: bool, series: list[str], events: list[Event]) -> None:
        self.state, self.stored, self.series, self.events = state, stored, series, events

    def to_json(self, uid: str) -> dict[str, Any]:
        return {"workitem": uid, "state": self.state, "stored": self.stored, "series": self.series}


class AppService:
    """Registered apps and their analyses; see the module."""

    def __init__(self, settings: Settings, archive: Archive, jobs: Jobs) -> None:
        self.settings = settings
        self.archive = archive
        self.jobs = jobs
        self.store = AppStore(archive.engine)
        self.workitems = WorkitemStore(archive.engine)

    # -- the registry ------------------------------------------------------------------------

    def register(self, spec: AppSpec, created_by: str) -> AppRecord:
        """Register an app whose URL passes :func:`check_url` (Conflict if the name is taken)."""
        check_url(spec.url, self.settings.apps_allowed_hosts)
        return self.store.add(spec.record(created_by))

    def update(self, name: str, change: AppUpdate) -> AppRecord:
        updated = change.apply(self.store.get(name))
        check_url(updated.url, self.settings.apps_allowed_hosts)
        return self.store.update(updated)

    def remove(self, name: str) -> None:
        self.store.remove(name)

    def registered(self) -> list[AppRecord]:
        return self.store.all()

    def get(self, name: str) -> AppRecord:
        return self.store.get(name)

    def rules(self) -> list[ArrivalRule]:
        """The arrival rules of the enabled on-arrival apps (for the arrival watcher)."""
        rules = []
        for app in self.store.all():
            if not app.enabled or app.trigger != AppTrigger.ON_ARRIVAL:
                continue
            for modality in app.modalities or [""]:
                for body_part in app.body_parts or [""]:
                    rules.append(
                        ArrivalRule(
                            model=app.name,
                            modality=modality,
                            body_part=body_part,
                            stable_seconds=app.stable_seconds,
                        )
                    )
        return rules

    # -- triggering --------------------------------------------------------------------------

    def submit(self, name: str, study_uid: str, series_uid: str = "", trigger: str = "") -> AppRun:
        """The arrival watcher's entry: trigger ``name`` on an arrived series, once. The
        workitem UID is derived from (app, study, series), so that several server processes
        seeing the same arrival make one analysis (the others get a Conflict)."""
        key = uuid.uuid5(_ARRIVAL_NAMESPACE, f"{name}|{study_uid}|{series_uid}")
        return self.trigger(
            name,
            study_uid,
            series_uid,
            trigger=AppTrigger.ON_ARRIVAL.value,
            workitem_uid=f"2.25.{key.int}",
        )

    def trigger(
        self,
        name: str,
        study_uid: str,
        series_uid: str = "",
        parameters: dict[str, Any] | None = None,
        *,
        trigger: str = AppTrigger.ON_DEMAND.value,
        created_by: str = "",
        workitem_uid: str = "",
    ) -> AppRun:
        """Start an analysis of ``study_uid`` (one series, or what the app accepts of the
        study) by app ``name``: the workitem, the run and the delivery job."""
        app = self.store.get(name)
        if not app.enabled:
            raise Conflict(f"the app {name!r} is disabled")
        study = self._study(study_uid)
        series = self._input_series(app, study_uid, series_uid)
        uid, transaction = workitem_uid or str(generate_uid()), str(generate_uid())
        self.workitems.create(self._workitem(app, study, series), uid)
        self.workitems.change_state(uid, {STATE: _cs(IN_PROGRESS), TRANSACTION: _ui(transaction)})
        run = self.store.add_run(
            AppRun(
                workitem_uid=uid,
                transaction_uid=transaction,
                app=name,
                study_uid=study_uid,
                series_uids=series,
                trigger=trigger,
                job_id="",
                created_by=created_by,
                result_json="",
                result_sha256="",
                result_series=[],
            )
        )
        job, _ = self.jobs.submit(
            DELIVERY_KIND,
            {"workitem": uid, "app": name, "parameters": parameters or {}},
            key=uid,
            study_uid=study_uid,
            label=name,
        )
        self.store.set_job(uid, job.id)
        log.info("app %s triggered (%s) on study %s: workitem %s", name, trigger, study_uid, uid)
        return self.store.run(run.workitem_uid)

    def _study(self, study_uid: str) -> dict[str, Any]:
        matches = self.archive.search(
            parse_query(Level.STUDY, [("StudyInstanceUID", study_uid)])
        ).matches
        if not matches:
            raise InvalidInput(f"the study {study_uid} is not stored")
        return dict(matches[0])

    def _input_series(self, app: AppRecord, study_uid: str, series_uid: str) -> list[str]:
        query = [("includefield", "BodyPartExamined")]
        if series_uid:
            query.append(("SeriesInstanceUID", series_uid))
        found = self.archive.search(parse_query(Level.SERIES, query, study_uid=study_uid)).matches
        if series_uid and not found:
            raise InvalidInput(f"the series {series_uid} is not in the study {study_uid}")
        accepted = [
            str(_first(match, "0020000E"))
            for match in found
            if _accepts(app, str(_first(match, "00080060")), str(_first(match, "00180015")))
        ]
        if not accepted:
            what = f"the series {series_uid}" if series_uid else f"no series of {study_uid}"
            raise InvalidInput(
                f"{what}: not what the app {app.name!r} accepts (modalities "
                f"{', '.join(app.modalities) or 'any'}; body parts "
                f"{', '.join(app.body_parts) or 'any'})"
            )
        if app.input == AppInput.STUDY and not series_uid:
            return []
        return accepted

    @staticmethod
    def _workitem(app: AppRecord, study: dict[str, Any], series: list[str]) -> dict[str, Any]:
        study_uid = str(_first(study, "0020000D"))
        inputs = [
            {"0020000D": _ui(study_uid), **({"0020000E": _ui(s)} if s else {})}
            for s in series or [""]
        ]
        dataset: dict[str, Any] = {
            STATE: _cs("SCHEDULED"),
            "00741204": {"vr": "LO", "Value": [f"App {app.name}"[:64]]},
            "00741202": {"vr": "LO", "Value": [WORKLIST_LABEL]},
            "00404005": {"vr": "DT", "Value": [_dt()]},
            "0020000D": _ui(study_uid),
            "00404021": {"vr": "SQ", "Value": inputs},
        }
        for tag in ("00100010", "00100020", "00080050"):
            if tag in study and study[tag].get("Value"):
                dataset[tag] = study[tag]
        return dataset

    # -- results -----------------------------------------------------------------------------

    def post_result(self, uid: str, result: AnalysisResult) -> ResultOutcome:
        """Apply what the app of workitem ``uid`` posted (see the module)."""
        run = self.store.run(uid)
        body = result.model_dump_json()
        digest = hashlib.sha256(body.encode()).hexdigest()
        state = self.workitems.state(uid)
        if state in _FINAL:
            repeat = state == COMPLETED and result.status is ResultStatus.COMPLETED
            if repeat and digest == run.result_sha256:  # the same result: answered, not stored
                return ResultOutcome(state, False, run.result_series, [])
            raise Conflict(
                f"the analysis {uid} is already {state}: it takes no more results"
                + (" (a different completed result was posted before)" if run.result_sha256 else "")
            )
        transaction = run.transaction_uid
        if result.status is ResultStatus.RUNNING:
            events = self.workitems.update(uid, {PROGRESS: _progress(result)}, transaction)
            return ResultOutcome(IN_PROGRESS, False, [], events)
        if result.status is ResultStatus.FAILED:
            reason = result.reason or "the app reported a failure without a reason"
            progress = _progress(result)
            progress["Value"][0]["00741238"] = {"vr": "LT", "Value": [reason[:1024]]}
            self.workitems.update(uid, {PROGRESS: progress}, transaction)
            events, _ = self.workitems.change_state(
                uid, {STATE: _cs(CANCELED), TRANSACTION: _ui(transaction)}
            )
            return ResultOutcome(CANCELED, False, [], events)
        datasets = self._result_datasets(result, run)
        run, recorded = self.store.keep_result(uid, body, digest, [])
        if not recorded and digest != run.result_sha256:
            raise Conflict(f"the analysis {uid} already has a different completed result")
        # Recorded now, or the same result again after an earlier post of it failed between
        # recording and completing (the workitem is still IN PROGRESS): store and complete.
        series = self._store_datasets(datasets, run)
        performed = {
            "vr": "SQ",
            "Value": [
                {
                    "00404050": {"vr": "DT", "Value": [_dt(run.created_at)]},
                    "00404051": {"vr": "DT", "Value": [_dt()]},
                }
            ],
        }
        changes: dict[str, Any] = {PERFORMED: performed, PROGRESS: _progress(result, 100.0)}
        events = self.workitems.update(uid, changes, transaction)
        more, _ = self.workitems.change_state(
            uid, {STATE: _cs(COMPLETED), TRANSACTION: _ui(transaction)}
        )
        return ResultOutcome(COMPLETED, True, series, events + more)

    def _result_datasets(self, result: AnalysisResult, run: AppRun) -> list[Dataset]:
        """The SR documents made from a completed result (:mod:`radpacs.apps.to_dicom`),
        checked against the headers of the run's inputs: InvalidInput (400, nothing stored)
        for a region, measurement or verdict naming an image outside them."""
        return result_datasets(
            result, self._input_headers(run), app_name=run.app, workitem_uid=run.workitem_uid
        )

    def _input_headers(self, run: AppRun) -> list[Dataset]:
        """The headers (no pixel data) of the instances of the run's series, or of its
        whole study when it names none."""
        headers: list[Dataset] = []
        wanted: list[str | None] = list(run.series_uids) or [None]
        for series in wanted:
            for file in self.archive.instance_files(run.study_uid, series):
                if len(headers) >= _SOURCES_MAX:
                    raise InvalidInput(
                        f"the inputs hold more than {_SOURCES_MAX} instances: too many to "
                        "check a result against"
                    )
                with self.archive.open(file) as stream:
                    headers.append(dcmread(stream, stop_before_pixels=True))
        return headers

    def _store_datasets(self, datasets: list[Dataset], run: AppRun) -> list[str]:
        if not datasets:
            return []
        stored = self.archive.store_many(
            [_file_bytes(ds) for ds in datasets], expected_study_uid=run.study_uid
        )
        failed = [r for r in stored if r.outcome is Outcome.FAILED]
        if failed:
            raise StorageError(f"the result's DICOM could not be stored: {failed[0].message}")
        series = sorted({r.series_uid for r in stored})
        self.store.set_result_series(run.workitem_uid, series)
        return series

    # -- reading and cancelling --------------------------------------------------------------

    def analysis(self, uid: str) -> dict[str, Any]:
        """An analysis as JSON: the run, its workitem's state and progress, its job's state
        and error, and the kept result."""
        run = self.store.run(uid)
        item = self.workitems.get(uid)
        job = self.jobs.get(run.job_id) if run.job_id else None
        progress = ((item.get(PROGRESS) or {}).get("Value") or [{}])[0]
        return {
            "workitem": uid,
            "app": run.app,
            "study": run.study_uid,
            "series": run.series_uids,
            "trigger": run.trigger,
            "created_by": run.created_by,
            "created_at": run.created_at.isoformat() if run.created_at else None,
            "state": _first(item, STATE),
            "progress": _first(progress, "00741004") or None,
            "reason": _first(progress, "00741238") or None,
            "delivery": None
            if job is None
            else {
                "job": job.id,
                "state": job.state.value,
                "attempts": job.attempts,
                "max_attempts": job.max_attempts,
                "error": job.error or None,
            },
            "result": json.loads(run.result_json) if run.result_json else None,
            "result_series": run.result_series,
        }

    def analyses(
        self, app: str | None = None, study_uid: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return [self.analysis(run.workitem_uid) for run in self.store.runs(app, study_uid, limit)]

    def cancel(self, uid: str, reason: str = "") -> list[Event]:
        """Cancel the analysis ``uid``: its workitem, its pending delivery, and tell the app
        (an ``app-cancel`` job POSTs to ``<app url>/cancel``). Conflict once finished."""
        run = self.store.run(uid)
        state = self.workitems.state(uid)
        if state in _FINAL:
            raise Conflict(f"the analysis {uid} is already {state}")
        why = reason or "cancellation requested"
        progress = {"vr": "SQ", "Value": [{"00741238": {"vr": "LT", "Value": [why[:1024]]}}]}
        self.workitems.update(uid, {PROGRESS: progress}, run.transaction_uid)
        events, _ = self.workitems.change_state(
            uid, {STATE: _cs(CANCELED), TRANSACTION: _ui(run.transaction_uid)}
        )
        if run.job_id and self.jobs.get(run.job_id).pending:
            self.jobs.cancel(run.job_id)
        self.jobs.submit(
            CANCEL_KIND, {"workitem": uid, "app": run.app}, key=uid, study_uid=run.study_uid
        )
        return events


def _accepts(app: AppRecord, modality: str, body_part: str) -> bool:
    if app.modalities and modality.upper() not in app.modalities:
        return False
    return not app.body_parts or body_part.upper() in app.body_parts


def _file_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _cs(value: str) -> dict[str, Any]:
    return {"vr": "CS", "Value": [value]}


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]}


def _progress(result: AnalysisResult, percent: float | None = None) -> dict[str, Any]:
    """The UPS Progress Information Sequence (0074,1002) of a result."""
    item: dict[str, Any] = {}
    value = percent if percent is not None else result.progress
    if value is not None:
        item["00741004"] = {"vr": "DS", "Value": [round(value, 2)]}
    if result.display_text:
        item["00741006"] = {"vr": "ST", "Value": [result.display_text[:1024]]}
    return {"vr": "SQ", "Value": [item]}
