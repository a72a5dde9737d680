"""UPS-RS, the Worklist Service (PS3.18 11) over :class:`radpacs.archive.workitems.WorkitemStore`.

- ``POST /workitems{?workitem}``: create (201, Location; Warning when attributes were filled);
- ``GET /workitems``: search, QIDO-RS matching, ``limit``/``offset``;
- ``GET /workitems/{uid}``: retrieve (without the Transaction UID);
- ``POST /workitems/{uid}{?transaction}``: update;
- ``PUT /workitems/{uid}/state``: change state (body: ProcedureStepState, TransactionUID);
- ``POST /workitems/{uid}/cancelrequest``: request cancellation (202);
- ``POST|DELETE /workitems/{uid}/subscribers/{aetitle}{?deletionlock}``: (un)subscribe; the
  UID may be the global 1.2.840.10008.5.1.4.34.5 or the filtered ...34.5.1 (filter = the
  other query parameters); ``POST .../34.5/subscribers/{aetitle}/suspend``;
- ``WebSocket /subscribers/{aetitle}``: the event channel; each event report is one text
  message, a DICOM JSON dataset with Affected SOP Class/Instance UID (0000,0002)/(0000,1000),
  Event Type ID (0000,1002) and the event information (PS3.4 CC.2.4).

Refusals carry ``Warning: 299 radpacs: <reason>`` as PS3.18 11 prescribes, beside the
JSON ``detail``. Events reach channels open in this server process, or in every process
sharing ``redis_url`` (:mod:`radpacs.http.events`); they are not queued
for AE titles that are not connected.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from radpacs.archive.workitems import (
    CANCEL_REQUESTED,
    FILTERED_SUBSCRIPTION_UID,
    GLOBAL_SUBSCRIPTION_UID,
    STATE,
    STATE_REPORT,
    Event,
    WorkitemStore,
)
from radpacs.dicom.json import attribute
from radpacs.dicomweb.responses import warning_header
from radpacs.errors import InvalidInput, RadpacsError
from radpacs.http.audit import note_audit
from radpacs.http.deps import AppsDep, ArchiveDep, JobsDep, dicomweb_root, event_channels
from radpacs.http.errors import status_for

__all__ = ["publish", "router"]

router = APIRouter(tags=["UPS-RS"])

_DICOM_JSON = "application/dicom+json"
_RESERVED = {"token", "limit", "offset", "includefield", "fuzzymatching"}


def _refusal(error: RadpacsError) -> JSONResponse:
    reason = " ".join(str(error).split())
    return JSONResponse(
        {"detail": reason},
        status_code=status_for(error),
        headers={"Warning": warning_header(reason)},
    )


async def _guarded(call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except RadpacsError as error:
        return _refusal(error)


def _reason(body: Any) -> str:
    """The Reason For Cancellation (0074,1238) of a cancel request body, or ''."""
    item = body[0] if isinstance(body, list) and body else body
    if not isinstance(item, dict):
        return ""
    values = (item.get("00741238") or {}).get("Value") or [""]
    return str(values[0]) if isinstance(values, list) and values else ""


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from exc


async def publish(request: Request | WebSocket, store: WorkitemStore, events: list[Event]) -> None:
    """Send ``events`` to the open channels of their subscribers (PS3.18 11.11)."""
    channels = event_channels(request.app)
    for event in events:
        recipients = await run_in_threadpool(store.recipients, event.uid)
        channels.send(recipients, event)


def _dicom_json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(content), status, headers=headers, media_type=_DICOM_JSON)


@router.post("/workitems", summary="Create a workitem", status_code=201)
async def create_workitem(request: Request, archive: ArchiveDep) -> Response:
    """Create a SCHEDULED workitem; its UID from ``?workitem=``, ``?{uid}``, the dataset's
    SOPInstanceUID, or generated. 409 if it exists; 400 for a wrong state or dataset."""

    async def run() -> Response:
        params = request.query_params
        uid = params.get("workitem") or params.get("AffectedSOPInstanceUID")
        if uid is None:
            bare = [key for key, value in params.multi_items() if not value]
            uid = bare[0] if bare else None
        store = WorkitemStore(archive.engine)
        body = await _json_body(request)
        created, modified = await run_in_threadpool(store.create, body, uid)
        note_audit(request, detail=f"workitem {created} created SCHEDULED")
        location = f"{dicomweb_root(request)}/workitems/{created}"
        headers = {"Location": location, "Content-Location": location}
        if modified:
            headers["Warning"] = warning_header("The UPS was created with modifications.")
        await publish(
            request, store, [Event(created, STATE_REPORT, {STATE: attribute("CS", "SCHEDULED")})]
        )
        return Response(status_code=201, headers=headers)

    return await _guarded(run)


@router.get("/workitems", summary="Search for workitems")
async def search_workitems(request: Request, archive: ArchiveDep) -> Response:
    """Workitems matching the query parameters (keywords or tags, QIDO-RS rules)."""

    async def run() -> Response:
        params = request.query_params
        keys = [(k, v) for k, v in params.multi_items() if k not in _RESERVED]
        try:
            limit = int(params.get("limit", "100"))
            offset = int(params.get("offset", "0"))
        except ValueError as exc:
            raise InvalidInput("limit and offset must be whole numbers") from exc
        if limit < 1 or offset < 0:
            raise InvalidInput("limit must be at least 1 and offset not negative")
        store = WorkitemStore(archive.engine)
        found = await run_in_threadpool(store.search, keys, min(limit, 1000), offset)
        return _dicom_json(found)

    return await _guarded(run)


@router.get("/workitems/{uid}", summary="Retrieve a workitem")
async def retrieve_workitem(uid: str, request: Request, archive: ArchiveDep) -> Response:
    """The workitem as a DICOM JSON array of one dataset; 404 if unknown."""

    async def run() -> Response:
        dataset = await run_in_threadpool(WorkitemStore(archive.engine).get, uid)
        return _dicom_json([dataset])

    return await _guarded(run)


@router.post("/workitems/{uid}", summary="Update a workitem")
async def update_workitem(uid: str, request: Request, archive: ArchiveDep) -> Response:
    """Replace the given attributes; ``?transaction=`` is required while IN PROGRESS."""

    async def run() -> Response:
        store = WorkitemStore(archive.engine)
        body = await _json_body(request)
        transaction = request.query_params.get("transaction")
        events = await run_in_threadpool(store.update, uid, body, transaction)
        note_audit(request, detail=f"workitem {uid} updated")
        await publish(request, store, events)
        return Response(status_code=200)

    return await _guarded(run)


@router.put("/workitems/{uid}/state", summary="Change the state of a workitem")
async def change_state(uid: str, request: Request, archive: ArchiveDep) -> Response:
    """IN PROGRESS (claim, with a new Transaction UID), COMPLETED or CANCELED (with it)."""

    async def run() -> Response:
        store = WorkitemStore(archive.engine)
        body = await _json_body(request)
        before = await run_in_threadpool(store.state, uid)
        events, warning = await run_in_threadpool(store.change_state, uid, body)
        after = await run_in_threadpool(store.state, uid)
        note_audit(request, detail=f"workitem {uid}: {before} -> {after}")
        await publish(request, store, events)
        headers = {"Warning": warning_header(warning)} if warning else None
        return Response(status_code=200, headers=headers)

    return await _guarded(run)


@router.post(
    "/workitems/{uid}/cancelrequest", summary="Request cancellation of a workitem", status_code=202
)
async def request_cancellation(
    uid: str, request: Request, archive: ArchiveDep, jobs: JobsDep, apps: AppsDep
) -> Response:
    """202: a SCHEDULED workitem is canceled, an IN PROGRESS one's performer is told."""

    async def run() -> Response:
        store = WorkitemStore(archive.engine)
        body = await _json_body(request)
        job_id = await run_in_threadpool(store.own_job, uid)
        app_run = await run_in_threadpool(apps.store.find_run, uid)
        if job_id is not None:  # radpacs's own AI job: cancelling the job moves the workitem
            await run_in_threadpool(jobs.cancel, job_id, "ai")
            events = [Event(uid, CANCEL_REQUESTED, {})]
        elif app_run is not None:  # a callback app's: radpacs cancels it and tells the app
            reason = _reason(body)
            events = [Event(uid, CANCEL_REQUESTED, {})]
            events += await run_in_threadpool(apps.cancel, uid, reason)
        else:
            events = await run_in_threadpool(store.request_cancel, uid, body)
        note_audit(request, detail=f"workitem {uid}: cancellation requested")
        await publish(request, store, events)
        return Response(status_code=202)

    return await _guarded(run)


