"""AsyncRadpacsClient: the asyncio client (httpx.AsyncClient, batches sent as bounded tasks).

It mirrors :class:`radpacs.client.RadpacsClient` method by method; both build their
requests and read the answers with :mod:`radpacs.client._core`. Reading files, parsing
DICOM headers and writing downloaded instances run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
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

__all__ = ["AsyncRadpacsClient"]

T = TypeVar("T")

_WRITE_BYTES = 1024 * 1024


class AsyncRadpacsClient:
    """The asyncio twin of :class:`radpacs.client.RadpacsClient`; same arguments, same
    methods, awaited.

    Example::

        async with AsyncRadpacsClient("http://127.0.0.1:8080") as client:
            summary = await client.store(["scans/"])
            studies = await client.search("studies", {"PatientID": "P1"})
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
        transport: httpx.AsyncBaseTransport | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.batch_instances = batch_instances
        self.batch_bytes = batch_bytes
        self._http = httpx.AsyncClient(
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
    ) -> AsyncRadpacsClient:
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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRadpacsClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: types.TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ sending

    async def _attempt(
        self, call: Call, attempt: int, consume: Callable[[httpx.Response], Awaitable[T]]
    ) -> T:
        async with self._http.stream(
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
                return await consume(response)
            text = (await response.aread()).decode("utf-8", "replace")
            if response.status_code in RETRY_STATUSES:
                raise RetryableStatus(response, text)
            raise RadpacsRequestError(call.method, call.path, response.status_code, text)

    async def _send(self, call: Call, consume: Callable[[httpx.Response], Awaitable[T]]) -> T:
        """Send ``call`` with retries; ``consume`` reads the answer inside the attempt."""
        try:
            async for attempt in self.retry.async_retrying(call.idempotent):
                with attempt:
                    return await self._attempt(call, attempt.retry_state.attempt_number, consume)
        except RetryableStatus as exc:
            raise RadpacsRequestError(
                call.method, call.path, exc.response.status_code, exc.text
            ) from exc
        except httpx.TransportError as exc:
            raise _core.request_error(call, exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def request(self, call: Call) -> httpx.Response:
        """Send ``call`` and read the whole answer."""

        async def read(response: httpx.Response) -> httpx.Response:
            await response.aread()
            return response

        return await self._send(call, read)

    # ------------------------------------------------------------------ STOW-RS

    async def _store_batch(
        self, sources: list[Source], skip_existing: bool
    ) -> list[InstanceOutcome]:
        batch = await asyncio.to_thread(PreparedBatch, sources)
        try:
            if skip_existing:
                for call in batch.existing_calls():
                    batch.mark_existing(await self.request(call))
            stow = batch.stow_call()
            if stow is not None:
                batch.apply_stow(await self.request(stow))
        except RadpacsRequestError as exc:
            batch.fail_pending(str(exc))
        return batch.outcomes()

    async def store(
        self,
        paths: Iterable[str | Path | Source],
        *,
        skip_existing: bool = True,
        progress: Callable[[list[InstanceOutcome]], None] | None = None,
    ) -> StoreSummary:
        """Store DICOM files, folders and zips by STOW-RS; see RadpacsClient.store."""
        sources = await asyncio.to_thread(collect, paths)
        groups = list(batches(sources, self.batch_instances, self.batch_bytes))
        gate = asyncio.Semaphore(self.concurrency)

        async def run(group: list[Source]) -> list[InstanceOutcome]:
            async with gate:
                outcomes = await self._store_batch(group, skip_existing)
            if progress:
                progress(outcomes)
            return outcomes

        results = await asyncio.gather(*(run(group) for group in groups))
        return StoreSummary(items=[item for outcomes in results for item in outcomes])

    # ------------------------------------------------------------------ QIDO-RS

    async def iter_search(
        self,
        level: str = "studies",
        filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        **options: Any,
    ) -> AsyncIterator[SearchMatch]:
        """Matches of a QIDO-RS search, fetched page by page as iterated."""
        pager = SearchPager(level, filters, **options)
        while (call := pager.next_call()) is not None:
            for match in pager.accept(await self.request(call)):
                yield match

    async def search(
        self,
        level: str = "studies",
        filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        **options: Any,
    ) -> list[SearchMatch]:
        """Every match of a QIDO-RS search, following the server's paging."""
        return [match async for match in self.iter_search(level, filters, **options)]

    async def find_one(
        self,
        level: str = "studies",
        filters: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        *,
        study: str | None = None,
        series: str | None = None,
        **named: str,
    ) -> SearchMatch | None:
        """The one match of a QIDO-RS search, None when nothing matches; ValueError when
        more than one does (see :meth:`RadpacsClient.find_one`)."""
        pairs = _core.find_one_filters(filters, named)
        found = await self.search(level, pairs, study=study, series=series, limit=2)
        return _core.only_match(level, pairs, found)

    async def find_one_study(self, **filters: str) -> SearchMatch | None:
        """:meth:`find_one` at the study level (the DPAT client's ``find_one_study``)."""
        return await self.find_one("studies", list(filters.items()))

    # ------------------------------------------------------------------ WADO-RS

    async def retrieve(
        self,
        study: str,
        folder: str | Path,
        series: str | None = None,
        *,
        progress: Callable[[Path], None] | None = None,
    ) -> list[Path]:
        """Download a study or series into ``folder/<study>/<series>/<sop>.dcm``, part by
        part; see RadpacsClient.retrieve."""
        target = Path(folder)

        def report(paths: list[Path]) -> None:
            for path in paths:
                if progress:
                    progress(path)

        async def consume(response: httpx.Response) -> list[Path]:
            writer = PartWriter(response, target)
            pending: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                pending.append(chunk)
                size += len(chunk)
                if size >= _WRITE_BYTES:
                    report(await asyncio.to_thread(writer.feed, b"".join(pending)))
                    pending, size = [], 0
            if pending:
                report(await asyncio.to_thread(writer.feed, b"".join(pending)))
            report(await asyncio.to_thread(writer.close))
            return writer.written

        return await self._send(_core.retrieve_call(study, series), consume)

    async def metadata(
        self,
        study: str,
        series: str | None = None,
        sop: str | None = None,
        *,
        phi: bool = True,
    ) -> list[DicomJSON]:
        """WADO-RS metadata of every instance of a study, series or instance; ``phi=False``
        without patient-identifying attributes (PS3.15 Basic Profile, UIDs kept)."""
        response = await self.request(_core.metadata_call(study, series, sop, phi))
        return [DicomJSON(dataset=item) for item in response.json()]

    async def frames(
        self, study: str, series: str, sop: str, numbers: Sequence[int], *, as_stored: bool = False
    ) -> list[bytes]:
        """Frames by 1-based number: native little endian pixels, or the stored bitstreams."""
        response = await self.request(_core.frames_call(study, series, sop, numbers, as_stored))
        return _core.split_multipart(response)

    async def rendered(
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
        return (await self.request(call)).content

    async def thumbnail(
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
        return (await self.request(call)).content

    async def delete(self, study: str, series: str | None = None, sop: str | None = None) -> None:
        """Delete a study, series or instance; RadpacsRequestError (404) if it is not there."""
        await self.request(_core.delete_call(study, series, sop))

    # ------------------------------------------------------------------ AI jobs

    async def ai_models(self) -> AiCatalog:
        """The models the server can run (GET /api/ai/models) and plugins that failed."""
        return AiCatalog.model_validate((await self.request(_core.AI_MODELS)).json())

    async def ai_submit(
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
        return AiJob.model_validate((await self.request(call)).json())

    async def ai_job(self, job_id: str) -> AiJob:
        """One job as it is now (GET /api/ai/jobs/{id}); RadpacsRequestError 404 if unknown."""
        return AiJob.model_validate((await self.request(_core.ai_job_call(job_id))).json())

    async def ai_jobs(
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
        return _core.read_jobs(await self.request(call))

    async def ai_wait(
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
            current = AiJob.model_validate((await self.request(waiting.call)).json())
            pause = waiting.settle(current, time.monotonic())
            if pause is None:
                return current
            await asyncio.sleep(pause)

    async def ai_result(self, job_id: str) -> dict[str, Any]:
        """A finished job's result for viewers (GET /api/ai/jobs/{id}/result): per result,
        labels with measurements and polygons per slice; 404 before the job succeeded."""
        result: dict[str, Any] = (await self.request(_core.ai_result_call(job_id))).json()
        return result

    async def ai_cancel(self, job_id: str) -> AiJob:
        """Cancel a job (POST /api/ai/jobs/{id}/cancel): a queued job ends at once, a
        running one when its worker notices; the job as the server then shows it."""
        return AiJob.model_validate((await self.request(_core.ai_cancel_call(job_id))).json())

    async def ai_batch(
        self, model: str, query: Mapping[str, str] | None = None, *, limit: int = 500
    ) -> AiBatch:
        """A job per series matching a QIDO-RS series query (POST /api/ai/batch), e.g.
        ``{"Modality": "CT", "StudyDate": "20240101-"}``; the jobs and the series skipped."""
        call = _core.ai_batch_call(model, query or {}, limit)
        return AiBatch.model_validate((await self.request(call)).json())

    # ------------------------------------------------------------- DICOM node (DIMSE)

    async def dimse_echo(self, node: str) -> dict[str, Any]:
        """C-ECHO a configured node through the server; RadpacsRequestError 502 if it fails."""
        result: dict[str, Any] = (await self.request(_core.dimse_echo_call(node))).json()
        return result

    async def dimse_query(
        self, node: str, keys: Mapping[str, str], level: str = "STUDY"
    ) -> list[dict[str, Any]]:
        """C-FIND a configured node (study root); the matches as DICOM JSON objects."""
        call = _core.dimse_query_call(node, level, keys)
        found: list[dict[str, Any]] = (await self.request(call)).json()
        return found

    async def dimse_send(self, node: str, study: str, series: str | None = None) -> dict[str, Any]:
        """Queue a C-STORE of a study or series to a node; the job."""
        call = _core.dimse_transfer_call(node, "send", study, series)
        job: dict[str, Any] = (await self.request(call)).json()
        return job

    async def dimse_retrieve(
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
        job: dict[str, Any] = (await self.request(call)).json()
        return job

    async def dimse_job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = (await self.request(_core.dimse_job_call(job_id))).json()
        return job

    # ------------------------------------------------------------------ REST API

    async def followup_patients(
        self, search: str = "", *, offset: int = 0, limit: int = 50
    ) -> dict[str, Any]:
        """Patients with a follow-up (GET /api/followup/patients): ``patients`` and ``total``."""
        call = _core.followup_patients_call(search, offset, limit)
        result: dict[str, Any] = (await self.request(call)).json()
        return result

    async def followup_patient(self, patient_id: str) -> dict[str, Any]:
        """One patient's timepoints, lesions and responses (GET /api/followup/patients/{id})."""
        result: dict[str, Any] = (
            await self.request(_core.followup_patient_call(patient_id))
        ).json()
        return result

    async def followup_export(self, patient_id: str, format: str = "csv") -> str:
        """One row per lesion per timepoint: the CSV text, or the JSON text."""
        return (await self.request(_core.followup_export_call(patient_id, format))).text

    async def followup_correct(self, patient_id: str, kind: str, **fields: str) -> dict[str, Any]:
        """Record a correction (rename, merge, split, reassign, role, exclude)."""
        call = _core.followup_correct_call(patient_id, kind, fields)
        result: dict[str, Any] = (await self.request(call)).json()
        return result

    async def followup_store_sr(self, patient_id: str) -> dict[str, Any]:
        """Store the follow-up as a TID 1500 SR in the patient's latest study."""
        result: dict[str, Any] = (await self.request(_core.followup_sr_call(patient_id))).json()
        return result

    async def login(self, username: str, password: str) -> str:
        """POST /api/auth; the token is kept for the following requests and returned."""
        call = _core.login_call(username, password)
        self.token = _core.read_token(call, await self.request(call))
        return self.token

    async def dvh(self, structures: Path | bytes, dose: Path | bytes, **params: str) -> DVHResult:
        """Dose-volume histograms of an RTSTRUCT's structures over an RTDOSE (POST /api/dvh)."""
        call = await asyncio.to_thread(_core.dvh_call, structures, dose, params)
        return DVHResult.from_answer((await self.request(call)).json())

    async def stored_dvh(
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
        return DVHResult.from_answer((await self.request(call)).json())

    async def set_quality_control(
        self, sop: str, status: QualityControlStatus | str, comment: str = ""
    ) -> QualityControl:
        """Set an instance's quality-control status (passed, failed or pending) and comment."""
        response = await self.request(_core.set_qc_call(sop, status, comment))
        return QualityControl.model_validate(response.json())

    async def quality_control(self, sop: str) -> QualityControl:
        """An instance's quality-control status (``pending`` when never set)."""
        response = await self.request(_core.qc_call(sop))
        return QualityControl.model_validate(response.json())

    async def quality_controls(
        self, status: QualityControlStatus | str | None = None, study: str | None = None
    ) -> list[QualityControl]:
        """The statuses that were set, of one status and/or one study, newest first."""
        response = await self.request(_core.qc_list_call(status, study))
        return [QualityControl.model_validate(item) for item in response.json()]

    async def rt_objects(self, study: str) -> dict[str, Any]:
        """The RT plans, structure sets and doses of a stored study and their references."""
        return dict((await self.request(_core.rt_objects_call(study))).json())

    async def plan_statistics(
        self,
        plan: str,
        metrics: Sequence[str] | None = None,
        prescription: float | None = None,
    ) -> dict[str, Any]:
        """Statistics of every ROI of a stored plan in its dose, in one request."""
        call = _core.plan_statistics_call(plan, metrics, prescription)
        return dict((await self.request(call)).json())

    async def dvh_plot(self, result: DVHResult, media_type: str = "image/png") -> bytes:
        """A plot of DVH curves (POST /api/dvh/plot), as PNG bytes by default."""
        dvhs = [curve.model_dump() for curve in result.dvhs]
        return (await self.request(_core.dvh_plot_call(dvhs, media_type))).content

    async def anonymize(
        self, file: Path | bytes, options: Sequence[str] = (), *, pixels_checked: bool = False
    ) -> bytes:
        """The file de-identified by the server (POST /api/anonymize, PS3.15 Annex E)."""
        call = await asyncio.to_thread(_core.anonymize_call, file, options, pixels_checked)
        return (await self.request(call)).content

    async def status(self) -> ServerStatus:
        """GET /api/health, and the archive's counts from GET /api/counts."""
        health = (await self.request(_core.HEALTH)).json()
        counts = (await self.request(_core.COUNTS)).json()
        return ServerStatus(url=self.url, counts=counts, **health)

    async def register_app(
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
        response = await self.request(_core.app_register_call(name, url, fields))
        return RegisteredApp.model_validate(response.json())

    async def apps(self) -> list[RegisteredApp]:
        """The registered callback apps."""
        response = await self.request(_core.apps_call())
        return [RegisteredApp.model_validate(item) for item in response.json()["apps"]]

    async def update_app(self, name: str, **changes: Any) -> RegisteredApp:
        """Change a registration (admin): url, modalities, body_parts, input, trigger,
        enabled, timeout, stable_seconds."""
        response = await self.request(_core.app_update_call(name, changes))
        return RegisteredApp.model_validate(response.json())

    async def remove_app(self, name: str) -> None:
        """Unregister an app (admin); its analyses stay readable."""
        await self.request(_core.app_remove_call(name))

    async def trigger_app(
        self,
        name: str,
        study: str,
        series: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> AppAnalysis:
        """Start an analysis of a study (or one series) by app ``name``."""
        response = await self.request(_core.app_trigger_call(name, study, series, parameters))
        return AppAnalysis.model_validate(response.json())

    async def app_analysis(self, workitem: str) -> AppAnalysis:
        """One analysis, by its workitem UID."""
        response = await self.request(_core.app_analysis_call(workitem))
        return AppAnalysis.model_validate(response.json())

    async def app_analyses(
        self, app: str | None = None, study: str | None = None, limit: int = 100
    ) -> list[AppAnalysis]:
        """The latest analyses first, of one app and/or one study."""
        response = await self.request(_core.app_analyses_call(app, study, limit))
        return [AppAnalysis.model_validate(item) for item in response.json()["analyses"]]

    async def cancel_app_analysis(self, workitem: str) -> AppAnalysis:
        """Cancel an analysis; the app is told at ``<app url>/cancel``."""
        response = await self.request(_core.app_cancel_call(workitem))
        return AppAnalysis.model_validate(response.json())
