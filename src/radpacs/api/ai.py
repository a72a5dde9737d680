"""REST routes for AI: models, jobs (submit, show, list, cancel), batches, results as JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from radpacs.ai.interface import model_json
from radpacs.archive.jobs import JobState
from radpacs.errors import NotFound
from radpacs.http.deps import AiDep

__all__ = ["router"]

router = APIRouter(prefix="/api/ai", tags=["ai"])


class JobRequest(BaseModel):
    model: str
    study: str
    series: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int | None = Field(default=None, ge=1, le=20)


class BatchRequest(BaseModel):
    model: str
    query: dict[str, str] = Field(default_factory=dict)
    limit: int = Field(default=500, ge=1, le=10000)


@router.get("/models")
def list_models(
    ai: AiDep, study: Annotated[str | None, Query(description="a study UID")] = None
) -> dict[str, Any]:
    """Every model found at start, and the plugins that failed to load. With ``study``, each
    model also says which series of that study it would take (``series``, ``roles``) or
    why none (``reason``)."""
    models = (
        ai.models_for_study(study)
        if study
        else [model_json(m) for m in ai.registry.models.values()]
    )
    return {"models": models, "errors": ai.registry.errors}


@router.post("/jobs", status_code=202)
async def submit_job(body: JobRequest, ai: AiDep, response: Response) -> dict[str, Any]:
    """Queue a job; the same request while one is pending answers that job (200)."""
    job, created = await run_in_threadpool(
        ai.submit,
        body.model,
        body.study,
        body.series,
        body.parameters,
        "demand",
        body.max_attempts,
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/ai/jobs/{job.id}"
    return job.to_json()


@router.get("/jobs")
async def list_jobs(
    ai: AiDep,
    state: Annotated[JobState | None, Query()] = None,
    study: str | None = None,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**53, description="at most 2^53")] = 0,
) -> dict[str, Any]:
    jobs = await run_in_threadpool(
        ai.jobs.find, state.value if state else None, study, model, limit, offset
    )
    return {"jobs": [job.to_json() for job in jobs]}


@router.get("/jobs/{job_id}")
async def show_job(job_id: str, ai: AiDep) -> dict[str, Any]:
    job = await run_in_threadpool(ai.jobs.get, job_id)
    return job.to_json()


@router.get("/jobs/{job_id}/result")
async def job_result(job_id: str, ai: AiDep) -> Response:
    """The result as JSON for viewers (polygons per slice, labels, styles, measurements)."""
    text = await run_in_threadpool(ai.jobs.result_json, job_id)
    if text is None:
        raise NotFound(f"AI job {job_id} has no result (yet)")
    return Response(text, media_type="application/json")


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, ai: AiDep) -> dict[str, Any]:
    job = await run_in_threadpool(ai.jobs.cancel, job_id)
    return job.to_json()


@router.post("/batch", status_code=202)
async def batch(body: BatchRequest, ai: AiDep) -> dict[str, Any]:
    """One job per series matching a QIDO-RS series query (``query`` holds its parameters)."""
    jobs, skipped = await run_in_threadpool(
        ai.batch, body.model, list(body.query.items()), body.limit
    )
    return {"jobs": [job.to_json() for job in jobs], "skipped": skipped}
