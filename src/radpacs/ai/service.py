"""The AI service of a server process: models, job submission, and the AI view of jobs.

Nothing here runs a model: submission writes a job of kind ``ai`` to the one job store
(:mod:`radpacs.jobs`) and enqueues it; workers run it (:func:`radpacs.ai.execute.run_ai_job`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from radpacs.ai.discovery import discover_models
from radpacs.ai.execute import KIND, accepted_series, assign_roles
from radpacs.ai.interface import ModelRegistry, model_json
from radpacs.archive import Archive, Level, parse_query
from radpacs.archive.jobs import Job as StoredJob
from radpacs.archive.jobs import JobState
from radpacs.errors import InvalidInput
from radpacs.jobs import Jobs

__all__ = ["AiJob", "AiJobs", "AiService"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AiJob:
    """An AI job as the AI API shows it (a job of kind ``ai``)."""

    job: StoredJob

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def state(self) -> JobState:
        return self.job.state

    @property
    def model(self) -> str:
        return str(self.job.params["model"])

    @property
    def study_uid(self) -> str:
        return str(self.job.params["study"])

    @property
    def series_uid(self) -> str:
        return str(self.job.params.get("series") or "")

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.job.params.get("parameters") or {})

    @property
    def trigger(self) -> str:
        return str(self.job.params.get("trigger", "demand"))

    @property
    def pending(self) -> bool:
        return self.job.pending

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        job = self.job
        return {
            "id": job.id,
            "model": self.model,
            "study": self.study_uid,
            "series": self.series_uid or None,
            "parameters": self.parameters,
            "trigger": self.trigger,
            "state": job.state.value,
            "progress": round(job.progress, 4),
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "cancel_requested": job.cancel_requested,
            "error": job.error or None,
            "result_series": job.result.get("result_series", []),
            "timings": job.result.get("timings", {}),
            "created_at": iso(job.created_at),
            "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "next_attempt_at": iso(job.next_attempt_at),
        }


class AiJobs:
    """The jobs of kind ``ai`` in the one job store."""

    def __init__(self, jobs: Jobs) -> None:
        self._jobs = jobs

    def submit(
        self,
        model: str,
        study_uid: str,
        series_uid: str = "",
        parameters: dict[str, Any] | None = None,
        trigger: str = "demand",
        max_attempts: int | None = None,
    ) -> tuple[AiJob, bool]:
        """A queued job, or the pending one with the same request (False)."""
        parameters = parameters or {}
        params = {
            "model": model,
            "study": study_uid,
            "series": series_uid,
            "parameters": parameters,
            "trigger": trigger,
        }
        key = json.dumps([model, study_uid, series_uid, parameters], sort_keys=True)
        job, created = self._jobs.submit(
            KIND,
            params,
            key=key,
            study_uid=study_uid,
            label=model,
            max_attempts=max_attempts,
        )
        return AiJob(job), created

    def get(self, job_id: str) -> AiJob:
        return AiJob(self._jobs.get(job_id, KIND))

    def result_json(self, job_id: str) -> str | None:
        return self._jobs.store.output(job_id, KIND)

    def find(
        self,
        state: str | None = None,
        study_uid: str | None = None,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AiJob]:
        found = self._jobs.find(
            KIND, state=state, study_uid=study_uid, label=model, limit=limit, offset=offset
        )
        return [AiJob(job) for job in found]

    def cancel(self, job_id: str) -> AiJob:
        return AiJob(self._jobs.cancel(job_id, KIND))


class AiService:
    """Submit, list and cancel AI jobs."""

    def __init__(self, settings: Any, archive: Archive, jobs: Jobs) -> None:
        self.settings = settings
        self.archive = archive
        self.registry: ModelRegistry = discover_models(settings)
        self.jobs = AiJobs(jobs)

    def submit(
        self,
        model_name: str,
        study_uid: str,
        series_uid: str | None = None,
        parameters: dict[str, Any] | None = None,
        trigger: str = "demand",
        max_attempts: int | None = None,
    ) -> tuple[AiJob, bool]:
        """A queued job (or the pending identical one); InvalidInput if nothing is accepted."""
        model = self.registry.get(model_name)
        accepted, refused = accepted_series(self.archive, model, study_uid, series_uid)
        if not accepted:
            raise InvalidInput(
                f"model {model_name} accepts no series of study {study_uid}"
                + (": " + "; ".join(refused) if refused else "")
            )
        return self.jobs.submit(
            model_name, study_uid, series_uid or "", parameters, trigger, max_attempts
        )

    def models_for_study(self, study_uid: str) -> list[dict[str, Any]]:
        """Every model with the series of ``study_uid`` it would take (``series``; for a
        multi-series model the series per role in ``roles``) or why none (``reason``)."""
        found = []
        for model in self.registry.models.values():
            entry: dict[str, Any] = {**model_json(model), "series": [], "reason": ""}
            roles = getattr(model, "inputs", ())
            try:
                if roles:
                    assigned = assign_roles(self.archive, roles, study_uid)
                    entry["roles"] = assigned
                    entry["series"] = [assigned[roles[0].name]]
                else:
                    accepted, refused = accepted_series(self.archive, model, study_uid, None)
                    entry["series"] = accepted
                    if not accepted:
                        entry["reason"] = "; ".join(refused) or "the study has no series"
            except InvalidInput as exc:
                entry["reason"] = str(exc)
            found.append(entry)
        return found

    def batch(
        self, model_name: str, params: list[tuple[str, str]], limit: int = 500
    ) -> tuple[list[AiJob], list[str]]:
        """One job per series matching a QIDO-RS series query; the jobs and what was skipped."""
        model = self.registry.get(model_name)
        matches = self.archive.search(parse_query(Level.SERIES, params, max_results=limit))
        jobs, skipped = [], []
        for match in matches.matches:
            study_uid = match["0020000D"]["Value"][0]
            series_uid = match["0020000E"]["Value"][0]
            modality = (match.get("00080060", {}).get("Value") or [""])[0]
            count = int((match.get("00201209", {}).get("Value") or [0])[0])
            reason = (
                model.accepts.refusal(modality, "", count)
                if model.accepts.body_parts == ()
                else None
            )
            if reason:
                skipped.append(f"series {series_uid}: {reason}")
                continue
            try:
                job, _ = self.submit(model_name, study_uid, series_uid, trigger="batch")
            except InvalidInput as exc:
                skipped.append(str(exc))
                continue
            jobs.append(job)
        return jobs, skipped
