"""Log in, tokens, accounts and the audit trail over HTTP.

- POST /api/auth: ``username`` + ``password`` (form or JSON) -> ``{"token": ...}``; with
  open enrolment, ``idul`` alone for accounts enrolled without a password. Failed
  attempts per (name, client address) are rate limited (429 with Retry-After).
- GET /api/auth/me: who the token stands for. POST /api/auth/revoke: revoke this token.
- DELETE /api/tokens/{token_id}: revoke any token by its ``jti`` (admin).
- GET, POST /api/users and DELETE /api/users/{username}: manage accounts (admin).
- GET /api/audit: the audit trail, filtered and paged (admin).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from radpacs.archive.audit import AuditQuery
from radpacs.auth.passwords import check_password_strength, hash_password, verify_password
from radpacs.auth.roles import Principal, Role
from radpacs.auth.usernames import check_username
from radpacs.errors import AuthenticationError, Conflict, InvalidInput, NotFound
from radpacs.http.audit import note_audit
from radpacs.http.deps import AuthServicesDep, PrincipalDep, phi_flag
from radpacs.services import AuthServices

__all__ = ["log_in", "read_fields", "revoke_principal_token", "router"]

router = APIRouter(prefix="/api", tags=["accounts"])


async def read_fields(request: Request) -> dict[str, str]:
    """The string fields of a JSON object or form body."""
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise InvalidInput(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidInput("the body must be a JSON object")
        return {
            key: (str(value).lower() if isinstance(value, bool) else value)
            for key, value in body.items()
            if isinstance(value, str | bool)
        }
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


_CLIENT_FACTOR = 4


def _login(services: AuthServices, fields: dict[str, str], client: str) -> dict[str, Any]:
    name = (fields.get("username") or fields.get("idul") or "").strip()
    if not name:
        raise InvalidInput("give username and password (or, with open enrolment, idul)")
    account_key, client_key = ("account", name), ("client", client)
    services.limiter.check(account_key)  # per account: guessing one password from many places
    # per address: trying many accounts from one place (an office behind one NAT address
    # gets four times the failures of one account)
    services.limiter.check(client_key, _CLIENT_FACTOR * services.limiter.max_failures)
    account = services.accounts.get(name)
    password = fields.get("password")
    if password is not None:
        ok = verify_password(account.password_hash if account else None, password)
    else:
        ok = bool(
            services.settings.open_enrolment
            and account is not None
            and account.enrolled
            and account.password_hash is None
        )
    if not ok or account is None:
        services.limiter.failed(account_key)
        services.limiter.failed(client_key)
        raise AuthenticationError(
            "unknown account or wrong password"
            if password is not None
            else "unknown account, or this account needs a password"
        )
    services.limiter.succeeded(account_key)  # the address keeps its count: a good login of
    # one account must not reset the guesses made at others
    phi = phi_flag(fields.get("phi"), "phi")
    issued = services.issuer.issue(account.username, [account.role], phi=phi is not False)
    return {
        "token": issued.token,
        "token_type": "bearer",
        "token_id": issued.token_id,
        "expires_at": datetime.fromtimestamp(issued.expires_at, UTC).isoformat(),
        "username": account.username,
        "role": account.role.value,
        "phi": phi is not False,
    }


async def log_in(request: Request, services: AuthServices) -> dict[str, Any]:
    """Check the request's credentials (form or JSON), rate limited per (name, client); the
    new token and who it stands for. Shared by POST /api/auth and POST /api/session."""
    fields = await read_fields(request)
    note_audit(request, username=(fields.get("username") or fields.get("idul") or "")[:64])
    client = request.client.host if request.client else ""
    return await run_in_threadpool(_login, services, fields, client)


def revoke_principal_token(principal: Principal, services: AuthServices) -> bool:
    """Revoke the radpacs token a request came with; False when there is none to revoke
    (an OIDC token, or auth off)."""
    if not principal.token_id or principal.source != "local":
        return False
    expires = datetime.fromtimestamp(principal.expires_at, UTC)
    services.accounts.revoke(principal.token_id, principal.username, expires)
    return True


@router.post("/auth", summary="Log in: get a token")
async def login(request: Request, services: AuthServicesDep) -> dict[str, Any]:
    """``username`` and ``password`` (or enrolled ``idul``), as form fields or JSON."""
    return await log_in(request, services)


@router.get("/auth/me", summary="Who this token stands for")
def whoami(principal: PrincipalDep) -> dict[str, Any]:
    return {
        "username": principal.username,
        "roles": sorted(role.value for role in principal.roles),
        "permissions": sorted(p.value for p in principal.permissions),
        "source": principal.source,
        "token_id": principal.token_id,
        "expires_at": (
            datetime.fromtimestamp(principal.expires_at, UTC).isoformat()
            if principal.expires_at
            else None
        ),
    }


@router.post("/auth/revoke", status_code=204, summary="Revoke the token of this request")
def revoke_own(principal: PrincipalDep, services: AuthServicesDep) -> Response:
    if not revoke_principal_token(principal, services):
        raise InvalidInput("only radpacs tokens can be revoked here")
    return Response(status_code=204)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token by its id")
def revoke_token(token_id: str, services: AuthServicesDep) -> Response:
    expires = datetime.now(UTC) + services.issuer.lifetime + timedelta(minutes=5)
    services.accounts.revoke(token_id[:64], "", expires)
    return Response(status_code=204)


class NewAccount(BaseModel):
    """An account to create; a password is required (at least 8 characters)."""

    username: str
    role: Role
    password: str


@router.get("/users", summary="List accounts")
def list_users(services: AuthServicesDep) -> list[dict[str, object]]:
    return [account.public() for account in services.accounts.list()]


@router.post("/users", status_code=201, summary="Create an account")
def add_user(body: NewAccount, request: Request, services: AuthServicesDep) -> dict[str, object]:
    try:
        name = check_username(body.username)
        check_password_strength(body.password)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    note_audit(request, detail=f"{name} as {body.role.value}")
    account = services.accounts.add(name, body.role, password_hash=hash_password(body.password))
    return account.public()


@router.delete("/users/{username}", status_code=204, summary="Remove an account")
def remove_user(username: str, request: Request, services: AuthServicesDep) -> Response:
    note_audit(request, detail=username)
    account = services.accounts.get(username)
    if account is None:
        raise NotFound(f"no account named {username!r}")
    if account.role is Role.ADMIN and services.accounts.count(Role.ADMIN) == 1:
        raise Conflict("this is the last administrator; create another one first")
    services.accounts.remove(username)
    return Response(status_code=204)


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{name}={value!r} is not an ISO 8601 date or datetime") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/audit", summary="The audit trail, newest first")
def audit_trail(
    services: AuthServicesDep,
    user: str | None = None,
    study: str | None = None,
    action: str | None = None,
    since: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**53, description="at most 2^53")] = 0,
) -> dict[str, Any]:
    """Events filtered by account, study, action and time; ``total`` counts every match."""
    services.audit.flush()
    events, total = services.audit.query(
        AuditQuery(
            username=user,
            study_uid=study,
            action=action,
            since=_when(since, "since"),
            until=_when(until, "until"),
            limit=limit,
            offset=offset,
        )
    )
    return {"total": total, "limit": limit, "offset": offset, "events": events}
