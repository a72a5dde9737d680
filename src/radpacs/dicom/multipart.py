"""multipart/related bodies (RFC 2387, PS3.18 8.6.1.2): an incremental parser and part framing.

:class:`MultipartParser` takes the body in chunks of any size and keeps each part in a spooled
temporary file. The parts it holds keep at most ``memory_limit`` bytes in memory together
(64 MiB unless told): past that, the part being written goes to a file on disk, so a large
upload never sits whole in memory however many parts it has. A part's headers may not exceed
16 KiB. A body that ends before its closing delimiter raises :class:`MultipartError`: such an
upload was cut short and nothing of it should be trusted.

Example::

    parser = MultipartParser(b"b1")
    parser.feed(b'--b1\\r\\nContent-Type: application/dicom\\r\\n\\r\\nDICM...\\r\\n--b1--')
    [part] = parser.close()
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO

from radpacs.errors import RadpacsError

__all__ = ["MultipartError", "MultipartParser", "Part", "closing_delimiter", "part_head"]

_SPOOL_BYTES = 16 * 1024 * 1024
_MEMORY_LIMIT = 64 * 1024 * 1024
_MAX_HEADER_BYTES = 16 * 1024


class MultipartError(RadpacsError):
    """The body is not a well-formed multipart message (no boundary, cut short, bad headers)."""


@dataclass
class Part:
    """One body part: its headers (lower-case names) and its content in a spooled file."""

    headers: dict[str, str]
    file: IO[bytes] = field(
        default_factory=lambda: tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    )
    size: int = 0
    in_memory: bool = True

    @property
    def content_type(self) -> str:
        """The part's Content-Type, or '' when it has none."""
        return self.headers.get("content-type", "")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.file.write(data)
        self.size += len(data)

    def to_disk(self) -> None:
        """Move the content written so far to a file on disk (no-op if it is there)."""
        rollover = getattr(self.file, "rollover", None)
        if rollover is not None:
            rollover()
        self.in_memory = False

    def read(self) -> bytes:
        """The whole content."""
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


class MultipartParser:
    """Split a multipart body into :class:`Part` objects as its bytes arrive."""

    _PREAMBLE, _AFTER_BOUNDARY, _HEADERS, _BODY, _END = range(5)

    def __init__(self, boundary: bytes, memory_limit: int = _MEMORY_LIMIT) -> None:
        if not boundary or len(boundary) > 200:
            raise MultipartError("the multipart boundary is empty or longer than 200 characters")
        self._memory_limit = memory_limit
        self._in_memory = 0  # bytes of the parts held here that are still in memory
        self._dash_boundary = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray()
        self._state = self._PREAMBLE
        self._parts: list[Part] = []
        self._current: Part | None = None

    def feed(self, data: bytes) -> None:
        """Consume the next chunk of the body."""
        self._buffer += data
        progressing = True
        while progressing:
            progressing = self._step()

    def close(self) -> list[Part]:
        """The parts; MultipartError if the closing delimiter never came."""
        if self._state != self._END:
            for part in self._parts:
                part.close()
            if self._state == self._PREAMBLE:
                raise MultipartError("no part starts with the boundary given in Content-Type")
            raise MultipartError("the body ended before the closing boundary: upload cut short")
        return self._parts

    def take_completed(self) -> list[Part]:
        """Hand over the parts whose closing delimiter has arrived; close() no longer returns them.

        Lets a reader write each part out as soon as it is complete, so a long body never
        accumulates its parts (the radpacs client retrieves studies this way).
        """
        done = [part for part in self._parts if part is not self._current]
        self._parts = [self._current] if self._current is not None else []
        self._in_memory -= sum(part.size for part in done if part.in_memory)
        return done

    def _write(self, part: Part, data: memoryview) -> None:
        """Append to ``part``; to disk once the parts held would pass the memory limit."""
        if part.in_memory and (
            self._in_memory + len(data) > self._memory_limit or part.size + len(data) > _SPOOL_BYTES
        ):
            part.to_disk()
            self._in_memory -= part.size
        part.write(data)
        if part.in_memory:
            self._in_memory += len(data)

    def _step(self) -> bool:
        buffer = self._buffer
        if self._state == self._PREAMBLE:
            if buffer.startswith(self._dash_boundary):
                del buffer[: len(self._dash_boundary)]
                self._state = self._AFTER_BOUNDARY
                return True
            at = buffer.find(self._delimiter)
            if at < 0:
                keep = len(self._delimiter)
                if len(buffer) > keep:
                    del buffer[:-keep]
                return False
            del buffer[: at + len(self._delimiter)]
            self._state = self._AFTER_BOUNDARY
            return True
        if self._state == self._AFTER_BOUNDARY:
            if len(buffer) < 2:
                return False
            if buffer.startswith(b"--"):
                self._state = self._END
                buffer.clear()
                return False
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > 1024:
                    raise MultipartError("garbage after a boundary delimiter")
                return False
            if buffer[:end].strip(b" \t\r"):
                raise MultipartError("garbage after a boundary delimiter")
            del buffer[: end + 1]
            self._state = self._HEADERS
            return True
        if self._state == self._HEADERS:
            return self._read_headers()
        if self._state == self._BODY:
            return self._read_body()
        buffer.clear()  # epilogue
        return False

    def _read_headers(self) -> bool:
        buffer = self._buffer
        if buffer.startswith(b"\r\n") or buffer.startswith(b"\n"):
            header_block, skip = b"", 2 if buffer.startswith(b"\r\n") else 1
        else:
            end = buffer.find(b"\r\n\r\n")
            skip = 4
            if end < 0:
                end, skip = buffer.find(b"\n\n"), 2
            if end < 0:
                if len(buffer) > _MAX_HEADER_BYTES:
                    raise MultipartError("part headers longer than 16 KiB")
                return False
            if end > _MAX_HEADER_BYTES:
                raise MultipartError("part headers longer than 16 KiB")
            header_block = bytes(buffer[:end])
            skip += end
        headers: dict[str, str] = {}
        for line in header_block.decode("latin-1").splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise MultipartError(f"malformed part header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        del buffer[:skip]
        self._current = Part(headers)
        self._parts.append(self._current)
        self._state = self._BODY
        return True

    def _read_body(self) -> bool:
        buffer = self._buffer
        part = self._current
        assert part is not None
        at = buffer.find(self._delimiter)
        if at < 0:
            keep = len(self._delimiter) - 1
            if len(buffer) > keep:
                self._write(part, memoryview(buffer)[:-keep])
                del buffer[:-keep]
            return False
        self._write(part, memoryview(buffer)[:at])
        del buffer[: at + len(self._delimiter)]
        self._current = None
        self._state = self._AFTER_BOUNDARY
        return True


def part_head(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    """The delimiter and headers that open one part of a response body."""
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def closing_delimiter(boundary: str) -> bytes:
    """The line that ends a multipart body."""
    return f"--{boundary}--\r\n".encode()
