"""Every FastAPI dependency the routers use, as ``Annotated`` aliases: the archive, the
settings, the principal, the auth and AI services, the public root.

This is the only module that reads ``request.app.state``.

Dependencies that only read application state are ``async def``: FastAPI runs a plain ``def``
dependency in its thread pool, and that hop cost more than the endpoint's own work on a
STOW request.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request

from radpacs.ai.service import AiService
from radpacs.apps.service import AppService
from radpacs.archive import Archive
from radpacs.auth.roles import ANONYMOUS, Principal
from radpacs.cache import BodyCache
from radpacs.deid.pseudonyms import PseudonymStore
from radpacs.errors import InvalidInput, StorageError
from radpacs.followup.feed import FollowupService
from radpacs.http.events import EventChannels
from radpacs.jobs import Jobs
from radpacs.services import AuthServices, Services
from radpacs.settings import Settings

__all__ = [
    "AiDep",
    "AppsDep",
    "ArchiveDep",
    "AuthServicesDep",
    "FollowupDep",
    "JobsDep",
    "MetadataCacheDep",
    "PrincipalDep",
    "PseudonymStoreDep",
    "ServicesDep",
    "SettingsDep",
    "dicomweb_root",
    "event_channels",
    "phi_flag",
    "phi_visible",
    "public_root",
    "services_of",
    "settings_of",
]


def settings_of(app: Any) -> Settings:
    """The settings ``app`` was built with (for middleware, which has no Request)."""
    settings: Settings = app.state.settings
    return settings


def services_of(app: Any) -> Services | None:
    """The services ``app`` opened at start-up; None before start and after stop."""
    services: Services | None = getattr(app.state, "services", None)
    return services


def event_channels(app: Any) -> EventChannels:
    """The UPS-RS event channels of ``app`` (made at the first use)."""
    channels: EventChannels | None = getattr(app.state, "ups_channels", None)
    if channels is None:
        settings: Settings = app.state.settings
        channels = app.state.ups_channels = EventChannels(settings.redis_url)
    return channels


def _opened(request: Request) -> Services:
    services = services_of(request.app)
    if services is None:
        raise StorageError("the server is starting or stopping; its services are not open")
    return services


async def get_services(request: Request) -> Services:
    """The services the application opened at start-up (503 before that)."""
    return _opened(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_archive(request: Request) -> Archive:
    return _opened(request).archive


async def get_settings(request: Request) -> Settings:
    return settings_of(request.app)


async def current_principal(request: Request) -> Principal:
    """Who the request acts as (ANONYMOUS on public routes), as the access control set it."""
    principal: Principal = request.scope.get("radpacs.principal", ANONYMOUS)
    return principal


async def get_auth(request: Request) -> AuthServices:
    return _opened(request).auth


async def get_ai(request: Request) -> AiService:
    return _opened(request).ai


async def get_apps(request: Request) -> AppService:
    return _opened(request).apps


async def get_pseudonyms(request: Request) -> PseudonymStore:
    return _opened(request).pseudonyms


async def get_jobs(request: Request) -> Jobs:
    return _opened(request).jobs


async def get_metadata_cache(request: Request) -> BodyCache:
    return _opened(request).metadata_cache


async def get_followup(request: Request) -> FollowupService:
    return _opened(request).followup


ArchiveDep = Annotated[Archive, Depends(get_archive)]
"""The archive: store, search, retrieve, delete, check."""
SettingsDep = Annotated[Settings, Depends(get_settings)]
"""The settings the application was built with."""
PrincipalDep = Annotated[Principal, Depends(current_principal)]
"""Who the request acts as."""
AuthServicesDep = Annotated[AuthServices, Depends(get_auth)]
"""Accounts, audit, dataset names, token issuer, login limiter."""
AiDep = Annotated[AiService, Depends(get_ai)]

AppsDep = Annotated[AppService, Depends(get_apps)]
"""The AI service: models, queue, jobs."""
PseudonymStoreDep = Annotated[PseudonymStore, Depends(get_pseudonyms)]
"""The database store of patient pseudonyms (PS3.15 Annex E)."""
JobsDep = Annotated[Jobs, Depends(get_jobs)]
"""The de-identification jobs of this process."""
MetadataCacheDep = Annotated[BodyCache, Depends(get_metadata_cache)]
"""Prepared WADO-RS metadata bodies by ETag."""
FollowupDep = Annotated[FollowupService, Depends(get_followup)]
"""The follow-up: its store, and the feed that keeps it up to date."""


_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def phi_flag(value: str | None, name: str = "phi") -> bool | None:
    """``true``/``false`` (also 1/0, yes/no) of a request parameter; None when absent."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"{name}={value!r}: give true or false")


