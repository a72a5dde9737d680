"""RadpacsClient: the blocking client (httpx.Client, batches sent by a thread pool)."""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

import httpx

from radpacs.client import _core
from radpacs.client._core import Call, PartWriter, PreparedBatch, SearchPager
from radpacs.client._retry import RETRY_STATUSES, RetryableStatus, RetryPolicy
from radpacs.client.config import resolve
from radpacs.client.schemas import (
    AiBatch,
    AiCatalog,
    AiJob,
    AppAnalysis,
    DicomJSON,
    DVHResult,
    InstanceOutcome,
    QualityControl,
    QualityControlStatus,
    RegisteredApp,
    SearchMatch,
    ServerStatus,
    StoreSummary,
)
from radpacs.client.sources import Source, batches, collect
from radpacs.errors import RadpacsRequestError

__all__ = ["RadpacsClient"]

T = TypeVar("T")

StoreProgress = Callable[[list[InstanceOutcome]], None]


class RadpacsClient:
    """A radpacs server seen from Python: DICOMweb and the REST API, with retries.

    ``url`` is the server's root (DICOMweb is under ``/dicom-web``). Uploads go in batches
    of at most ``batch_instances`` files and ``batch_bytes`` bytes, ``concurrency`` at a
    time. Errors raise :class:`radpacs.errors.RadpacsRequestError`.

    Example::

        with RadpacsClient("http://127.0.0.1:8080") as client:
            summary = client.store(["scans/"])
            for study in client.search("studies", {"PatientID": "P1"}):
                client.retrieve(study.study_uid, "downloads/")
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        concurrency: int = 4,
        batch_instances: int = 50,
        batch_bytes: int = 32 * 1024 * 1024,
        transport: httpx.BaseTransport | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.batch_instances = batch_instances
        self.batch_bytes = batch_bytes
        self._http = httpx.Client(
            base_url=self.url,
            timeout=self.retry.timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency + 2),
        )
        if token and auth is not None:
            raise ValueError("give a token or HTTP Basic credentials (auth=), not both")
        self.token = token
        if auth is not None:  # until a token (login) replaces them
            self._http.headers["Authorization"] = _core.basic_authorization(*auth)

    @classmethod
    def from_config(
        cls, url: str | None = None, token: str | None = None, **options: Any
    ) -> RadpacsClient:
        """A client for the URL and token given, else RADPACS_URL/RADPACS_TOKEN, else the
        user config file written by ``radpacs login``."""
        config = resolve(url, token)
        return cls(config.url, config.token, **options)

    @property
    def token(self) -> str | None:
        """The bearer token sent with every request (None: none sent)."""
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = value
        if value:
            self._http.headers["Authorization"] = f"Bearer {value}"
        else:
            self._http.headers.pop("Authorization", None)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RadpacsClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: types.TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ sending

    def _attempt(self, call: Call, attempt: int, consume: Callable[[httpx.Response], T]) -> T:
        with self._http.stream(
            call.method,
            call.path,
            params=list(call.params) or None,
            headers=dict(call.headers),
            content=call.content,
            json=call.json,
            files=dict(call.files) if call.files else None,
            data=dict(call.data) if call.data else None,
        ) as response:
            if _core.check(call, response, attempt):
                return consume(response)
            text = response.read().decode("utf-8", "replace")
            if response.status_code in RETRY_STATUSES:
                raise RetryableStatus(response, text)
            raise RadpacsRequestError(call.method, call.path, response.status_code, text)

    def _send(self, call: Call, consume: Callable[[httpx.Response], T]) -> T:
        """Send ``call`` with retries; ``consume`` reads the answer inside the attempt, so a
        connection dropped mid-body is retried too."""
        try:
            for attempt in self.retry.retrying(call.idempotent):
                with attempt:
                    return self._attempt(call, attempt.retry_state.attempt_number, consume)
        except RetryableStatus as exc:
            raise RadpacsRequestError(
                call.method, call.path, exc.response.status_code, exc.text
            ) from exc
        except httpx.TransportError as exc:
            raise _core.request_error(call, exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def request(self, call: Call) -> httpx.Response:
        """Send ``call`` and read the whole answer."""

        def read(response: httpx.Response) -> httpx.Response:
            response.read()
            return response

        return self._send(call, read)

    # ------------------------------------------------------------------ STOW-RS

    def _store_batch(self, sources: list[Source], skip_existing: bool) -> list[InstanceOutcome]:
        batch = PreparedBatch(sources)
        try:
            if skip_existing:
                for call in batch.existing_calls():
                    batch.mark_existing(self.request(call))
            stow = batch.stow_call()
            if stow is not None:
                batch.apply_stow(self.request(stow))
        except RadpacsRequestError as exc:
            batch.fail_pending(str(exc))
        return batch.outcomes()

    def store(
        self,
        paths: Iterable[str | Path | Source],
        *,
        skip_existing: bool = True,
        progress: StoreProgress | None = None,
    ) -> StoreSummary:
        """Store DICOM files, folders (recursively) and zips by STOW-RS (PS3.18 10.5).

        Files go in batches, ``concurrency`` at a time; with ``skip_existing`` each batch
        first asks QIDO-RS which of its SOP Instance UIDs are stored and sends only the
        others (they are reported ALREADY_STORED). Failures do not raise: each input's
        outcome, with the server's reason, is in the summary. ``progress`` is called with
        the outcomes of each finished batch.
        """
        groups = batches(collect(paths), self.batch_instances, self.batch_bytes)
        results: dict[int, list[InstanceOutcome]] = {}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="radpacs-store") as pool:
            running: dict[Future[list[InstanceOutcome]], int] = {}
            for number, group in enumerate(groups):
                running[pool.submit(self._store_batch, group, skip_existing)] = number
                if len(running) >= self.concurrency:  # bound what is read and held at once
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[running.pop(future)] = outcomes = future.result()
                        if progress:
                            progress(outcomes)
            for future in list(running):
                results[running.pop(future)] = outcomes = future.result()
                if progress:
                    progress(outcomes)
        return StoreSummary(items=[item for number in sorted(results) for item in results[number]])

    # ------------------------------------------------------------------ QIDO-RS

    def iter_search(
        self,
        level: str = "studies",
        filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        **options: Any,
    ) -> Iterator[SearchMatch]:
        """Matches of a QIDO-RS search (PS3.18 10.6), fetched page by page as iterated.

        ``level`` is studies, series or instances; ``options``: study, series, include,
        fuzzy, limit (total), offset, page_size (see :class:`SearchPager`).
        """
        pager = SearchPager(level, filters, **options)
        while (call := pager.next_call()) is not None:
            yield from pager.accept(self.request(call))

    def search(
        self,
        level: str = "studies",
        filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        **options: Any,
    ) -> list[SearchMatch]:
        """Every match of a QIDO-RS search, following the server's paging."""
        return list(self.iter_search(level, filters, **options))

    def find_one(
        self,
        level: str = "studies",
        filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        *,
        study: str | None = None,
        series: str | None = None,
        **named: str,
    ) -> SearchMatch | None:
        """The one match of a QIDO-RS search, None when nothing matches; ValueError when
        more than one does. Filters are pairs and/or keyword arguments; ``study`` and
        ``series`` scope the search as in :meth:`search`::

            study = client.find_one_study(StudyInstanceUID=uid)
            study.get_value_as_string(DicomCodes.PATIENT_ID)
        """
        pairs = _core.find_one_filters(filters, named)
        found = self.search(level, pairs, study=study, series=series, limit=2)
        return _core.only_match(level, pairs, found)

    def find_one_study(self, **filters: str) -> SearchMatch | None:
        """:meth:`find_one` at the study level (the DPAT client's ``find_one_study``)."""
        return self.find_one("studies", list(filters.items()))

    # ------------------------------------------------------------------ WADO-RS

    def retrieve(
        self,
        study: str,
        folder: str | Path,
        series: str | None = None,
        *,
        progress: Callable[[Path], None] | None = None,
    ) -> list[Path]:
        """Download a study or series into ``folder/<study>/<series>/<sop>.dcm``.

        The multipart answer is parsed as it arrives and each instance written when its
        part is complete (PS3.18 10.4); ``progress`` is called with each file written. A
        connection lost midway restarts the download (files are overwritten, not doubled).
        """
        target = Path(folder)

        def consume(response: httpx.Response) -> list[Path]:
            writer = PartWriter(response, target)
            for chunk in response.iter_bytes():
                for path in writer.feed(chunk):
                    if progress:
                        progress(path)
            for path in writer.close():
                if progress:
                    progress(path)
            return writer.written

        return self._send(_core.retrieve_call(study, series), consume)

    def metadata(
        self,
        study: str,
        series: str | None = None,
        sop: str | None = None,
        *,
        phi: bool = True,
    ) -> list[DicomJSON]:
        """WADO-RS metadata of every instance of a study, series or instance; ``phi=False``
        without patient-identifying attributes (PS3.15 Basic Profile, UIDs kept)."""
        response = self.request(_core.metadata_call(study, series, sop, phi))
        return [DicomJSON(dataset=item) for item in response.json()]

    def frames(
        self, study: str, series: str, sop: str, numbers: Sequence[int], *, as_stored: bool = False
    ) -> list[bytes]:
        """Frames by 1-based number: native little endian pixels, or the stored bitstreams."""
        response = self.request(_core.frames_call(study, series, sop, numbers, as_stored))
        return _core.split_multipart(response)

    def rendered(
        self,
        study: str,
        series: str | None = None,
        sop: str | None = None,
        *,
        frame: int | None = None,
        media_type: str = "image/png",
        params: Mapping[str, str] | None = None,
    ) -> bytes:
        """A rendered image (PS3.18 10.4.1.1.5) of an instance (its first frame) or a frame;
        for a study or series the server answers multipart/related, returned as is."""
        call = _core.rendered_call(study, series, sop, frame, media_type, params or {})
        return self.request(call).content

    def thumbnail(
        self,
        study: str,
        series: str | None = None,
        sop: str | None = None,
        *,
        frame: int | None = None,
        media_type: str = "image/jpeg",
        params: Mapping[str, str] | None = None,
    ) -> bytes:
        """A thumbnail (PS3.18 10.4.1.1.4): one small image (128x128 unless ``params`` gives
        a viewport) of a representative frame of a study, series, instance or frame."""
        call = _core.rendered_call(
            study, series, sop, frame, media_type, params or {}, resource="thumbnail"
        )
        return self.request(call).content

    def delete(self, study: str, series: str | None = None, sop: str | None = None) -> None:
        """Delete a study, series or instance; RadpacsRequestError (404) if it is not there."""
        self.request(_core.delete_call(study, series, sop))

    # ------------------------------------------------------------------ AI jobs

    def ai_models(self) -> AiCatalog:
        """The models the server can run (GET /api/ai/models) and plugins that failed."""
        return AiCatalog.model_validate(self.request(_core.AI_MODELS).json())

    def ai_submit(
        self,
        model: str,
        study: str,
        series: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        max_attempts: int | None = None,
    ) -> AiJob:
        """Queue ``model`` on a study (every series it accepts) or one series
        (POST /api/ai/jobs); the queued job, or the pending identical one."""
        call = _core.ai_submit_call(model, study, series, parameters or {}, max_attempts)
        return AiJob.model_validate(self.request(call).json())

    def ai_job(self, job_id: str) -> AiJob:
        """One job as it is now (GET /api/ai/jobs/{id}); RadpacsRequestError 404 if unknown."""
        return AiJob.model_validate(self.request(_core.ai_job_call(job_id)).json())

    def ai_jobs(
        self,
        *,
        state: str | None = None,
        study: str | None = None,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AiJob]:
        """Jobs, newest first (GET /api/ai/jobs), by state, study and model."""
        call = _core.ai_jobs_call(state, study, model, limit, offset)
        return _core.read_jobs(self.request(call))

    def ai_wait(
        self,
        job: str | AiJob,
        *,
        timeout: float = 600.0,
        interval: float = 2.0,
        raise_on_failure: bool = True,
    ) -> AiJob:
        """Poll a job until it is succeeded, failed or cancelled, and return it.

        Raises :class:`radpacs.errors.AiJobError` (``.job`` is the final job) when it
        failed or was cancelled, unless ``raise_on_failure`` is False, and
        :class:`radpacs.errors.AiJobTimeout` when it is still pending after ``timeout``
        seconds (the job goes on). Polls start 0.1 s apart and slow down to ``interval``.
        """
        job_id = job.id if isinstance(job, AiJob) else job
        waiting = _core.JobWait(job_id, timeout, interval, raise_on_failure, time.monotonic())
        while True:
            current = AiJob.model_validate(self.request(waiting.call).json())
            pause = waiting.settle(current, time.monotonic())
            if pause is None:
                return current
            time.sleep(pause)

    def ai_result(self, job_id: str) -> dict[str, Any]:
        """A finished job's result for viewers (GET /api/ai/jobs/{id}/result): per result,
        labels with measurements and polygons per slice; 404 before the job succeeded."""
        result: dict[str, Any] = self.request(_core.ai_result_call(job_id)).json()
        return result

    def ai_cancel(self, job_id: str) -> AiJob:
        """Cancel a job (POST /api/ai/jobs/{id}/cancel): a queued job ends at once, a
        running one when its worker notices; the job as the server then shows it."""
        return AiJob.model_validate(self.request(_core.ai_cancel_call(job_id)).json())

    def ai_batch(
        self, model: str, query: Mapping[str, str] | None = None, *, limit: int = 500
    ) -> AiBatch:
        """A job per series matching a QIDO-RS series query (POST /api/ai/batch), e.g.
        ``{"Modality": "CT", "StudyDate": "20240101-"}``; the jobs and the series skipped."""
        call = _core.ai_batch_call(model, query or {}, limit)
        return AiBatch.model_validate(self.request(call).json())

    # ------------------------------------------------------------- DICOM node (DIMSE)

    def dimse_echo(self, node: str) -> dict[str, Any]:
        """C-ECHO a configured node through the server; RadpacsRequestError 502 if it fails."""
        result: dict[str, Any] = self.request(_core.dimse_echo_call(node)).json()
        return result

    def dimse_query(
        self, node: str, keys: Mapping[str, str], level: str = "STUDY"
    ) -> list[dict[str, Any]]:
        """C-FIND a configured node (study root); the matches as DICOM JSON objects."""
        found: list[dict[str, Any]] = self.request(_core.dimse_query_call(node, level, keys)).json()
        return found

    def dimse_send(self, node: str, study: str, series: str | None = None) -> dict[str, Any]:
        """Queue a C-STORE of a study or series to a node; the job (see :meth:`dimse_wait`)."""
        job: dict[str, Any] = self.request(
            _core.dimse_transfer_call(node, "send", study, series)
        ).json()
        return job

    def dimse_retrieve(
        self,
        node: str,
        study: str,
        series: str | None = None,
        *,
        method: str = "move",
        destination: str | None = None,
    ) -> dict[str, Any]:
        """Queue a C-MOVE (to radpacs by default) or C-GET from a node; the job."""
        call = _core.dimse_transfer_call(node, "retrieve", study, series, method, destination)
        job: dict[str, Any] = self.request(call).json()
        return job

    def dimse_job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.request(_core.dimse_job_call(job_id)).json()
        return job

    def dimse_wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        interval: float = 1.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a transfer job until it succeeded, failed or was cancelled; TimeoutError after
        ``timeout`` seconds (the job goes on)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.dimse_job(job_id)
            if progress is not None:
                progress(job)
            if job["state"] in _core.DIMSE_JOB_ENDS:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"DICOM transfer job {job_id} still {job['state']}")
            time.sleep(interval)

    # ------------------------------------------------------------------ REST API

    def followup_patients(
        self, search: str = "", *, offset: int = 0, limit: int = 50
    ) -> dict[str, Any]:
        """Patients with a follow-up (GET /api/followup/patients): ``patients`` and ``total``."""
        call = _core.followup_patients_call(search, offset, limit)
        result: dict[str, Any] = self.request(call).json()
        return result

    def followup_patient(self, patient_id: str) -> dict[str, Any]:
        """One patient's timepoints, lesions and responses (GET /api/followup/patients/{id})."""
        result: dict[str, Any] = self.request(_core.followup_patient_call(patient_id)).json()
        return result

    def followup_export(self, patient_id: str, format: str = "csv") -> str:
        """One row per lesion per timepoint: the CSV text, or the JSON text."""
        return self.request(_core.followup_export_call(patient_id, format)).text

    def followup_correct(self, patient_id: str, kind: str, **fields: str) -> dict[str, Any]:
        """Record a correction (rename, merge, split, reassign, role, exclude)."""
        call = _core.followup_correct_call(patient_id, kind, fields)
        result: dict[str, Any] = self.request(call).json()
        return result

    def followup_store_sr(self, patient_id: str) -> dict[str, Any]:
        """Store the follow-up as a TID 1500 SR in the patient's latest study."""
        result: dict[str, Any] = self.request(_core.followup_sr_call(patient_id)).json()
        return result

    def login(self, username: str, password: str) -> str:
        """POST /api/auth; the token is kept for the following requests and returned."""
        call = _core.login_call(username, password)
        self.token = _core.read_token(call, self.request(call))
        return self.token

    def dvh(self, structures: Path | bytes, dose: Path | bytes, **params: str) -> DVHResult:
        """Dose-volume histograms of an RTSTRUCT's structures over an RTDOSE (POST /api/dvh)."""
        response = self.request(_core.dvh_call(structures, dose, params))
        return DVHResult.from_answer(response.json())

    def stored_dvh(
        self,
        rtstruct: str,
        rtdose: str | Sequence[str],
        *,
        weights: Sequence[float] | None = None,
        **options: Any,
    ) -> DVHResult:
        """DVHs of a stored RTSTRUCT in stored RTDOSE(s) (POST /api/rt/dvh); several RTDOSE
        UIDs are summed with ``weights``; ``options``: roi, prescription, metrics, ..."""
        call = _core.stored_dvh_call(rtstruct, rtdose, weights, options)
        return DVHResult.from_answer((self.request(call)).json())

    def set_quality_control(
        self, sop: str, status: QualityControlStatus | str, comment: str = ""
    ) -> QualityControl:
        """Set an instance's quality-control status (passed, failed or pending) and comment."""
        response = self.request(_core.set_qc_call(sop, status, comment))
        return QualityControl.model_validate(response.json())

    def quality_control(self, sop: str) -> QualityControl:
        """An instance's quality-control status (``pending`` when never set)."""
        response = self.request(_core.qc_call(sop))
        return QualityControl.model_validate(response.json())

    def quality_controls(
        self, status: QualityControlStatus | str | None = None, study: str | None = None
    ) -> list[QualityControl]:
        """The statuses that were set, of one status and/or one study, newest first."""
        response = self.request(_core.qc_list_call(status, study))
        return [QualityControl.model_validate(item) for item in response.json()]

    def rt_objects(self, study: str) -> dict[str, Any]:
        """The RT plans, structure sets and doses of a stored study and their references."""
        return dict((self.request(_core.rt_objects_call(study))).json())

    def plan_statistics(
        self,
        plan: str,
        metrics: Sequence[str] | None = None,
        prescription: float | None = None,
    ) -> dict[str, Any]:
        """Statistics of every ROI of a stored plan in its dose, in one request."""
        call = _core.plan_statistics_call(plan, metrics, prescription)
        return dict((self.request(call)).json())

    def dvh_plot(self, result: DVHResult, media_type: str = "image/png") -> bytes:
        """A plot of DVH curves (POST /api/dvh/plot), as PNG bytes by default."""
        dvhs = [curve.model_dump() for curve in result.dvhs]
        return self.request(_core.dvh_plot_call(dvhs, media_type)).content

    def anonymize(
        self, file: Path | bytes, options: Sequence[str] = (), *, pixels_checked: bool = False
    ) -> bytes:
        """The file de-identified by the server (POST /api/anonymize, PS3.15 Annex E)."""
        return self.request(_core.anonymize_call(file, options, pixels_checked)).content

    def status(self) -> ServerStatus:
        """GET /api/health, and the archive's counts from GET /api/counts."""
        health = self.request(_core.HEALTH).json()
        counts = self.request(_core.COUNTS).json()
        return ServerStatus(url=self.url, counts=counts, **health)

    def register_app(
        self,
        name: str,
        url: str,
        *,
        modalities: Sequence[str] = (),
        body_parts: Sequence[str] = (),
        input: str = "series",
        trigger: str = "on-demand",
        timeout: float = 30.0,
        stable_seconds: float = 10.0,
        enabled: bool = True,
    ) -> RegisteredApp:
        """Register a callback app (admin): its URL must be http(s) to an allowed host."""
        fields = {
            "modalities": list(modalities),
            "body_parts": list(body_parts),
            "input": input,
            "trigger": trigger,
            "timeout": timeout,
            "stable_seconds": stable_seconds,
            "enabled": enabled,
        }
        response = self.request(_core.app_register_call(name, url, fields))
        return RegisteredApp.model_validate(response.json())

    def apps(self) -> list[RegisteredApp]:
        """The registered callback apps."""
        response = self.request(_core.apps_call())
        return [RegisteredApp.model_validate(item) for item in response.json()["apps"]]

    def update_app(self, name: str, **changes: Any) -> RegisteredApp:
        """Change a registration (admin): url, modalities, body_parts, input, trigger,
        enabled, timeout, stable_seconds."""
        response = self.request(_core.app_update_call(name, changes))
        return RegisteredApp.model_validate(response.json())

    def remove_app(self, name: str) -> None:
        """Unregister an app (admin); its analyses stay readable."""
        self.request(_core.app_remove_call(name))

    def trigger_app(
        self,
        name: str,
        study: str,
        series: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> AppAnalysis:
        """Start an analysis of a study (or one series) by app ``name``."""
        response = self.request(_core.app_trigger_call(name, study, series, parameters))
        return AppAnalysis.model_validate(response.json())

    def app_analysis(self, workitem: str) -> AppAnalysis:
        """One analysis, by its workitem UID."""
        response = self.request(_core.app_analysis_call(workitem))
        return AppAnalysis.model_validate(response.json())

    def app_analyses(
        self, app: str | None = None, study: str | None = None, limit: int = 100
    ) -> list[AppAnalysis]:
        """The latest analyses first, of one app and/or one study."""
        response = self.request(_core.app_analyses_call(app, study, limit))
        return [AppAnalysis.model_validate(item) for item in response.json()["analyses"]]

    def cancel_app_analysis(self, workitem: str) -> AppAnalysis:
        """Cancel an analysis; the app is told at ``<app url>/cancel``."""
        response = self.request(_core.app_cancel_call(workitem))
        return AppAnalysis.model_validate(response.json())
