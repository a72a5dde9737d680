"""The one place where domain errors become HTTP responses (JSON ``{"detail": ...}``)."""

from __future__ import annotations

import weakref
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from radpacs.errors import (
    AuthenticationError,
    ConfigurationError,
    Conflict,
    InvalidInput,
    InvalidInstance,
    InvalidQuery,
    NotAcceptable,
    NotFound,
    PermissionDenied,
    RadpacsError,
    RemoteNodeError,
    StorageError,
    TooManyAttempts,
)
from radpacs.http.routes import RouteEntry, route_entries, route_path

__all__ = [
    "ERROR_RESPONSES",
    "STATUS_BY_ERROR",
    "error_response",
    "headers_for",
    "install_error_handlers",
    "status_for",
]

STATUS_BY_ERROR: dict[type[RadpacsError], int] = {
    NotFound: 404,
    InvalidQuery: 400,
    InvalidInput: 400,
    InvalidInstance: 400,
    NotAcceptable: 406,
    StorageError: 503,
    RemoteNodeError: 502,
    ConfigurationError: 500,
    AuthenticationError: 401,
    PermissionDenied: 403,
    Conflict: 409,
    TooManyAttempts: 429,
}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": (
            'Refused, with the reason in words (JSON `{"detail": ...}`; STOW-RS answers '
            "DICOM JSON with a FailedSOPSequence and Warning headers): 400 bad input or query, "
            "401 no or bad credentials (WWW-Authenticate), 403 role not allowed, 404 not found, "
            "405 method not allowed (Allow), 406 representation not available, 409 conflict, "
            "413 body too large, 415 media type not taken, 422 parameter out of range, "
            "429 too many failed logins (Retry-After)."
        )
    },
    "503": {"description": "The index or the file store failed; nothing was half-written."},
}
"""Described on every operation of the OpenAPI document (any route can answer them)."""


def status_for(error: RadpacsError) -> int:
    """The HTTP status for a domain error: the entry of its nearest class, else 500."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def headers_for(error: RadpacsError) -> dict[str, str]:
    """Headers a status needs: WWW-Authenticate on 401 (RFC 6750), Retry-After on 429."""
    if isinstance(error, AuthenticationError):
        return {"WWW-Authenticate": 'Bearer realm="radpacs"'}
    if isinstance(error, TooManyAttempts):
        return {"Retry-After": str(error.retry_after)}
    return {}


def error_response(error: RadpacsError) -> JSONResponse:
    """The JSON answer for a domain error, with the headers its status needs."""
    return JSONResponse(
        {"detail": str(error)}, status_code=status_for(error), headers=headers_for(error)
    )


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RadpacsError)
    return error_response(exc)


_ENTRIES: weakref.WeakKeyDictionary[FastAPI, list[RouteEntry]] = weakref.WeakKeyDictionary()


def allowed_methods(entries: list[RouteEntry], path: str) -> list[str]:
    """Every method some route of the app takes for ``path`` (RFC 9110 15.5.6: the Allow
    header of a 405 lists them all, not only those of the first route that matched)."""
    methods: set[str] = set()
    for entry in entries:
        if not entry.mount and entry.regex.match(path):
            methods |= entry.methods - {"WEBSOCKET"}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    app = request.app
    entries = _ENTRIES.get(app)
    if entries is None:
        entries = _ENTRIES[app] = route_entries(app)
    allowed = allowed_methods(entries, route_path(request.scope))
    return JSONResponse(
        {"detail": f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"},
        status_code=405,
        headers={"Allow": ", ".join(allowed)},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every RadpacsError with its status and message instead of a 500, and every 405
    with an Allow header listing the methods of all routes of the path."""
    app.add_exception_handler(RadpacsError, _handle)
    app.add_exception_handler(StarletteHTTPException, _http_error)
