"""Reading a request's token: ``Authorization: Bearer`` (RFC 6750 2.1), else the ``token``
query parameter (RFC 6750 2.3), else the browser session cookie :data:`SESSION_COOKIE`.

Works on the raw header pairs and query string of an ASGI scope, so that this package needs
no web framework. Example::

    request_token([(b"authorization", b"Bearer abc")], b"")  # "abc"
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

__all__ = ["SESSION_COOKIE", "cookie_value", "request_token"]

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
