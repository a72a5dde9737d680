"""The audit record of each request: who, from where, which study/series/instance, status.

:class:`radpacs.http.access.AccessControl` starts a :class:`RequestAudit` per request whose
policy rule names an action; handlers add details with :func:`note_audit`; the archive
listener :func:`note_stored` adds what STOW-RS stored; :func:`record_request` writes the
rows (one per stored study when a request stored several) through
:class:`radpacs.archive.audit.AuditLog`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.types import Scope

from radpacs.archive import StoreResult
from radpacs.archive.audit import AuditLog, AuditRecord
from radpacs.auth.credentials import query_without_token
from radpacs.auth.roles import Principal

__all__ = ["RequestAudit", "note_audit", "note_stored", "record_request"]


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


current: ContextVar[RequestAudit | None] = ContextVar("radpacs_request_audit", default=None)
"""The audit of the request this task serves (set by the middleware around the route)."""


def note_stored(results: list[StoreResult]) -> None:
    """Archive listener: remember what the current request stored, for its audit record."""
    audit = current.get()
    if audit is not None:
        audit.stored.extend(results)


def note_audit(request: Request, **fields: str) -> None:
    """Add ``study_uid``, ``series_uid``, ``sop_uid``, ``detail`` or ``username`` to the
    request's audit record."""
    audit: RequestAudit | None = request.scope.get("radpacs.audit")
    if audit is not None:
        for name, value in fields.items():
            setattr(audit, name, value)


def record_request(log: AuditLog, scope: Scope, audit: RequestAudit, status: int) -> None:
    """Queue the audit rows of a finished (or refused) request; ``?token=`` is left out."""
    if audit.action is None:
        return
    query = scope.get("query_string", b"").decode("latin-1")
    query = query_without_token(query)
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
        log.record(base)
        return
    by_study: dict[str, list[StoreResult]] = {}
    for result in stored:
        by_study.setdefault(result.study_uid, []).append(result)
    for study_uid, results in list(by_study.items())[:100]:
        one = results[0] if len(results) == 1 else None
        log.record(
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
