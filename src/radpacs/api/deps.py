"""FastAPI dependencies shared by every router: the archive, the settings, the public root.

Dependencies that only read application state are ``async def``: FastAPI runs a plain ``def``
dependency in its thread pool, and that hop cost more than the endpoint's own work on a
STOW request.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from radpacs.archive import Archive
from radpacs.settings import Settings

__all__ = ["ArchiveDep", "SettingsDep", "dicomweb_root", "get_archive", "get_settings"]


async def get_archive(request: Request) -> Archive:
    """The archive the application opened at start-up."""
    archive: Archive = request.app.state.archive
    return archive


async def get_settings(request: Request) -> Settings:
    """The settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings


ArchiveDep = Annotated[Archive, Depends(get_archive)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _first(value: str) -> str:
    return value.split(",")[0].strip()


def public_root(request: Request) -> str:
    """The server's public URL: the public_base_url setting, X-Forwarded-*, else the request's."""
    settings: Settings = request.app.state.settings
    if settings.public_base_url:
        return settings.public_base_url
    headers = request.headers
    if settings.trust_forwarded_headers and (
        "x-forwarded-host" in headers or "x-forwarded-proto" in headers
    ):
        proto = _first(headers.get("x-forwarded-proto", request.url.scheme))
        host = _first(headers.get("x-forwarded-host", headers.get("host", request.url.netloc)))
        prefix = _first(headers.get("x-forwarded-prefix", "")).rstrip("/")
        return f"{proto}://{host}{prefix}"
    base = str(request.base_url).rstrip("/")
    host = headers.get("host", "")
    server = request.scope.get("server")
    default_port = {"http": 80, "https": 443}.get(request.url.scheme)
    if host and not re.search(r":\d+$", host) and server and server[1] not in (None, default_port):
        # Some clients (dicomweb-client) send Host without the port they connected to.
        base = base.replace(f"://{host}", f"://{host}:{server[1]}", 1)
    return base


def dicomweb_root(request: Request) -> str:
    """The public URL of the DICOMweb service, used in RetrieveURL and BulkDataURI."""
    return public_root(request) + "/dicom-web"
