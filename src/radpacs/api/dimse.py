"""The DICOM node over REST: configured nodes, echo and query them, send and retrieve as jobs.

- ``GET /api/dimse/nodes``: radpacs's own AE and the configured remote nodes;
- ``POST /api/dimse/nodes/{node}/echo``: C-ECHO, 200 or 502 with the reason;
- ``POST /api/dimse/nodes/{node}/query``: C-FIND (study root), matches as DICOM JSON;
- ``POST /api/dimse/nodes/{node}/send``: C-STORE a study or series there, a job (202);
- ``POST /api/dimse/nodes/{node}/retrieve``: C-MOVE to radpacs or C-GET, a job (202);
- ``GET /api/dimse/jobs`` and ``GET /api/dimse/jobs/{job_id}``: jobs with progress.

A remote node's failure is a 502 with the node and the DIMSE status in the message.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from radpacs.archive.jobs import Job
from radpacs.dimse import scu
from radpacs.dimse.jobs import LABEL, dimse_job, submit_transfer
from radpacs.dimse.nodes import NodeTable
from radpacs.http.deps import ArchiveDep, JobsDep, SettingsDep

__all__ = ["router"]

router = APIRouter(prefix="/api/dimse", tags=["dimse"])


class QueryRequest(BaseModel):
    level: Literal["STUDY", "SERIES", "IMAGE"] = "STUDY"
    keys: dict[str, str] = Field(
        default_factory=dict,
        examples=[{"PatientID": "P1", "StudyInstanceUID": "", "StudyDate": "20240101-"}],
    )


class TransferRequest(BaseModel):
    study: str
    series: str | None = None


class RetrieveRequest(TransferRequest):
    method: Literal["move", "get"] = "move"
    destination: str | None = None  # C-MOVE destination AE title; default radpacs itself


def _job(job: Job) -> dict[str, Any]:
    result = job.result or {}
    return {
        "id": job.id,
        "kind": job.kind.removeprefix("dimse."),
        "node": job.params.get("node"),
        "study": job.params.get("study"),
        "series": job.params.get("series"),
        "destination": job.params.get("destination"),
        "state": job.state.value,
        "done": job.done,
        "total": job.total,
        "completed": result.get("completed", 0),
        "failed": result.get("failed", 0),
        "error": job.error,
        "errors": result.get("errors", []),
        "created": job.created_at.isoformat(),
        "finished": job.finished_at.isoformat() if job.finished_at else None,
    }


@router.get("/nodes")
async def nodes(settings: SettingsDep) -> dict[str, Any]:
    """This node (AE title, port, on or off) and the configured remote nodes."""
    return {
        "local": {
            "ae_title": settings.dimse_ae_title,
            "host": settings.dimse_listen_host,
            "port": settings.dimse_port,
            "enabled": settings.dimse_enabled,
        },
        "nodes": [
            {
                "name": name,
                "ae_title": node.ae_title,
                "host": node.host,
                "port": node.port,
                "permissions": sorted(p.value for p in node.permissions),
            }
            for name, node in settings.dimse_nodes.items()
        ],
    }


@router.post("/nodes/{node}/echo")
async def echo(node: str, settings: SettingsDep) -> dict[str, str]:
    """C-ECHO the node: ``{"node": ..., "status": "success"}``, or 502 with the reason."""
    remote = NodeTable.from_settings(settings).get(node)
    await run_in_threadpool(scu.echo, settings, remote)
    return {"node": node, "status": "success"}


@router.post("/nodes/{node}/query")
async def query(node: str, body: QueryRequest, settings: SettingsDep) -> list[dict[str, Any]]:
    """C-FIND the node in the study root model; each match as a DICOM JSON object."""
    remote = NodeTable.from_settings(settings).get(node)
    found = await run_in_threadpool(scu.query, settings, remote, body.level, body.keys)
    return [match.to_json_dict() for match in found]


@router.post("/nodes/{node}/send", status_code=202)
async def send(
    node: str, body: TransferRequest, jobs: JobsDep, archive: ArchiveDep, settings: SettingsDep
) -> dict[str, Any]:
    """Queue a C-STORE of a study or series of the archive to the node; the job."""
    job = await run_in_threadpool(
        submit_transfer, jobs, archive, settings, "send", node, body.study, body.series
    )
    return _job(job)


@router.post("/nodes/{node}/retrieve", status_code=202)
async def retrieve(
    node: str, body: RetrieveRequest, jobs: JobsDep, archive: ArchiveDep, settings: SettingsDep
) -> dict[str, Any]:
    """Queue a C-MOVE (to radpacs, or ``destination``) or C-GET of a study or series."""
    job = await run_in_threadpool(
        submit_transfer,
        jobs,
        archive,
        settings,
        body.method,
        node,
        body.study,
        body.series,
        body.destination,
    )
    return _job(job)


@router.get("/jobs")
async def list_jobs(jobs: JobsDep) -> dict[str, Any]:
    """DICOM transfer jobs, newest first (the last 100)."""
    found = await run_in_threadpool(jobs.find, label=LABEL)
    return {"jobs": [_job(job) for job in found]}


@router.get("/jobs/{job_id}")
async def job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """One job with its progress (``done`` of ``total`` instances)."""
    return _job(await run_in_threadpool(dimse_job, jobs, job_id))
