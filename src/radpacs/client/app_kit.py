"""Write a radpacs callback app in a page: an ASGI app around one ``analyze`` function.

radpacs POSTs an :class:`~radpacs.client.apps.AnalysisRequest` to the app (docs/ai-apps.md).
:func:`create_app` answers it with 202 at once and runs ``analyze(request, inputs)`` in a
worker thread, where :class:`Inputs` fetches the request's series over WADO-RS with the
request's token (as pydicom datasets), posts ``running`` progress and can store DICOM the app
made (a SEG, say) over STOW-RS into the study. The :class:`~radpacs.client.apps.AnalysisResult`
that ``analyze`` returns is posted to ``result_url``; an exception becomes a ``failed`` result
with its message as the reason. ``POST /cancel`` with ``{"workitem_uid": ...}`` (what radpacs
sends when the workitem is cancelled) sets :attr:`Inputs.cancelled`; ``analyze`` may call
:meth:`Inputs.check_cancelled` between steps, and nothing is posted after a cancel.

Routes: ``POST /`` (202, or 400 for a body that is not an AnalysisRequest), ``POST /cancel``
(202), ``GET /health`` (200, the workitems running).

Example (run with ``uvicorn module:app``)::

    from radpacs.client.app_kit import Inputs, create_app
    from radpacs.client.apps import AnalysisRequest, AnalysisResult, ResultStatus

    def analyze(request: AnalysisRequest, inputs: Inputs) -> AnalysisResult:
        images = inputs.instances()
        inputs.progress(50)
        return AnalysisResult(status=ResultStatus.COMPLETED,
                              display_text=f"{len(images)} images looked at")

    app = create_app(analyze, name="counter")

Needs Starlette and uvicorn (installed with radpacs); ``radpacs.client`` itself does not
import this module.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pydicom
from pydantic import ValidationError
from pydicom import Dataset
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from radpacs.client._core import Call, multipart_body
from radpacs.client._sync import RadpacsClient
from radpacs.client.apps import AnalysisRequest, AnalysisResult, ImageRef, ResultStatus
from radpacs.errors import RadpacsError, RadpacsRequestError

__all__ = ["AnalysisCancelled", "Analyze", "Inputs", "create_app", "serve", "server_root"]

log = logging.getLogger("radpacs.client.app_kit")

Analyze = Callable[[AnalysisRequest, "Inputs"], AnalysisResult]
"""The app's work: the request and its inputs in, the final result out."""

_MAX_REQUEST_BYTES = 1024 * 1024


class AnalysisCancelled(RadpacsError):
    """Raised by :meth:`Inputs.check_cancelled` once radpacs has cancelled the workitem."""


def server_root(dicomweb_url: str) -> str:
    """radpacs's root URL from the request's DICOMweb root (``.../dicom-web`` dropped)."""
    root = dicomweb_url.rstrip("/")
    return root.removesuffix("/dicom-web")


