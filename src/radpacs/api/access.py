"""Access control and audit for every request: one ASGI middleware and one policy table.

:class:`AccessControl` sits inside the CORS and client-address middlewares. For each
HTTP request it finds the route the router will pick, looks up its (method, path
template) in :data:`radpacs.auth.policy.POLICY` and

- refuses with 403 a route that has no entry (default deny: mounted apps and plain
  Starlette routes included, which FastAPI dependencies would not see);
- for a non-public route, reads the token (``Authorization: Bearer``, else ``?token=``,
  else the browser session cookie :data:`SESSION_COOKIE` set by POST /api/session),
  answers 401 with ``WWW-Authenticate`` when it is missing, wrong, expired, tampered,
  revoked or foreign, and 403 when the principal's roles lack the permission;
- runs the route and, if the rule names an audit action, records who, from where, which
  study/series/instance (from the path, from what a handler noted, or from what STOW-RS
  stored) and the final status — also for refused requests.

With ``auth_enabled`` off every request acts as the local administrator ``local`` and is
still audited. Handlers reach the principal with :data:`PrincipalDep` and add audit
details with :func:`note_audit`.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from starlette._utils import get_route_path
from starlette.requests import cookie_parser
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radpacs.api.errors import error_response
from radpacs.archive import Archive, StoreResult
from radpacs.archive.accounts import AccountStore
from radpacs.archive.audit import AuditLog, AuditRecord
from radpacs.archive.names import DatasetNames
from radpacs.auth.authenticator import Authenticator
from radpacs.auth.oidc import OidcValidator
from radpacs.auth.passwords import hash_password
from radpacs.auth.policy import Rule, rule_for
from radpacs.auth.ratelimit import LoginLimiter
from radpacs.auth.roles import Permission, Principal, Role
from radpacs.auth.tokens import TokenIssuer, signing_secret
from radpacs.errors import AuthenticationError, PermissionDenied, RadpacsError
from radpacs.settings import Settings

__all__ = [
    "ANONYMOUS",
    "LOCAL_USER",
    "SESSION_COOKIE",
    "AccessControl",
    "AuthServices",
    "AuthServicesDep",
    "PrincipalDep",
    "RequestAudit",
    "RouteEntry",
    "close_access",
    "current_principal",
    "note_audit",
    "open_access",
    "route_entries",
]

log = logging.getLogger(__name__)

ANONYMOUS = Principal("", frozenset())
LOCAL_USER = Principal("local", frozenset({Role.ADMIN}), source="no-auth")
SESSION_COOKIE = "radpacs_session"

_STUDY_KEYS = ("study", "study_uid")
_SERIES_KEYS = ("series", "series_uid")
_INSTANCE_KEYS = ("instance", "sop", "sop_uid", "instance_uid")


@dataclass
class AuthServices:
    """What access control needs, opened with the archive (see :func:`open_access`)."""

    settings: Settings
    accounts: AccountStore
    audit: AuditLog
    names: DatasetNames
    issuer: TokenIssuer
    authenticator: Authenticator
    limiter: LoginLimiter


@dataclass
class RequestAudit:
    """What the audit record of one request will say; handlers may fill in more."""

    principal: Principal
    action: str | None
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    detail: str = ""
    username: str = ""
    stored: list[StoreResult] = field(default_factory=list)


_current: ContextVar[RequestAudit | None] = ContextVar("radpacs_request_audit", default=None)


def open_access(app: FastAPI, settings: Settings, archive: Archive) -> AuthServices:
    """Build the services on the archive's engine, create the first admin from the settings."""
    accounts = AccountStore(archive.engine)
    oidc = None
    if settings.jwt_validate:
        assert settings.jwt_issuer and settings.jwt_audience and settings.jwt_jwks_url
        oidc = OidcValidator(
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.jwt_jwks_url,
            username_claim=settings.jwt_username_claim,
            roles_claim=settings.jwt_roles_claim,
            role_map=settings.jwt_role_map,
        )
    issuer = TokenIssuer(
        signing_secret(settings.auth_secret, settings.data_dir),
        lifetime=timedelta(minutes=settings.token_lifetime_minutes),
    )
    services = AuthServices(
        settings=settings,
        accounts=accounts,
        audit=AuditLog(archive.engine),
        names=DatasetNames(archive.engine),
        issuer=issuer,
        authenticator=Authenticator(issuer, accounts, oidc),
        limiter=LoginLimiter(settings.login_max_failures, settings.login_window_seconds),
    )
    if settings.admin_user and settings.admin_password:
        _first_admin(accounts, settings.admin_user, settings.admin_password)
    archive.add_listener(_note_stored)
    app.state.auth = services
    return services


