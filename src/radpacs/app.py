"""create_app(settings) -> FastAPI: DICOMweb under /dicom-web, REST under /api, docs at /docs.

The services (:class:`radpacs.services.Services`: the archive, which migrates its index,
and what lives on it) open when the application starts and close when it stops; GET
/api/health answers once that is done.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from radpacs import __version__
from radpacs.api import (
    accounts,
    ai,
    apps,
    counts,
    deid,
    dimse,
    followup,
    health,
    qc,
    rt,
    session,
    upload,
    worklist,
    workshop,
)
from radpacs.api.deid_study import router as deid_study_router
from radpacs.archive.workitems import WorkitemStore
from radpacs.dicomweb import router as dicomweb_router
from radpacs.dimse.service import open_dimse
from radpacs.http.access import AccessControl
from radpacs.http.audit import note_stored
from radpacs.http.deps import event_channels
from radpacs.http.errors import ERROR_RESPONSES, install_error_handlers
from radpacs.services import Services
from radpacs.settings import Settings, load_settings
from radpacs.web import followup_pages, pages, rt_page, viewer

__all__ = ["create_app", "open_access_warnings"]

log = logging.getLogger(__name__)

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


def open_access_warnings(settings: Settings) -> list[str]:
    """What these settings open to callers without a password or token, one line each."""
    if not settings.auth_enabled:
        return ["auth is off: every request acts as the local administrator"]
    warnings = []
    if settings.open_enrolment:
        warnings.append(
            "open enrolment: anyone can create a password-less reader account "
            "(POST /api/account idul=NAME) and read every stored study"
        )
    if settings.workshop:
        warnings.append(
            "workshop preset: POST /api/anonymize, /api/dvh and /api/dvh/plot answer "
            "without a token (they read no stored data)"
        )
    return warnings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; its services open when the app starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for warning in open_access_warnings(settings):
            log.warning("%s", warning)
        with Services.open(settings) as services:
            services.archive.add_listener(note_stored)  # the request's audit hears stores
            # One process listens for DICOM: this one, or the parent of several (cli.serve);
            # it shares this archive, so its arrivals reach the same listeners as STOW-RS.
            node = (
                open_dimse(settings, services.archive, services.auth.audit)
                if settings.resolved_workers == 1
                else None
            )
            app.state.services = services
            channels = event_channels(app)
            # relay the job mirror's events; with Redis, hear the other processes' events
            channels.start(WorkitemStore(services.archive.engine))
            try:
                yield
            finally:
                channels.stop()
                app.state.ups_channels = None
                app.state.services = None
                if node is not None:
                    node.stop()

    app = FastAPI(
        title="radpacs",
        version=__version__,
        lifespan=lifespan,
        description="DICOMweb archive (QIDO-RS, WADO-RS, STOW-RS) with REST APIs under /api.",
        responses=ERROR_RESPONSES,
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
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=_EXPOSED_HEADERS,
            allow_credentials="*" not in settings.cors_origins,
        )
    app.include_router(health.router)
    if settings.dicomweb_enabled:
        app.include_router(dicomweb_router)
    app.include_router(accounts.router)  # login and accounts: DICOMweb needs tokens too
    app.include_router(session.router)
    if settings.api_enabled:
        app.include_router(deid.router)
        app.include_router(deid_study_router)
        app.include_router(workshop.router)
        app.include_router(counts.router)
        app.include_router(upload.router)
    app.include_router(viewer.router)
    app.include_router(pages.router)
    app.include_router(rt_page.router)
    app.include_router(followup_pages.router)
    app.mount("/static", pages.static_files(), name="static")
    if settings.api_enabled:
        app.include_router(ai.router)
        app.include_router(apps.router)
        app.include_router(rt.router)
        app.include_router(dimse.router)
        app.include_router(worklist.router)
        app.include_router(followup.router)
        app.include_router(qc.router)
    return app