class Inputs:
    """The inputs of one analysis and the ways to answer radpacs, for ``analyze``.

    Every call uses the request's token, which reads only the request's study and writes
    only results into it.
    """

    def __init__(
        self, request: AnalysisRequest, client: RadpacsClient, cancelled: threading.Event
    ) -> None:
        self.request = request
        self.client = client
        self._cancelled = cancelled
        self._cache: dict[str | None, list[Dataset]] = {}

    @property
    def cancelled(self) -> bool:
        """Whether radpacs has cancelled this analysis (POST /cancel)."""
        return self._cancelled.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`AnalysisCancelled` if the analysis was cancelled."""
        if self.cancelled:
            raise AnalysisCancelled(f"workitem {self.request.workitem_uid} was cancelled")

    def series(self, series_uid: str | None = None) -> list[Dataset]:
        """The instances of one series of the study (``None``: the whole study), fetched
        once over WADO-RS (PS3.18 10.4) and kept, pixel data included."""
        if series_uid not in self._cache:
            self.check_cancelled()
            with tempfile.TemporaryDirectory(prefix="radpacs-app-") as folder:
                paths = self.client.retrieve(self.request.study_uid, folder, series_uid)
                self._cache[series_uid] = [pydicom.dcmread(path) for path in sorted(paths)]
        return self._cache[series_uid]

    def instances(self) -> list[Dataset]:
        """The request's input: the instances of its series, or of the whole study when the
        request names no series; each series sorted by InstanceNumber."""
        chosen: Sequence[str | None] = self.request.series_uids or [None]
        found: list[Dataset] = []
        for uid in chosen:
            found += sorted(self.series(uid), key=lambda ds: int(ds.get("InstanceNumber", 0)))
        return found

    @staticmethod
    def image(dataset: Dataset, frame: int = 1) -> ImageRef:
        """The :class:`ImageRef` of one frame of ``dataset``, for regions and verdicts."""
        return ImageRef(sop_instance_uid=str(dataset.SOPInstanceUID), frame=frame)

    def post(self, result: AnalysisResult) -> dict[str, Any]:
        """POST ``result`` to the request's ``result_url``; radpacs's answer."""
        call = Call("POST", self.request.result_url, json=result.model_dump(mode="json"))
        answer: dict[str, Any] = self.client.request(call).json()
        return answer

    def progress(self, percent: float, text: str | None = None) -> None:
        """Tell radpacs the analysis runs, ``percent`` done (the workitem's progress)."""
        self.check_cancelled()
        self.post(
            AnalysisResult(
                status=ResultStatus.RUNNING,
                progress=min(max(percent, 0.0), 100.0),
                display_text=text,
            )
        )

    def store(self, datasets: Sequence[Dataset]) -> dict[str, Any]:
        """Store DICOM the app made (SEG, SR, RTSTRUCT) into the study over STOW-RS
        (PS3.18 10.5); the STOW answer (DICOM JSON). Raises RadpacsRequestError when radpacs
        refuses an instance (409) or the request."""
        self.check_cancelled()
        payloads = []
        for ds in datasets:
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            payloads.append(buffer.getvalue())
        body, content_type = multipart_body(payloads)
        call = Call(
            "POST",
            self.request.stow_url,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
            content=body,
        )
        answer: dict[str, Any] = self.client.request(call).json()
        return answer


def _client_for(request: AnalysisRequest) -> RadpacsClient:
    return RadpacsClient(server_root(request.dicomweb_url), request.token)


class _Runner:
    """Runs analyses in a thread pool, one per workitem UID at a time."""

    def __init__(
        self,
        analyze: Analyze,
        workers: int,
        client_for: Callable[[AnalysisRequest], RadpacsClient],
    ) -> None:
        self.analyze = analyze
        self.client_for = client_for
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="app-analyze")
        self.running: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def submit(self, request: AnalysisRequest) -> bool:
        """Start ``request``; False when its workitem already runs (a repeated delivery)."""
        with self.lock:
            if request.workitem_uid in self.running:
                return False
            self.running[request.workitem_uid] = threading.Event()
            cancelled = self.running[request.workitem_uid]
        self.pool.submit(self._run, request, cancelled)
        return True

    def cancel(self, workitem_uid: str) -> bool:
        with self.lock:
            event = self.running.get(workitem_uid)
        if event is not None:
            event.set()
        return event is not None

    def _result(self, request: AnalysisRequest, inputs: Inputs) -> AnalysisResult | None:
        try:
            result = self.analyze(request, inputs)
        except AnalysisCancelled:
            return None
        except Exception as exc:  # the app's bug or bad input: radpacs hears why
            log.exception("analysis of workitem %s failed", request.workitem_uid)
            reason = f"{type(exc).__name__}: {exc}"[:1024]
            return AnalysisResult(status=ResultStatus.FAILED, reason=reason)
        if not isinstance(result, AnalysisResult) or result.status is ResultStatus.RUNNING:
            reason = f"analyze returned {type(result).__name__}, not a final AnalysisResult"
            return AnalysisResult(status=ResultStatus.FAILED, reason=reason)
        return result

    def _run(self, request: AnalysisRequest, cancelled: threading.Event) -> None:
        uid = request.workitem_uid
        try:
            with self.client_for(request) as client:
                inputs = Inputs(request, client, cancelled)
                try:
                    inputs.progress(0)
                except AnalysisCancelled:
                    return
                except RadpacsRequestError as exc:
                    log.warning("workitem %s: progress refused: %s", uid, exc)
                result = self._result(request, inputs)
                if result is None or cancelled.is_set():
                    log.info("workitem %s cancelled: no result posted", uid)
                    return
                inputs.post(result)
                log.info("workitem %s: %s result posted", uid, result.status.value)
        except Exception:
            log.exception("workitem %s: the result could not be posted", uid)
        finally:
            with self.lock:
                self.running.pop(uid, None)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > _MAX_REQUEST_BYTES:
        raise ValueError(f"the body is larger than {_MAX_REQUEST_BYTES} bytes")
    return json.loads(raw)


def create_app(
    analyze: Analyze,
    *,
    name: str = "radpacs-app",
    workers: int = 2,
    client_for: Callable[[AnalysisRequest], RadpacsClient] = _client_for,
) -> Starlette:
    """The ASGI app that runs ``analyze`` for each analysis request radpacs sends.

    ``workers`` analyses run at once (more wait in the pool's queue); ``client_for`` makes
    the :class:`RadpacsClient` of a request (default: the request's server and token).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    runner = _Runner(analyze, workers, client_for)

    async def receive(request: Request) -> JSONResponse:
        try:
            body = AnalysisRequest.model_validate(await _json_body(request))
        except ValidationError as exc:
            words = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)[:20]
            )
            return JSONResponse({"detail": f"not an AnalysisRequest: {words}"}, status_code=400)
        except ValueError as exc:
            return JSONResponse({"detail": f"the body is not JSON: {exc}"}, status_code=400)
        started = runner.submit(body)
        return JSONResponse(
            {"workitem_uid": body.workitem_uid, "accepted": True, "already_running": not started},
            status_code=202,
        )

    async def cancel(request: Request) -> JSONResponse:
        try:
            body = await _json_body(request)
            uid = body["workitem_uid"] if isinstance(body, dict) else None
        except (ValueError, KeyError):
            uid = None
        if not isinstance(uid, str) or not uid:
            return JSONResponse({"detail": 'expected {"workitem_uid": "..."}'}, status_code=400)
        return JSONResponse(
            {"workitem_uid": uid, "was_running": runner.cancel(uid)}, status_code=202
        )

    async def health(request: Request) -> JSONResponse:
        with runner.lock:
            running = sorted(runner.running)
        return JSONResponse({"app": name, "running": running})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        runner.pool.shutdown(wait=False, cancel_futures=True)

    app = Starlette(
        routes=[
            Route("/", receive, methods=["POST"]),
            Route("/cancel", cancel, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.runner = runner
    return app


def serve(
    analyze: Analyze, *, name: str = "radpacs-app", host: str = "127.0.0.1", port: int = 9000
) -> None:
    """Run :func:`create_app` under uvicorn until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(analyze, name=name), host=host, port=port)
