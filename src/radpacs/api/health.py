"""GET /api and GET /api/health: a greeting and a readiness probe that need no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from radpacs import __version__

router = APIRouter(prefix="/api", tags=["health"])


@router.get("")
def greeting() -> dict[str, Any]:
    """A JSON greeting naming the server and its version."""
    return {"name": "radpacs", "version": __version__, "message": "Welcome to the radpacs API"}


@router.get("/health")
def health() -> dict[str, str]:
    """200 once the server has opened its index and storage."""
    return {"status": "ok", "version": __version__}