@router.post("/workitems/{uid}/subscribers/{aetitle}", summary="Subscribe", status_code=201)
async def subscribe(uid: str, aetitle: str, request: Request, archive: ArchiveDep) -> Response:
    """Subscribe ``aetitle`` to one workitem, to all (global UID) or to a filter."""

    async def run() -> Response:
        params = request.query_params
        lock = params.get("deletionlock", "false").lower() == "true"
        keys = [(k, v) for k, v in params.multi_items() if k not in _RESERVED | {"deletionlock"}]
        if uid == FILTERED_SUBSCRIPTION_UID and "filter" in params:
            keys = [
                tuple(part.split("=", 1))  # type: ignore[misc]
                for part in params["filter"].split(",")
                if "=" in part
            ]
        store = WorkitemStore(archive.engine)
        events = await run_in_threadpool(store.subscribe, uid, aetitle, lock, keys)
        note_audit(request, detail=f"{aetitle} subscribed to {uid}")
        channels = event_channels(request.app)
        for event in events:
            channels.send({aetitle}, event)
        return Response(status_code=201)

    return await _guarded(run)


@router.delete("/workitems/{uid}/subscribers/{aetitle}", summary="Unsubscribe")
async def unsubscribe(uid: str, aetitle: str, request: Request, archive: ArchiveDep) -> Response:
    """Remove the subscription; from the global UID: every subscription of ``aetitle``."""

    async def run() -> Response:
        await run_in_threadpool(WorkitemStore(archive.engine).unsubscribe, uid, aetitle)
        note_audit(request, detail=f"{aetitle} unsubscribed from {uid}")
        return Response(status_code=200)

    return await _guarded(run)


@router.post(
    f"/workitems/{GLOBAL_SUBSCRIPTION_UID}/subscribers/{{aetitle}}/suspend",
    summary="Suspend a global subscription",
)
async def suspend(aetitle: str, request: Request, archive: ArchiveDep) -> Response:
    """Stop the global subscription of ``aetitle``; its subscriptions to workitems stay."""

    async def run() -> Response:
        store = WorkitemStore(archive.engine)
        await run_in_threadpool(store.unsubscribe, GLOBAL_SUBSCRIPTION_UID, aetitle, True)
        return Response(status_code=200)

    return await _guarded(run)


@router.websocket("/subscribers/{aetitle}")
async def event_channel(websocket: WebSocket, aetitle: str) -> None:
    """Open the event channel of ``aetitle``: event reports arrive as text messages."""
    await websocket.accept()
    channels = event_channels(websocket.app)
    queue = channels.open(aetitle)
    receiver = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await websocket.send_text(getter.result())
            else:
                getter.cancel()
            if receiver in done:
                if receiver.result()["type"] == "websocket.disconnect":
                    return
                receiver = asyncio.ensure_future(websocket.receive())
    except WebSocketDisconnect:
        return
    finally:
        receiver.cancel()
        channels.close(aetitle, queue)
