"""Helpers for the callback-app tests: the example app as a real process, a CT with blobs,
and a result sink that records what an app posts (where no radpacs result endpoint is used)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydicom import Dataset

from _ai_support import ball, make_series
from conftest import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHAPE = (4, 48, 48)  # slices, rows, columns
BLOB_SLICES = (1, 2)  # the slices that hold the bright ball (k)


def blob_series(study_uid: str | None = None) -> list[Dataset]:
    """A 4-slice CT (1 mm pixels, 5 mm slices): 40 HU, and a 500 HU ball of 7 mm radius
    centred at row 24, column 20, crossing slices 1 and 2 only (discs of 6.5 mm radius);
    sorted by position."""
    array = np.full(SHAPE, 40, dtype=np.int16)
    mask = ball(SHAPE, (1.5, 24, 20), 7.0, (1.0, 1.0, 5.0))
    array[mask] = 500
    datasets = make_series(array, spacing=(1.0, 1.0, 5.0), study_uid=study_uid, shuffle=False)
    for ds in datasets:
        ds.PatientName, ds.PatientID = "App^Test", "APP-1"
        ds.WindowCenter, ds.WindowWidth = 300, 1200  # the ball light grey, the body darker
    return datasets


class ExampleApp:
    """``python -m threshold_app`` in a subprocess, as its README starts it."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log = log_dir / f"threshold-app-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ExampleApp:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLES)]),
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "threshold_app", "--port", str(self.port)],
                cwd=EXAMPLES,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the example app exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the example app did not start in 60 s")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process)


class ResultSink:
    """An HTTP server that records every POSTed JSON body (path, body, Authorization) and
    answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any, str | None]] = []
        self.changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with sink.changed:
                    sink.posts.append((self.path, body, self.headers.get("Authorization")))
                    sink.changed.notify_all()
                answer = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, status: str, timeout: float = 120) -> Any:
        """The first posted body with ``status``, waiting for it."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for _, body, _ in self.posts:
                    if body.get("status") == status:
                        return body
                left = deadline - time.monotonic()
                assert left > 0, f"no {status} result posted: {self.posts}"
                self.changed.wait(left)

    def __enter__(self) -> ResultSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
