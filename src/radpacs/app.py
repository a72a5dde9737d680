"""create_app(settings) -> FastAPI: DICOMweb under /dicom-web, REST under /api, docs at /docs.

The services (:class:`radpacs.services.Services`: the archive, which migrates its index,
and what lives on it) open when the application starts and close when it stops; GET
/api/health answers once that is done.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from radpacs import __version__
from radpacs.api import (
    accounts,
    ai,
    counts,
    deid,
    followup,
    health,
    rt,
    session,
    upload,
    workshop,
)
from radpacs.api.deid_study import router as deid_study_router
from radpacs.dicomweb import router as dicomweb_router
from radpacs.http.access import AccessControl
from radpacs.http.audit import note_stored
from radpacs.http.errors import install_error_handlers
from radpacs.services import Services
from radpacs.settings import Settings, load_settings
from radpacs.web import followup_pages, pages, viewer

__all__ = ["create_app"]

_EXPOSED_HEADERS = ["ETag", "Warning", "Content-Range", "Content-Length", "Content-Location"]


def _client_filter(
    settings: Settings,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    networks = [
        ipaddress.ip_network(entry, strict=False)
        for entry in settings.allowed_hosts
        if entry != "*"
    ]

    async def only_allowed_clients(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not any(address in network for network in networks):
            return JSONResponse(
                {"detail": f"client address {host} is not allowed"}, status_code=403
            )
        return await call_next(request)

    return only_allowed_clients


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; its services open when the app starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with Services.open(settings) as services:
            services.archive.add_listener(note_stored)  # the request's audit hears stores
            app.state.services = services
            try:
                yield
            finally:
                app.state.services = None

    app = FastAPI(
        title="radpacs",
        version=__version__,
        lifespan=lifespan,
        description="DICOMweb archive (QIDO-RS, WADO-RS, STOW-RS) with REST APIs under /api.",
    )
    app.state.settings = settings
    app.state.services = None  # until the lifespan opens them
    install_error_handlers(app)
    app.add_middleware(AccessControl)  # innermost: sees the route; CORS preflights skip it
    if "*" not in settings.allowed_hosts:
        app.middleware("http")(_client_filter(settings))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=_EXPOSED_HEADERS,
            allow_credentials="*" not in settings.cors_origins,
        )
    app.include_router(health.router)
    app.include_router(dicomweb_router)
    app.include_router(deid.router)
    app.include_router(deid_study_router)
    app.include_router(accounts.router)
    app.include_router(session.router)
    app.include_router(workshop.router)
    app.include_router(counts.router)
    app.include_router(upload.router)
    app.include_router(viewer.router)
    app.include_router(pages.router)
    app.include_router(followup_pages.router)
    app.mount("/static", pages.static_files(), name="static")
    app.include_router(ai.router)
    app.include_router(rt.router)
    app.include_router(followup.router)
    return app
