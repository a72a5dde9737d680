"""The job handlers that call an app: deliver an analysis request, tell it of a cancel.

``app-delivery`` (:func:`deliver`) POSTs the :class:`~radpacs.client.apps.AnalysisRequest`
of one workitem to the app's URL with a fresh study-scoped token; ``app-cancel``
(:func:`send_cancel`) POSTs ``{"workitem_uid": ...}`` to ``<app url>/cancel``. Both wait at
most the app's ``timeout`` seconds, follow no redirect and take any 2xx as done; anything
else (no answer, a timeout, a redirect, another status) raises :class:`AppDeliveryError`,
a failed attempt that the job queue retries after ``ai_retry_delay * 2 ** (attempt - 1)``
seconds until ``ai_max_attempts``; then the job is failed and the workitem CANCELED with
the reason (:func:`radpacs.archive.workitems.mirror_job`). Every attempt is audited
(``app-delivery``, ``app-cancel``) with the app, the workitem and the outcome.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from radpacs.apps.tokens import issue_app_token
from radpacs.archive.apps import AppRecord, AppStore
from radpacs.archive.audit import AuditLog, AuditRecord
from radpacs.archive.workitems import CANCELED, COMPLETED, WorkitemStore
from radpacs.client.apps import AnalysisRequest
from radpacs.errors import RadpacsError
from radpacs.jobs.registry import JobContext
from radpacs.settings import Settings

__all__ = ["AppDeliveryError", "base_url", "deliver", "send_cancel"]

_ANSWER_SHOWN = 200  # characters of an app's refusal kept in the reason


class AppDeliveryError(RadpacsError):
    """An app did not take a request: unreachable, too slow, a redirect or a non-2xx."""


def base_url(settings: Settings) -> str:
    """Where apps reach this radpacs: ``public_base_url``, else ``http://host:port`` (the
    loopback address when the server listens on every address)."""
    if settings.public_base_url:
        return settings.public_base_url
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def _post(url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` (JSON) to ``url``; the status of a 2xx answer, else AppDeliveryError."""
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        raise AppDeliveryError(f"the app at {url} did not answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise AppDeliveryError(f"the app at {url} is unreachable: {exc}") from exc
    if response.is_redirect:
        raise AppDeliveryError(
            f"the app at {url} answered a redirect ({response.status_code}), not followed"
        )
    if not response.is_success:
        text = " ".join(response.text.split())[:_ANSWER_SHOWN]
        raise AppDeliveryError(
            f"the app at {url} answered HTTP {response.status_code}: {text or '(empty body)'}"
        )
    return response.status_code


def _audit(ctx: JobContext, action: str, url: str, status: int, study: str, detail: str) -> None:
    log = AuditLog(ctx.archive.engine)
    try:
        log.record(
            AuditRecord(
                action=action,
                method="POST",
                path=url,
                status=status,
                username="radpacs",
                study_uid=study,
                detail=detail,
            )
        )
    finally:
        log.close()


def _call(ctx: JobContext, action: str, app: AppRecord, url: str, body: bytes, study: str) -> int:
    uid = str(ctx.params["workitem"])
    try:
        status = _post(url, body, app.timeout)
    except AppDeliveryError as exc:
        _audit(ctx, action, url, 0, study, f"app {app.name}, workitem {uid}: {exc}")
        raise
    _audit(ctx, action, url, status, study, f"app {app.name}, workitem {uid}")
    return status


def deliver(ctx: JobContext) -> dict[str, Any]:
    """Send the analysis request of workitem ``params["workitem"]`` to its app."""
    uid = str(ctx.params["workitem"])
    store = AppStore(ctx.archive.engine)
    run = store.run(uid)
    state = WorkitemStore(ctx.archive.engine).state(uid)
    if state in (CANCELED, COMPLETED):  # cancelled (or answered) before it was delivered
        return {"skipped": f"the workitem is {state}"}
    app = store.get(run.app)
    token = issue_app_token(ctx.settings, app.name, run.study_uid, uid)
    root = base_url(ctx.settings)
    request = AnalysisRequest(
        workitem_uid=uid,
        app=app.name,
        study_uid=run.study_uid,
        series_uids=run.series_uids,
        dicomweb_url=f"{root}/dicom-web",
        stow_url=f"{root}/dicom-web/studies/{run.study_uid}",
        result_url=f"{root}/api/apps/analyses/{uid}/result",
        token=token.token,
        token_expires=datetime.fromtimestamp(token.expires_at, UTC),
        parameters=dict(ctx.params.get("parameters") or {}),
    )
    body = request.model_dump_json().encode()
    status = _call(ctx, "app-delivery", app, app.url, body, run.study_uid)
    return {"app": app.name, "workitem": uid, "status": status}


def send_cancel(ctx: JobContext) -> dict[str, Any]:
    """Tell the app of workitem ``params["workitem"]`` that its analysis is cancelled."""
    uid = str(ctx.params["workitem"])
    store = AppStore(ctx.archive.engine)
    run = store.run(uid)
    app = store.find(run.app)
    if app is None:
        return {"skipped": f"the app {run.app} is no longer registered"}
    url = app.url.rstrip("/") + "/cancel"
    body = json.dumps({"workitem_uid": uid}).encode()
    status = _call(ctx, "app-cancel", app, url, body, run.study_uid)
    return {"app": app.name, "workitem": uid, "status": status}
