"""create_app(settings) -> FastAPI: DICOMweb under /dicom-web, REST under /api, docs at /docs.

The archive opens (and migrates its index) when the application starts and closes when it
stops; GET /api/health answers once that is done.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from radpacs import __version__
from radpacs.ai.startup import start_ai
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
from radpacs.archive import Archive
from radpacs.archive.pseudonyms import DatabasePseudonymStore
from radpacs.deid.jobs import DeidJobs
from radpacs.dicomweb import router as dicomweb_router
from radpacs.dicomweb.cache import BodyCache
from radpacs.followup.feed import FollowupService
from radpacs.http.access import AccessControl
from radpacs.http.audit import note_stored
from radpacs.http.errors import install_error_handlers
from radpacs.services import open_auth
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
    """Build the application; the archive opens when the app starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        archive = Archive.from_settings(settings)
        app.state.archive = archive
        app.state.pseudonym_store = DatabasePseudonymStore(archive.engine)
        app.state.auth = open_auth(settings, archive)
        archive.add_listener(note_stored)
        app.state.ai, watcher = start_ai(settings, archive)
        app.state.followup = FollowupService.from_settings(settings, archive).attach()
        try:
            yield
        finally:
            watcher.stop()
            app.state.ai.close()
            app.state.auth.close()
            archive.close()

    app = FastAPI(
        title="radpacs",
        version=__version__,
        lifespan=lifespan,
        description="DICOMweb archive (QIDO-RS, WADO-RS, STOW-RS) with REST APIs under /api.",
    )
    app.state.settings = settings
    app.state.metadata_cache = BodyCache(settings.metadata_cache_entries)
    app.state.deid_jobs = DeidJobs()
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
