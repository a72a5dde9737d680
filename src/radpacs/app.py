"""create_app(settings) -> FastAPI: DICOMweb under /dicom-web, REST under /api, docs at /docs."""

from __future__ import annotations

from fastapi import FastAPI

from radpacs import __version__
from radpacs.api import health, rt
from radpacs.api.errors import install_error_handlers
from radpacs.settings import Settings, load_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the archive opens when the app starts."""
    settings = settings or load_settings()
    app = FastAPI(title="radpacs", version=__version__)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(rt.router)
    return app
