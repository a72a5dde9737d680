"""Route matching for the middleware: which route of the app a request will reach.

:func:`route_entries` lists every route and mount with its full path template (included
routers' prefixes applied); :func:`match_route` finds the one the router will pick, so that
:class:`radpacs.http.access.AccessControl` can look its (method, template) up in the policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount, WebSocketRoute, compile_path
from starlette.types import Scope

__all__ = ["WEBSOCKET", "RouteEntry", "match_route", "route_entries", "route_path"]

WEBSOCKET = "WEBSOCKET"
"""The method a WebSocket route has in the policy (a WebSocket handshake is a GET)."""


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
        if isinstance(original, WebSocketRoute):
            methods = frozenset({WEBSOCKET})
        entries.append(RouteEntry(path, methods, mount, regex))
    return entries


def route_path(scope: Scope) -> str:
    """The request's path without the ASGI ``root_path`` prefix, as Starlette's router
    matches it (the same rule as its private ``get_route_path``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path


def match_route(
    entries: list[RouteEntry], scope: Scope
) -> tuple[RouteEntry, dict[str, str]] | None:
    """The route the router will pick for this request and its path parameters, or None."""
    path = route_path(scope)
    method = scope["method"] if scope["type"] == "http" else WEBSOCKET
    for entry in entries:
        found = entry.regex.match(path)
        if found is None:
            continue
        if entry.mount or method in entry.methods:
            return entry, found.groupdict()
    return None
