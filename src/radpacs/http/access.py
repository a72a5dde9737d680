"""Access control and audit for every request: one ASGI middleware and one policy table.

:class:`AccessControl` sits inside the CORS and client-address middlewares. For each
HTTP request it finds the route the router will pick (:mod:`radpacs.http.routes`), looks up
its (method, path template) in :data:`radpacs.auth.policy.POLICY` and

- refuses with 403 a route that has no entry (default deny: mounted apps and plain
  Starlette routes included, which FastAPI dependencies would not see);
- for a non-public route, reads the token (:func:`radpacs.auth.credentials.request_token`:
  ``Authorization: Bearer``, else ``?token=``, else the browser session cookie set by
  POST /api/session), answers 401 with ``WWW-Authenticate`` when it is missing, wrong,
  expired, tampered, revoked or foreign, and 403 when the principal's roles lack the
  permission;
- for a callback app's study-scoped token, refuses with 403 every route outside
  :data:`radpacs.auth.policy.SCOPED_ROUTES` and every study or workitem but its own;
- runs the route and, if the rule names an audit action, records who, from where, which
  study/series/instance and the final status (:mod:`radpacs.http.audit`) — also for
  refused requests.

With ``auth_enabled`` off every request acts as the local administrator ``local`` and is
still audited. Handlers reach the principal with :data:`radpacs.http.deps.PrincipalDep` and
add audit details with :func:`radpacs.http.audit.note_audit`.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radpacs.auth.credentials import request_token
from radpacs.auth.policy import Rule, no_phi_allowed, rule_for, scoped_refusal
from radpacs.auth.roles import ANONYMOUS, LOCAL_USER, Permission, Principal
from radpacs.errors import AuthenticationError, PermissionDenied, RadpacsError
from radpacs.http import audit as request_audit
from radpacs.http.audit import RequestAudit, record_request
from radpacs.http.deps import services_of, settings_of
from radpacs.http.errors import error_response
from radpacs.http.routes import WEBSOCKET, RouteEntry, match_route, route_entries
from radpacs.services import AuthServices
from radpacs.settings import Settings

__all__ = ["AccessControl"]

_STUDY_KEYS = ("study", "study_uid")
_SERIES_KEYS = ("series", "series_uid")
_INSTANCE_KEYS = ("instance", "sop", "sop_uid", "instance_uid")


def _first_param(params: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        if key in params:
            return str(params[key])
    return ""


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
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fastapi_app = scope["app"]
        settings = settings_of(fastapi_app)
        opened = services_of(fastapi_app)
        services = opened.auth if opened is not None else None
        found = match_route(self._route_entries(fastapi_app), scope)
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
            hidden = not audit.principal.phi_allowed and rule.permission is not Permission.PUBLIC
            if hidden and not no_phi_allowed(scope["method"], entry.template):
                raise PermissionDenied(
                    f"{scope['method']} {entry.template} answers patient identity and is "
                    "not open to a no-PHI token"
                )
            limited = audit.principal.study_scope
            if limited is not None:
                reason = scoped_refusal(scope["method"], entry.template, params, limited)
                if reason is not None:
                    raise PermissionDenied(reason)
                audit.detail = f"app token of workitem {limited.get('workitem', '')}"
            scope["radpacs.principal"] = audit.principal
            scope["radpacs.audit"] = audit
        except RadpacsError as refusal:
            response = error_response(refusal)
            status = response.status_code
            await response(scope, receive, send)
            if services is not None:
                record_request(services.audit, scope, audit, status)
            return

        async def send_capturing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        context = request_audit.current.set(audit)
        try:
            await self.app(scope, receive, send_capturing)
        finally:
            request_audit.current.reset(context)
            if services is not None:
                record_request(services.audit, scope, audit, status)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket route in the policy (method WEBSOCKET) opens for a caller with its
        permission (token as for HTTP, e.g. ``?token=``); anything else is closed with 1008."""
        fastapi_app = scope["app"]
        settings = settings_of(fastapi_app)
        opened = services_of(fastapi_app)
        found = match_route(self._route_entries(fastapi_app), scope)
        rule = rule_for(WEBSOCKET, found[0].template) if found is not None else None
        try:
            if rule is None:
                raise PermissionDenied("this WebSocket is not in the access policy")
            if opened is None and settings.auth_enabled:
                raise AuthenticationError("the server is starting; try again")
            principal = await self._principal(
                settings, opened.auth if opened is not None else None, rule, scope
            )
            if not principal.can(rule.permission):
                raise PermissionDenied(f"{principal.username} may not {rule.permission.value}")
            if principal.study_scope is not None:
                raise PermissionDenied("an app token opens no WebSocket")
        except RadpacsError:
            await send({"type": "websocket.close", "code": 1008})
            return
        scope["radpacs.principal"] = principal
        await self.app(scope, receive, send)

    @staticmethod
    async def _principal(
        settings: Settings, services: AuthServices | None, rule: Rule, scope: Scope
    ) -> Principal:
        if not settings.auth_enabled:
            return LOCAL_USER
        if rule.permission is Permission.PUBLIC:
            return ANONYMOUS
        assert services is not None
        token = request_token(scope.get("headers", []), scope.get("query_string", b""))
        if token is None:
            raise AuthenticationError(
                "this route needs a token: Authorization: Bearer <token>, ?token=<token>, "
                "or the session cookie of POST /api/session"
            )
        principal: Principal = await anyio.to_thread.run_sync(
            services.authenticator.authenticate, token
        )
        return principal