def phi_visible(request: Request) -> bool:
    """Whether this request may see patient-identifying attributes: not with ``?phi=false``
    (a radpacs extension), never with a no-PHI token, whatever it asks."""
    principal: Principal = request.scope.get("radpacs.principal", ANONYMOUS)
    asked = phi_flag(request.query_params.get("phi"))
    return principal.phi_allowed and asked is not False


def _first(value: str) -> str:
    return value.split(",")[0].strip()


@lru_cache(maxsize=1024)
def is_trusted_proxy(peer: str, trusted: tuple[str, ...]) -> bool:
    """Whether the address a request came from is one of ``trusted_proxies`` (an address, a
    network such as ``10.0.0.0/8``, or a name compared as it is)."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer in trusted
    for entry in trusted:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def public_root(request: Request) -> str:
    """The server's public URL: the public_base_url setting; else X-Forwarded-* and Host when
    the request came through one of ``trusted_proxies``; else the address and port the client
    connected to. A client that is not a trusted proxy cannot choose the URLs given out
    (RetrieveURL, BulkDataURI) with Host or X-Forwarded-Host."""
    settings = settings_of(request.app)
    if settings.public_base_url:
        return settings.public_base_url
    headers = request.headers
    scope = request.scope
    peer = (scope.get("client") or ("",))[0]
    trusted = bool(settings.trusted_proxies) and is_trusted_proxy(
        peer, tuple(settings.trusted_proxies)
    )
    forwarded = (
        trusted
        and settings.trust_forwarded_headers
        and ("x-forwarded-host" in headers or "x-forwarded-proto" in headers)
    )
    host = headers.get("host", "") if trusted else ""  # "": the server's own address
    return _root_of(
        scope["scheme"],
        host,
        tuple(scope["server"]) if scope.get("server") else None,
        scope.get("app_root_path", scope.get("root_path", "")),
        headers.get("x-forwarded-proto", "") if forwarded else "",
        headers.get("x-forwarded-host", "") if forwarded else "",
        headers.get("x-forwarded-prefix", "") if forwarded else "",
        forwarded,
    )


@lru_cache(maxsize=256)
def _root_of(
    scheme: str,
    host: str,
    server: tuple[str, int | None] | None,
    root_path: str,
    forwarded_proto: str,
    forwarded_host: str,
    forwarded_prefix: str,
    forwarded: bool,
) -> str:
    """:func:`public_root` from the parts of a request it depends on (cached: every STOW and
    metadata answer needs it, and building the request's URL costs more than the rest)."""
    default_port = {"http": 80, "https": 443}.get(scheme)
    if not host and server:  # as Starlette builds the request's URL without a Host header
        address = f"[{server[0]}]" if ":" in server[0] else server[0]
        host = address if server[1] == default_port else f"{address}:{server[1]}"
    if forwarded:
        proto = _first(forwarded_proto or scheme)
        forwarded_to = _first(forwarded_host or host)
        prefix = _first(forwarded_prefix).rstrip("/")
        return f"{proto}://{forwarded_to}{prefix}"
    if not host:
        return root_path.rstrip("/")
    base = f"{scheme}://{host}{root_path}".rstrip("/")
    if host and not re.search(r":\d+$", host) and server and server[1] not in (None, default_port):
        # Some clients (dicomweb-client) send Host without the port they connected to.
        base = base.replace(f"://{host}", f"://{host}:{server[1]}", 1)
    return base


def dicomweb_root(request: Request) -> str:
    """The public URL of the DICOMweb service, used in RetrieveURL and BulkDataURI."""
    return public_root(request) + "/dicom-web"
