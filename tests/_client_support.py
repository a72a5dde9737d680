"""Servers for the client tests: scripted HTTP servers for retries, and radpacs with an account."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from conftest import free_port
from radpacs.app import create_app
from radpacs.settings import load_settings

USER = ("alice", "wonderland")  # a real account, created in the test server's index


def isolate_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the client's config folder into ``tmp_path`` and drop the server, token and
    password the environment may carry; the folder (what ``user_config`` fixtures return)."""
    folder = tmp_path / "config"
    monkeypatch.setenv("RADPACS_CONFIG_DIR", str(folder))
    for name in ("RADPACS_URL", "RADPACS_TOKEN", "RADPACS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return folder


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


@contextmanager
def radpacs_with_account(data_dir: Path) -> Iterator[str]:
    """radpacs (create_app, SQLite) served by uvicorn in a thread, with the account ``USER``
    (uploader) created, so that the real POST /api/auth answers."""
    from radpacs.archive import Archive
    from radpacs.archive.accounts import AccountStore
    from radpacs.auth.passwords import hash_password

    settings = load_settings(data_dir=data_dir)
    archive = Archive.from_settings(settings)
    AccountStore(archive.engine).add(USER[0], "uploader", hash_password(USER[1]))
    archive.close()
    app: FastAPI = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
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
