"""REST routes for callback apps (docs/ai-apps.md, "Callback apps").

- ``POST /api/apps`` registers an app (admin), ``GET /api/apps`` lists them,
  ``GET|PATCH|DELETE /api/apps/{name}`` show, change and unregister one (admin);
- ``POST /api/apps/{name}/analyses`` triggers an app on a study or series (202, the
  analysis: its workitem UID and delivery job);
- ``GET /api/apps/analyses`` and ``GET /api/apps/analyses/{uid}`` show analyses with their
  state, delivery and kept JSON result; ``DELETE /api/apps/analyses/{uid}`` cancels one
  (the app is told at ``<app url>/cancel``);
- ``POST /api/apps/analyses/{uid}/result`` is where the app posts an
  :class:`~radpacs.client.apps.AnalysisResult` with its study-scoped token: 400 for a body
  that is not JSON, 422 with pydantic's errors in words for one that is not a result, 409
  for a finished analysis.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from radpacs.apps.registry import AppSpec, AppUpdate
from radpacs.apps.service import AppService
from radpacs.client.apps import AnalysisResult
from radpacs.dicomweb.workitems import publish
from radpacs.errors import InvalidInput
from radpacs.http.audit import note_audit
from radpacs.http.deps import AppsDep, PrincipalDep

__all__ = ["router"]

router = APIRouter(prefix="/api/apps", tags=["apps"])

_MAX_RESULT_BYTES = 64 * 1024 * 1024


class TriggerRequest(BaseModel):
    """``POST /api/apps/{name}/analyses``: the study, optionally one series, parameters."""

    study: str = Field(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    series: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


async def _note_study(request: Request, apps: AppService, uid: str) -> None:
    """Name the analysis' study in the request's audit record (its path names the workitem)."""
    run = await run_in_threadpool(apps.store.find_run, uid)
    if run is not None:
        note_audit(request, study_uid=run.study_uid)


@router.post("", status_code=201)
async def register_app(
    body: AppSpec, apps: AppsDep, principal: PrincipalDep, request: Request, response: Response
) -> dict[str, Any]:
    """Register an app; 400 for a URL that is not http(s) to an allowed host, 409 for a
    name in use."""
    note_audit(request, detail=f"app {body.name} at {body.url}")
    record = await run_in_threadpool(apps.register, body, principal.username)
    response.headers["Location"] = f"/api/apps/{record.name}"
    return record.to_json()


@router.get("")
async def list_apps(apps: AppsDep) -> dict[str, Any]:
    records = await run_in_threadpool(apps.registered)
    return {"apps": [record.to_json() for record in records]}


@router.get("/analyses")
async def list_analyses(
    apps: AppsDep,
    app: str | None = None,
    study: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The latest analyses first, of one app or study when asked."""
    found = await run_in_threadpool(apps.analyses, app, study, limit)
    return {"analyses": found}


@router.get("/analyses/{uid}")
async def get_analysis(uid: str, apps: AppsDep, request: Request) -> dict[str, Any]:
    """One analysis: state, progress, delivery (job state, attempts, error), JSON result."""
    await _note_study(request, apps, uid)
    return await run_in_threadpool(apps.analysis, uid)


@router.delete("/analyses/{uid}", status_code=202)
async def cancel_analysis(uid: str, apps: AppsDep, request: Request) -> dict[str, Any]:
    """Cancel an analysis (its workitem becomes CANCELED); the app is told at
    ``<app url>/cancel``. 409 once it is finished."""
    note_audit(request, detail=f"workitem {uid}: cancelled")
    await _note_study(request, apps, uid)
    events = await run_in_threadpool(apps.cancel, uid, "cancelled through the API")
    await publish(request, apps.workitems, events)
    return await run_in_threadpool(apps.analysis, uid)


@router.post("/analyses/{uid}/result")
async def post_result(uid: str, apps: AppsDep, request: Request) -> Response:
    """The app's progress or result (see the module); 200 with the workitem's state."""
    await _note_study(request, apps, uid)
    raw = await request.body()
    if len(raw) > _MAX_RESULT_BYTES:
        raise InvalidInput(f"the result is larger than {_MAX_RESULT_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        note_audit(request, detail=f"workitem {uid}: a result that is not JSON")
        raise InvalidInput(f"the result is not JSON: {exc}") from exc
    try:
        result = AnalysisResult.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in error["loc"]) or "(body)", "error": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        words = "; ".join(f"{e['field']}: {e['error']}" for e in errors[:20])
        note_audit(request, detail=f"workitem {uid}: an invalid result refused")
        return JSONResponse(
            {"detail": f"the result is not a valid AnalysisResult: {words}", "errors": errors},
            status_code=422,
        )
    outcome = await run_in_threadpool(apps.post_result, uid, result)
    note_audit(
        request,
        detail=f"workitem {uid}: {result.status.value}"
        + (f", stored series {', '.join(outcome.series)}" if outcome.series else "")
        + ("" if outcome.stored or result.status.value != "completed" else ", a repeat"),
    )
    await publish(request, apps.workitems, outcome.events)
    return JSONResponse(outcome.to_json(uid))


@router.get("/{name}")
async def get_app(name: str, apps: AppsDep) -> dict[str, Any]:
    record = await run_in_threadpool(apps.get, name)
    return record.to_json()


@router.patch("/{name}")
async def update_app(name: str, body: AppUpdate, apps: AppsDep, request: Request) -> dict[str, Any]:
    """Change a registration (absent fields stay); the URL is checked again."""
    note_audit(request, detail=f"app {name}: {body.model_dump_json(exclude_none=True)}")
    record = await run_in_threadpool(apps.update, name, body)
    return record.to_json()


@router.delete("/{name}", status_code=204)
async def remove_app(name: str, apps: AppsDep, request: Request) -> Response:
    """Unregister an app; its analyses stay readable."""
    note_audit(request, detail=f"app {name}")
    await run_in_threadpool(apps.remove, name)
    return Response(status_code=204)


@router.post("/{name}/analyses", status_code=202)
async def trigger_app(
    name: str,
    body: TriggerRequest,
    apps: AppsDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """Start an analysis of a study (or one series) by app ``name``: a workitem, and a
    delivery job that POSTs the request to the app (retried while the app is down)."""
    note_audit(request, study_uid=body.study, series_uid=body.series or "", detail=f"app {name}")
    run = await run_in_threadpool(
        lambda: apps.trigger(
            name,
            body.study,
            body.series or "",
            body.parameters,
            created_by=principal.username,
        )
    )
    response.headers["Location"] = f"/api/apps/analyses/{run.workitem_uid}"
    return await run_in_threadpool(apps.analysis, run.workitem_uid)