def _first_admin(accounts: AccountStore, username: str, password: str) -> None:
    if accounts.count(Role.ADMIN):
        return
    if accounts.get(username) is not None:
        log.warning("admin_user %s exists without the admin role; not changed", username)
        return
    accounts.add(username, Role.ADMIN, password_hash=hash_password(password))
    log.warning("created the first administrator %s from the settings", username)


def close_access(app: FastAPI) -> None:
    """Write the queued audit events and stop the audit writer."""
    services: AuthServices | None = getattr(app.state, "auth", None)
    if services is not None:
        services.audit.close()


def _note_stored(results: list[StoreResult]) -> None:
    """Archive listener: remember what the current request stored, for its audit record."""
    audit = _current.get()
    if audit is not None:
        audit.stored.extend(results)


def note_audit(request: Request, **fields: str) -> None:
    """Add ``study_uid``, ``series_uid``, ``sop_uid``, ``detail`` or ``username`` to the
    request's audit record."""
    audit: RequestAudit | None = request.scope.get("radpacs.audit")
    if audit is not None:
        for name, value in fields.items():
            setattr(audit, name, value)


async def current_principal(request: Request) -> Principal:
    """Who the request acts as (ANONYMOUS on public routes)."""
    principal: Principal = request.scope.get("radpacs.principal", ANONYMOUS)
    return principal


async def auth_services(request: Request) -> AuthServices:
    """The services :func:`open_access` built at start-up."""
    services: AuthServices = request.app.state.auth
    return services


PrincipalDep = Annotated[Principal, Depends(current_principal)]
AuthServicesDep = Annotated[AuthServices, Depends(auth_services)]


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    for name, text in parse_qsl(query):
        if name == "token" and text:
            return str(text)
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookie = cookie_parser(bytes(value).decode("latin-1")).get(SESSION_COOKIE)
            if cookie:
                return cookie
    return None


