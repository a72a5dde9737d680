"""Reading a request's token: ``Authorization: Bearer`` (RFC 6750 2.1), else the ``token``
query parameter (RFC 6750 2.3), else the browser session cookie :data:`SESSION_COOKIE`.

Works on the raw header pairs and query string of an ASGI scope, so that this package needs
no web framework. Example::

    request_token([(b"authorization", b"Bearer abc")], b"")  # "abc"
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote_plus

__all__ = [
    "SESSION_COOKIE",
    "cookie_value",
    "query_without_token",
    "redact_tokens",
    "request_token",
]

REDACTED = "[redacted]"
_QUERY_PAIR = re.compile(r"(?<=[?&])([^=&\s\"#]+)=([^&\s\"#]*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")

SESSION_COOKIE = "radpacs_session"


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (the last one wins, as browsers
    send the most specific path first and Starlette's parser keeps the last); surrounding
    double quotes are removed."""
    found = None
    for chunk in header.split(";"):
        key, sep, value = chunk.partition("=")
        if not sep:
            key, value = "", key
        if key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found = value
    return found


def request_token(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> str | None:
    """The token a request carries, or None: Bearer header, ``?token=``, session cookie."""
    pairs = list(headers)
    for name, value in pairs:
        if name == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    for key, text in parse_qsl(bytes(query_string).decode("latin-1")):
        if key == "token" and text:
            return text
    for name, value in pairs:
        if name == b"cookie":
            cookie = cookie_value(bytes(value).decode("latin-1"), SESSION_COOKIE)
            if cookie:
                return cookie
    return None


def _is_token_name(name: str) -> bool:
    """Whether a query parameter name is ``token`` once decoded, as :func:`request_token`
    reads it (``%74oken`` included)."""
    return unquote_plus(name) == "token"


def query_without_token(query: str) -> str:
    """A query string without its ``token`` parameters, however their names are encoded."""
    kept = []
    for part in query.split("&"):
        name = part.partition("=")[0]
        if part and not _is_token_name(name):
            kept.append(part)
    return "&".join(kept)


def redact_tokens(text: str) -> str:
    """``text`` (a log line, a URL) with the value of every ``token`` query parameter, every
    ``Bearer`` credential and every JWT-shaped string replaced by ``[redacted]``."""
    if "=" in text:
        text = _QUERY_PAIR.sub(
            lambda m: f"{m.group(1)}={REDACTED}" if _is_token_name(m.group(1)) else m.group(0),
            text,
        )
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return text
