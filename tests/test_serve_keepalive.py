"""`radpacs serve` keeps an idle connection open for `keep_alive_timeout` seconds (75 by
default), longer than uvicorn's own 5 s, whose early close reset clients under load."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from conftest import LiveServer

REQUEST = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _answer(connection: socket.socket) -> bytes:
    """The bytes of one answer to /api/health (a small body: one read after the headers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def _idle_then_ask(server: LiveServer, idle_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(REQUEST)
        assert _answer(connection).startswith(b"HTTP/1.1 200")
        time.sleep(idle_s)
        try:
            connection.sendall(REQUEST)
            return _answer(connection)
        except ConnectionResetError:
            return b""


def test_a_connection_idle_longer_than_uvicorns_default_still_answers(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "live", extra=["--no-auth"]).start()
    try:
        assert _idle_then_ask(server, 6.0).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


def test_the_setting_reaches_uvicorn(tmp_path: Path) -> None:
    server = LiveServer(
        tmp_path / "live", extra=["--no-auth"], env={"RADPACS_KEEP_ALIVE_TIMEOUT": "1"}
    ).start()
    try:
        assert _idle_then_ask(server, 3.0) == b""  # closed by the server after 1 s
    finally:
        server.stop()
