"""Browser sessions: the token in an HttpOnly cookie, so that pages and OHIF need no code.

- POST /api/session: ``username`` + ``password`` (form or JSON), checked and rate limited
  exactly as POST /api/auth (:func:`radpacs.api.accounts.log_in`). Sets the cookie
  :data:`SESSION_COOKIE` (``HttpOnly; SameSite=Strict; Path=/``, ``Secure`` when the
  request or ``public_base_url`` is https, ``Max-Age`` the token lifetime) and answers who
  logged in, without the token: scripts never see it.
- DELETE /api/session: revoke the token of the request and clear the cookie (log out).

:class:`radpacs.http.access.AccessControl` reads the token from the cookie when the request
has neither ``Authorization: Bearer`` nor ``?token=``. ``SameSite=Strict`` keeps browsers
from sending the cookie with any request started by another site, which is what protects
the state-changing routes (STOW-RS, DELETE, account management) from cross-site request
forgery: see docs/auth.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from radpacs.api.accounts import log_in, revoke_principal_token
from radpacs.auth.credentials import SESSION_COOKIE
from radpacs.http.deps import AuthServicesDep, PrincipalDep, public_root

__all__ = ["SESSION_COOKIE", "router"]

router = APIRouter(prefix="/api", tags=["accounts"])


def _secure(request: Request) -> bool:
    """Whether the browser reaches this server over https (directly or through a proxy)."""
    return request.url.scheme == "https" or public_root(request).startswith("https:")


@router.post("/session", summary="Log in a browser: the token in an HttpOnly cookie")
async def open_session(request: Request, services: AuthServicesDep) -> Response:
    """``username`` and ``password`` as form fields or JSON; 401 when wrong, 429 when locked."""
    issued: dict[str, Any] = await log_in(request, services)
    response = JSONResponse(
        {key: issued[key] for key in ("username", "role", "expires_at", "token_id")}
    )
    response.set_cookie(
        SESSION_COOKIE,
        issued["token"],
        max_age=int(services.issuer.lifetime.total_seconds()),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.delete("/session", status_code=204, summary="Log out a browser: revoke, clear the cookie")
def close_session(request: Request, principal: PrincipalDep, services: AuthServicesDep) -> Response:
    """Revokes the token the request came with (cookie or bearer) and expires the cookie."""
    revoke_principal_token(principal, services)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="strict"
    )
    return response
