"""The one place where domain errors become HTTP responses (JSON ``{"detail": ...}``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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
    StorageError,
    TooManyAttempts,
)

__all__ = [
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
    ConfigurationError: 500,
    AuthenticationError: 401,
    PermissionDenied: 403,
    Conflict: 409,
    TooManyAttempts: 429,
}


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


def install_error_handlers(app: FastAPI) -> None:
    """Answer every RadpacsError with its status and message instead of a 500."""
    app.add_exception_handler(RadpacsError, _handle)
