"""The AI service of a server process: models, job submission, triggers, embedded worker.

Nothing here runs a model: submission writes a row and enqueues its id; workers run it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from radpacs.ai.discovery import discover_models
from radpacs.ai.execute import accepted_series
from radpacs.ai.interface import ModelRegistry
from radpacs.ai.queue import HueyQueue, open_queue
from radpacs.ai.worker import start_worker_process
from radpacs.archive import Archive, Level, parse_query
from radpacs.archive.jobs import Job, JobStore
from radpacs.errors import InvalidInput

__all__ = ["AiService"]

log = logging.getLogger(__name__)


class AiService:
    """Submit, list and cancel AI jobs; start the embedded worker when there is work."""

    def __init__(self, settings: Any, archive: Archive) -> None:
        self.settings = settings
        self.archive = archive
        self.registry: ModelRegistry = discover_models(settings)
        self.jobs = JobStore(archive.engine)
        self.queue: HueyQueue = open_queue(settings)
        self._worker: Any = None
        self._lock = threading.Lock()
        if self.jobs.queued_ids() or self.jobs.find(state="running", limit=1):
            self.ensure_worker()

    def ensure_worker(self) -> None:
        """Start the embedded worker process if the settings ask for one and none runs."""
        if not self.settings.ai_embedded_worker:
            return
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = start_worker_process(self.settings)

    def submit(
        self,
        model_name: str,
        study_uid: str,
        series_uid: str | None = None,
        parameters: dict[str, Any] | None = None,
        trigger: str = "demand",
        max_attempts: int | None = None,
    ) -> tuple[Job, bool]:
        """A queued job (or the pending identical one); InvalidInput if nothing is accepted."""
        model = self.registry.get(model_name)
        accepted, refused = accepted_series(self.archive, model, study_uid, series_uid)
        if not accepted:
            raise InvalidInput(
                f"model {model_name} accepts no series of study {study_uid}"
                + (": " + "; ".join(refused) if refused else "")
            )
        job, created = self.jobs.submit(
            model_name,
            study_uid,
            series_uid or "",
            parameters,
            trigger,
            max_attempts or self.settings.ai_max_attempts,
        )
        if created:
            self.queue.enqueue(job.id)
        self.ensure_worker()
        return job, created

    def batch(
        self, model_name: str, params: list[tuple[str, str]], limit: int = 500
    ) -> tuple[list[Job], list[str]]:
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

    def close(self) -> None:
        """Stop the embedded worker (its running job is re-queued by the next worker)."""
        worker, self._worker = self._worker, None
        if worker is not None and worker.is_alive():
            worker.terminate()
            worker.join(10)
            if worker.is_alive():
                worker.kill()
                worker.join()