def _first_param(params: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        if key in params:
            return str(params[key])
    return ""


@dataclass(frozen=True)
class RouteEntry:
    """One route of the application as the policy sees it: full path template and methods."""

    template: str
    methods: frozenset[str]
    mount: bool
    regex: re.Pattern[str]

    @property
    def policy_keys(self) -> list[tuple[str, str]]:
        """The (method, template) keys this route needs in the policy; ("MOUNT", prefix)."""
        if self.mount:
            return [("MOUNT", self.template)]
        return [(method, self.template) for method in sorted(self.methods - {"HEAD"})]


def route_entries(app: FastAPI) -> list[RouteEntry]:
    """Every route and mount of ``app`` with its full path, in the router's order."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy router inclusion: app.routes is flat
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    entries = []
    for context in contexts:
        original = getattr(context, "original_route", context)
        path = str(getattr(context, "path", "") or "")
        mount = isinstance(original, Mount)
        pattern = path.rstrip("/") + "/{path:path}" if mount else path
        regex, _, _ = compile_path(pattern)
        methods = frozenset(getattr(context, "methods", None) or ())
        entries.append(RouteEntry(path, methods, mount, regex))
    return entries


def _match(entries: list[RouteEntry], scope: Scope) -> tuple[RouteEntry, dict[str, str]] | None:
    """The route the router will pick for this request and its path parameters, or None."""
    path = get_route_path(scope)
    method = scope["method"]
    for entry in entries:
        found = entry.regex.match(path)
        if found is None:
            continue
        if entry.mount or method in entry.methods:
            return entry, found.groupdict()
    return None


class AccessControl:
    """ASGI middleware: authenticate, authorize by :data:`POLICY`, audit. See the module doc."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._entries: list[RouteEntry] = []
        self._routes_seen: tuple[int, ...] = ()

    def _route_entries(self, fastapi_app: FastAPI) -> list[RouteEntry]:
        routes = tuple(map(id, fastapi_app.routes))
        if routes != self._routes_seen:  # built at the first request, again if routes change
            self._entries = route_entries(fastapi_app)
            self._routes_seen = routes
        return self._entries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fastapi_app = scope["app"]
        settings: Settings = fastapi_app.state.settings
        services: AuthServices | None = getattr(fastapi_app.state, "auth", None)
        found = _match(self._route_entries(fastapi_app), scope)
        if found is None:  # 404 or 405 from the router; nothing is served
            await self.app(scope, receive, send)
            return
        entry, params = found
        rule = rule_for(
            "MOUNT" if entry.mount else scope["method"],
            entry.template,
            workshop=settings.workshop,
        )
        if rule is None:
            denied = PermissionDenied(
                f"{scope['method']} {entry.template} is not in the access policy"
            )
            await error_response(denied)(scope, receive, send)
            return
        audit = RequestAudit(
            ANONYMOUS,
            rule.action,
            study_uid=_first_param(params, _STUDY_KEYS),
            series_uid=_first_param(params, _SERIES_KEYS),
            sop_uid=_first_param(params, _INSTANCE_KEYS),
        )
        status = 500
        try:
            if services is None and settings.auth_enabled:
                raise AuthenticationError("the server is starting; try again")
            audit.principal = await self._principal(settings, services, rule, scope)
            if not audit.principal.can(rule.permission):
                roles = ", ".join(sorted(audit.principal.roles)) or "no role"
                raise PermissionDenied(
                    f"{audit.principal.username} ({roles}) may not {rule.permission.value} here"
                )
            scope["radpacs.principal"] = audit.principal
            scope["radpacs.audit"] = audit
        except RadpacsError as refusal:
            response = error_response(refusal)
            status = response.status_code
            await response(scope, receive, send)
            self._record(services, scope, audit, status)
            return

        async def send_capturing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        context = _current.set(audit)
        try:
            await self.app(scope, receive, send_capturing)
        finally:
            _current.reset(context)
            self._record(services, scope, audit, status)

    @staticmethod
    async def _principal(
        settings: Settings, services: AuthServices | None, rule: Rule, scope: Scope
    ) -> Principal:
        if not settings.auth_enabled:
            return LOCAL_USER
        if rule.permission is Permission.PUBLIC:
            return ANONYMOUS
        assert services is not None
        token = _bearer(scope)
        if token is None:
            raise AuthenticationError(
                "this route needs a token: Authorization: Bearer <token>, ?token=<token>, "
                "or the session cookie of POST /api/session"
            )
        principal: Principal = await anyio.to_thread.run_sync(
            services.authenticator.authenticate, token
        )
        return principal

    @staticmethod
    def _record(
        services: AuthServices | None, scope: Scope, audit: RequestAudit, status: int
    ) -> None:
        if services is None or audit.action is None:
            return
        query = scope.get("query_string", b"").decode("latin-1")
        query = "&".join(
            part for part in query.split("&") if part and not part.startswith("token=")
        )
        base = AuditRecord(
            action=audit.action,
            method=scope["method"],
            path=scope["path"],
            status=status,
            username=audit.principal.username or audit.username,
            client=(scope.get("client") or ("", 0))[0],
            study_uid=audit.study_uid,
            series_uid=audit.series_uid,
            sop_uid=audit.sop_uid,
            detail=audit.detail or query,
        )
        stored = [result for result in audit.stored if result.study_uid]
        if not stored or (base.study_uid and len({r.study_uid for r in stored}) == 1):
            if len(stored) == 1:
                base.series_uid, base.sop_uid = stored[0].series_uid, stored[0].sop_instance_uid
            services.audit.record(base)
            return
        by_study: dict[str, list[StoreResult]] = {}
        for result in stored:
            by_study.setdefault(result.study_uid, []).append(result)
        for study_uid, results in list(by_study.items())[:100]:
            one = results[0] if len(results) == 1 else None
            services.audit.record(
                AuditRecord(
                    action=base.action,
                    method=base.method,
                    path=base.path,
                    status=status,
                    username=base.username,
                    client=base.client,
                    study_uid=study_uid,
                    series_uid=one.series_uid if one else "",
                    sop_uid=one.sop_instance_uid if one else "",
                    detail=f"{len(results)} instance(s) stored or replaced",
                )
            )
