"""The one place where domain errors become HTTP responses (JSON ``{"detail": ...}``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from radpacs.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidInstance,
    InvalidQuery,
    NotAcceptable,
    NotFound,
    RadpacsError,
    StorageError,
)

__all__ = ["STATUS_BY_ERROR", "install_error_handlers"]

STATUS_BY_ERROR: dict[type[RadpacsError], int] = {
    NotFound: 404,
    InvalidQuery: 400,
    InvalidInput: 400,
    InvalidInstance: 400,
    NotAcceptable: 406,
    StorageError: 503,
    ConfigurationError: 500,
}


def status_for(error: RadpacsError) -> int:
    """The HTTP status for a domain error: the entry of its nearest class, else 500."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RadpacsError)
    return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Answer every RadpacsError with its status and message instead of a 500."""
    app.add_exception_handler(RadpacsError, _handle)
