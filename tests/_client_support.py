"""Servers for the client tests: scripted HTTP servers for retries, and radpacs with stand-ins.

STAND-INS: POST /api/dvh and /api/dvh/plot are being built by the DVH developer. Until they
are merged, :func:`standin_routes` adds small routes that follow the agreed contract (files
``file_struct`` and ``file_dose`` -> ``{"dvhs": [...]}``; ``{"dvhs": [...]}`` -> PNG) so the
client's side of those calls is tested over real HTTP. They compute nothing real: the DVH
stand-in lists the structure set's ROI names with the dose grid's maximum. Login uses the
real POST /api/auth with a real account.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import httpx
import pydicom
import uvicorn
from fastapi import APIRouter, FastAPI, File, HTTPException, UploadFile
from fastapi.responses import Response
from PIL import Image
from pydantic import BaseModel

from conftest import free_port
from radpacs.app import create_app
from radpacs.settings import load_settings

STANDIN_USER = ("alice", "wonderland")  # a real account, created in the stand-in server's index


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 (in a thread) that answers ``failures`` requests with
    ``status`` (or drops the connection when status is 0), then 200 with a JSON body; with
    ``failures=None`` it never succeeds. ``hits`` counts requests, ``times`` their arrival."""

    def __init__(
        self, failures: int | None, status: int = 503, headers: dict[str, str] | None = None
    ) -> None:
        self.failures = failures
        self.status = status
        self.headers = headers or {}
        self.hits = 0
        self.times: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.hits += 1
                owner.times.append(time.monotonic())
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                if owner.failures is None or owner.hits <= owner.failures:
                    if owner.status == 0:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.send_response(owner.status)
                    for name, value in owner.headers.items():
                        self.send_header(name, value)
                    body = b'{"detail": "scripted failure"}'
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                body = b'{"status": "ok", "version": "scripted"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Login(BaseModel):
    username: str
    password: str


class _Curves(BaseModel):
    dvhs: list[dict[str, Any]]


def standin_routes() -> APIRouter:
    """STAND-IN routes for /api/auth and /api/dvh (see the module docstring)."""
    router = APIRouter(prefix="/api", tags=["stand-in"])

    @router.post("/dvh")
    def standin_dvh(
        file_struct: Annotated[UploadFile, File()], file_dose: Annotated[UploadFile, File()]
    ) -> dict[str, Any]:
        structures = pydicom.dcmread(io.BytesIO(file_struct.file.read()))
        dose = pydicom.dcmread(io.BytesIO(file_dose.file.read()))
        if structures.Modality != "RTSTRUCT" or dose.Modality != "RTDOSE":
            raise HTTPException(400, "file_struct must be an RTSTRUCT and file_dose an RTDOSE")
        peak = float(dose.pixel_array.max() * float(dose.DoseGridScaling))
        return {
            "dvhs": [
                {
                    "name": str(roi.ROIName),
                    "roi_number": int(roi.ROINumber),
                    "stats": {"max_gy": peak},
                    "dose_gy": [0.0, peak],
                    "volume_pct": [100.0, 0.0],
                }
                for roi in structures.StructureSetROISequence
            ]
        }

    @router.post("/dvh/plot")
    def standin_dvh_plot(body: _Curves) -> Response:
        if not body.dvhs:
            raise HTTPException(400, "no curves")
        buffer = io.BytesIO()
        Image.new("RGB", (8 * len(body.dvhs), 8), "white").save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    return router


@contextmanager
def radpacs_with_standins(data_dir: Path) -> Iterator[str]:
    """radpacs (create_app, SQLite) plus the stand-in routes, served by uvicorn in a thread.

    The account ``STANDIN_USER`` exists (uploader), so that the real POST /api/auth answers.
    """
    from radpacs.archive import Archive
    from radpacs.archive.accounts import AccountStore
    from radpacs.auth.passwords import hash_password

    settings = load_settings(data_dir=data_dir)
    archive = Archive.from_settings(settings)
    AccountStore(archive.engine).add(STANDIN_USER[0], "uploader", hash_password(STANDIN_USER[1]))
    archive.close()
    app: FastAPI = create_app(settings)
    app.include_router(standin_routes())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stand-in server did not start")
        time.sleep(0.05)
    assert httpx.get(f"{url}/api/health").status_code == 200
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until(predicate: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
