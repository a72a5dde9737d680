"""UPS-RS (PS3.18 11, PS3.4 Annex CC) against the standard's words: status codes, Warning
headers, the state machine with its Transaction UID rules, subscriptions and events.

The in-process tests run on SQLite and PostgreSQL; the IHE AIW-I performer runs against a
real ``radpacs serve`` with plain httpx and a real WebSocket client (no radpacs client).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from websockets.sync.client import ClientConnection, connect

from conftest import LiveServer, make_ct, multipart, to_bytes

WORKITEMS = "/dicom-web/workitems"
GLOBAL = "1.2.840.10008.5.1.4.34.5"
FILTERED = "1.2.840.10008.5.1.4.34.5.1"
JSON = {"Content-Type": "application/dicom+json"}


def cs(value: str) -> dict[str, Any]:
    return {"vr": "CS", "Value": [value]}


def workitem(study_uid: str = "", label: str = "AI lung nodules", **extra: Any) -> dict[str, Any]:
    """A SCHEDULED workitem as a Task Requester writes it (PS3.4 Table CC.2.5-3)."""
    dataset: dict[str, Any] = {
        "00741000": cs("SCHEDULED"),
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "00100020": {"vr": "LO", "Value": ["P-UPS-1"]},
        "00741204": {"vr": "LO", "Value": [label]},
        "00741202": {"vr": "LO", "Value": ["AI"]},
        "00404005": {"vr": "DT", "Value": ["20261202093000"]},
    }
    if study_uid:
        dataset["0020000D"] = {"vr": "UI", "Value": [study_uid]}
        dataset["00404021"] = {  # Input Information Sequence
            "vr": "SQ",
            "Value": [{"0020000D": {"vr": "UI", "Value": [study_uid]}}],
        }
    dataset.update(extra)
    return dataset


def state(value: str, transaction: str) -> dict[str, Any]:
    return {"00741000": cs(value), "00081195": {"vr": "UI", "Value": [transaction]}}


PERFORMED = {
    "00741216": {
        "vr": "SQ",
        "Value": [
            {
                "00404050": {"vr": "DT", "Value": ["20261202093100"]},
                "00404051": {"vr": "DT", "Value": ["20261202093500"]},
            }
        ],
    }
}


def create(client: TestClient | httpx.Client, body: dict[str, Any], uid: str = "") -> str:
    url = f"{WORKITEMS}?workitem={uid}" if uid else WORKITEMS
    response = client.post(url, content=json.dumps(body), headers=JSON)
    assert response.status_code == 201, response.text
    return str(response.headers["Location"]).rsplit("/", 1)[-1]


def test_create_retrieve_and_search(client: TestClient) -> None:
    uid = str(generate_uid())
    response = client.post(f"{WORKITEMS}?workitem={uid}", content=json.dumps(workitem()))
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/dicom-web/workitems/{uid}")
    assert "created with modifications" in response.headers["Warning"]  # priority filled

    again = client.post(f"{WORKITEMS}?workitem={uid}", content=json.dumps(workitem()))
    assert again.status_code == 409
    assert "already exists" in again.headers["Warning"]

    item = client.get(f"{WORKITEMS}/{uid}").json()[0]
    assert item["00080018"]["Value"] == [uid]
    assert item["00080016"]["Value"] == ["1.2.840.10008.5.1.4.34.6.1"]
    assert item["00741200"]["Value"] == ["MEDIUM"]
    assert client.get(f"{WORKITEMS}/1.2.3.404").status_code == 404

    other = create(
        client,
        workitem(
            label="other",
            **{
                "00100020": {"vr": "LO", "Value": ["X"]},
                "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Roe^Rick"}]},
            },
        ),
    )
    found = client.get(WORKITEMS, params={"PatientName": "doe*", "ProcedureStepState": "SCHEDULED"})
    assert [m["00080018"]["Value"][0] for m in found.json()] == [uid]
    by_tag = client.get(WORKITEMS, params={"00100020": "X"}).json()
    assert [m["00080018"]["Value"][0] for m in by_tag] == [other]
    in_range = client.get(WORKITEMS, params={"ScheduledProcedureStepStartDateTime": "20261202-"})
    assert len(in_range.json()) == 2
    outside = client.get(WORKITEMS, params={"ScheduledProcedureStepStartDateTime": "-20261201"})
    assert outside.json() == []
    bad = client.get(WORKITEMS, params={"Modality": "CT"})
    assert bad.status_code == 400 and "not supported" in bad.headers["Warning"]


def test_create_refuses_wrong_state_and_transaction(client: TestClient) -> None:
    body = workitem(**{"00741000": cs("IN PROGRESS")})
    response = client.post(WORKITEMS, content=json.dumps(body))
    assert response.status_code == 400
    assert "must be SCHEDULED" in response.headers["Warning"]
    body = workitem(**{"00081195": {"vr": "UI", "Value": ["1.2.3"]}})
    assert client.post(WORKITEMS, content=json.dumps(body)).status_code == 400
    garbage = client.post(WORKITEMS, content=b"{not json")
    assert garbage.status_code == 400 and "not JSON" in garbage.json()["detail"]


def test_state_machine_and_transaction_uid(client: TestClient) -> None:
    uid = create(client, workitem())
    url = f"{WORKITEMS}/{uid}/state"
    transaction = str(generate_uid())

    early = client.put(url, content=json.dumps(state("COMPLETED", transaction)))
    assert early.status_code == 409 and "SCHEDULED" in early.headers["Warning"]
    missing = client.put(url, content=json.dumps({"00741000": cs("IN PROGRESS")}))
    assert missing.status_code == 400 and "Transaction UID" in missing.headers["Warning"]

    assert client.put(url, content=json.dumps(state("IN PROGRESS", transaction))).status_code == 200
    twice = client.put(url, content=json.dumps(state("IN PROGRESS", str(generate_uid()))))
    assert twice.status_code == 409 and "already IN PROGRESS" in twice.headers["Warning"]
    item = client.get(f"{WORKITEMS}/{uid}").json()[0]
    assert item["00741000"]["Value"] == ["IN PROGRESS"]
    assert "00081195" not in item  # the Transaction UID stays with the performer

    # update: IN PROGRESS needs the Transaction UID, the right one
    progress = {"00741002": {"vr": "SQ", "Value": [{"00741004": {"vr": "DS", "Value": [50]}}]}}
    no_uid = client.post(f"{WORKITEMS}/{uid}", content=json.dumps(progress))
    assert no_uid.status_code == 400 and "Transaction UID is missing" in no_uid.headers["Warning"]
    wrong = client.post(f"{WORKITEMS}/{uid}?transaction=1.2.3", content=json.dumps(progress))
    assert wrong.status_code == 409 and "Transaction UID is incorrect" in wrong.headers["Warning"]
    ok = client.post(f"{WORKITEMS}/{uid}?transaction={transaction}", content=json.dumps(progress))
    assert ok.status_code == 200

    wrong_end = client.put(url, content=json.dumps(state("COMPLETED", "1.2.3")))
    assert wrong_end.status_code == 409 and "incorrect" in wrong_end.headers["Warning"]
    unfinished = client.put(url, content=json.dumps(state("COMPLETED", transaction)))
    assert unfinished.status_code == 409 and "final state" in unfinished.headers["Warning"]
    client.post(f"{WORKITEMS}/{uid}?transaction={transaction}", content=json.dumps(PERFORMED))
    assert client.put(url, content=json.dumps(state("COMPLETED", transaction))).status_code == 200

    repeat = client.put(url, content=json.dumps(state("COMPLETED", transaction)))
    assert (
        repeat.status_code == 200 and "already in the requested state" in repeat.headers["Warning"]
    )
    late = client.post(f"{WORKITEMS}/{uid}?transaction={transaction}", content=json.dumps(progress))
    assert late.status_code == 409 and "no longer be updated" in late.headers["Warning"]
    assert client.post(f"{WORKITEMS}/{uid}/cancelrequest").status_code == 409
    done = client.get(WORKITEMS, params={"ProcedureStepState": "COMPLETED"}).json()
    assert [m["00080018"]["Value"][0] for m in done] == [uid]


def test_cancel_request_of_a_scheduled_workitem(client: TestClient) -> None:
    uid = create(client, workitem())
    reason = {"00741238": {"vr": "LT", "Value": ["patient left"]}}
    response = client.post(f"{WORKITEMS}/{uid}/cancelrequest", content=json.dumps(reason))
    assert response.status_code == 202
    item = client.get(f"{WORKITEMS}/{uid}").json()[0]
    assert item["00741000"]["Value"] == ["CANCELED"]
    assert item["00741002"]["Value"][0]["00741238"]["Value"] == ["patient left"]
    assert client.post(f"{WORKITEMS}/1.2.3.404/cancelrequest").status_code == 404


def test_subscriptions_refuse_bad_requests(sqlite_client: TestClient) -> None:
    client = sqlite_client
    assert client.post(f"{WORKITEMS}/1.2.3.404/subscribers/AE1").status_code == 404
    too_long = client.post(f"{WORKITEMS}/{GLOBAL}/subscribers/{'A' * 17}")
    assert too_long.status_code == 400
    bad_filter = client.post(f"{WORKITEMS}/{FILTERED}/subscribers/AE1?Modality=CT")
    assert bad_filter.status_code == 400
    assert client.delete(f"{WORKITEMS}/{GLOBAL}/subscribers/NOBODY").status_code == 404


# -- IHE AIW-I: an external Task Performer against a real server ----------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "live").start()
    yield live
    live.stop()


def events(channel: ClientConnection, count: int) -> list[dict[str, Any]]:
    received = [json.loads(channel.recv(timeout=30)) for _ in range(count)]
    return received


def summary(event: dict[str, Any]) -> tuple[str, int, str]:
    """(workitem UID, Event Type ID, Procedure Step State or '')."""
    return (
        event["00001000"]["Value"][0],
        event["00001002"]["Value"][0],
        (event.get("00741000") or {"Value": [""]})["Value"][0],
    )


def test_aiw_i_task_performer(server: LiveServer) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/dicom-web/subscribers/PERFORMER"
    with httpx.Client(base_url=server.url, timeout=30) as http, connect(ws_url) as channel:
        # the Task Requester stores a CT series and schedules work on it
        study_uid = str(generate_uid())
        source = make_ct(study_uid=study_uid)
        body, content_type = multipart([to_bytes(source)])
        stored = http.post(
            "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
        )
        assert stored.status_code == 200, stored.text

        # the performer subscribes globally and hears of new work
        assert http.post(f"{WORKITEMS}/{GLOBAL}/subscribers/PERFORMER").status_code == 201
        uid = create(http, workitem(study_uid))
        assert summary(events(channel, 1)[0]) == (uid, 1, "SCHEDULED")

        # finds scheduled work, claims it
        found = http.get(
            WORKITEMS, params={"ProcedureStepState": "SCHEDULED", "WorklistLabel": "AI"}
        )
        assert [m["00080018"]["Value"][0] for m in found.json()] == [uid]
        transaction = str(generate_uid())
        claimed = http.put(
            f"{WORKITEMS}/{uid}/state", content=json.dumps(state("IN PROGRESS", transaction))
        )
        assert claimed.status_code == 200
        assert summary(events(channel, 1)[0]) == (uid, 1, "IN PROGRESS")
        stolen = http.put(
            f"{WORKITEMS}/{uid}/state",
            content=json.dumps(state("IN PROGRESS", str(generate_uid()))),
        )
        assert stolen.status_code == 409

        # reads its input over WADO-RS
        item = http.get(f"{WORKITEMS}/{uid}").json()[0]
        input_study = item["00404021"]["Value"][0]["0020000D"]["Value"][0]
        metadata = http.get(f"/dicom-web/studies/{input_study}/metadata")
        assert metadata.status_code == 200
        assert metadata.json()[0]["00080018"]["Value"] == [source.SOPInstanceUID]

        # reports progress
        progress = {"00741002": {"vr": "SQ", "Value": [{"00741004": {"vr": "DS", "Value": [40]}}]}}
        updated = http.post(
            f"{WORKITEMS}/{uid}?transaction={transaction}", content=json.dumps(progress)
        )
        assert updated.status_code == 200
        assert summary(events(channel, 1)[0]) == (uid, 3, "")

        # stores its result over STOW-RS into the same study
        result = make_ct(study_uid=study_uid, SeriesDescription="AI result")
        body, content_type = multipart([to_bytes(result)])
        assert (
            http.post(
                f"/dicom-web/studies/{study_uid}",
                content=body,
                headers={"Content-Type": content_type},
            ).status_code
            == 200
        )
        output = copy.deepcopy(PERFORMED)
        output["00741216"]["Value"][0]["00404033"] = {  # Output Information Sequence
            "vr": "SQ",
            "Value": [
                {
                    "0020000D": {"vr": "UI", "Value": [study_uid]},
                    "0020000E": {"vr": "UI", "Value": [result.SeriesInstanceUID]},
                }
            ],
        }
        http.post(f"{WORKITEMS}/{uid}?transaction={transaction}", content=json.dumps(output))

        # and completes it
        completed = http.put(
            f"{WORKITEMS}/{uid}/state", content=json.dumps(state("COMPLETED", transaction))
        )
        assert completed.status_code == 200
        assert summary(events(channel, 1)[0]) == (uid, 1, "COMPLETED")
        series = http.get(f"/dicom-web/studies/{study_uid}/series").json()
        assert {s["0020000E"]["Value"][0] for s in series} == {
            source.SeriesInstanceUID,
            result.SeriesInstanceUID,
        }


def test_cancel_request_reaches_the_performer(server: LiveServer) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/dicom-web/subscribers/PERF2"
    with httpx.Client(base_url=server.url, timeout=30) as http, connect(ws_url) as channel:
        uid = create(http, workitem())
        assert http.post(f"{WORKITEMS}/{uid}/subscribers/PERF2").status_code == 201
        assert summary(events(channel, 1)[0]) == (uid, 1, "SCHEDULED")  # initial state report
        transaction = str(generate_uid())
        http.put(f"{WORKITEMS}/{uid}/state", content=json.dumps(state("IN PROGRESS", transaction)))
        assert summary(events(channel, 1)[0]) == (uid, 1, "IN PROGRESS")

        reason = {"00741238": {"vr": "LT", "Value": ["wrong patient"]}}
        asked = http.post(f"{WORKITEMS}/{uid}/cancelrequest", content=json.dumps(reason))
        assert asked.status_code == 202
        cancel = events(channel, 1)[0]
        assert summary(cancel) == (uid, 2, "")
        assert cancel["00741238"]["Value"] == ["wrong patient"]

        # the performer decides to stop, with its Transaction UID
        stopped = http.put(
            f"{WORKITEMS}/{uid}/state", content=json.dumps(state("CANCELED", transaction))
        )
        assert stopped.status_code == 200
        assert summary(events(channel, 1)[0]) == (uid, 1, "CANCELED")

        # filtered subscription: only workitems whose label matches
        assert http.delete(f"{WORKITEMS}/{uid}/subscribers/PERF2").status_code == 200
        assert (
            http.post(
                f"{WORKITEMS}/{FILTERED}/subscribers/PERF2?ProcedureStepLabel=lung*"
            ).status_code
            == 201
        )
        create(http, workitem(label="brain"))
        wanted = create(http, workitem(label="lung CT"))
        assert summary(events(channel, 1)[0]) == (wanted, 1, "SCHEDULED")


# -- radpacs's own AI jobs appear as workitems -------------------------------------------


def _job_item(client: TestClient, job_id: str) -> dict[str, Any]:
    from radpacs.archive.workitems import job_workitem_uid

    response = client.get(f"{WORKITEMS}/{job_workitem_uid(job_id)}")
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()[0]
    return item


def test_ai_jobs_are_workitems(client: TestClient) -> None:
    store = client.app.state.services.jobs.store  # type: ignore[attr-defined]
    study = str(generate_uid())
    job, _ = store.submit("ai", {"model": "lungs", "study": study, "series": ""}, study_uid=study)
    item = _job_item(client, job.id)
    assert item["00741000"]["Value"] == ["SCHEDULED"]
    assert item["00741204"]["Value"] == ["AI lungs"]
    assert item["00404021"]["Value"][0]["0020000D"]["Value"] == [study]
    listed = client.get(WORKITEMS, params={"WorklistLabel": "radpacs AI"}).json()
    assert [m["00080018"]["Value"][0] for m in listed] == [item["00080018"]["Value"][0]]

    # an external performer cannot claim what radpacs's worker performs
    claim = client.put(
        f"{WORKITEMS}/{item['00080018']['Value'][0]}/state",
        content=json.dumps(state("IN PROGRESS", str(generate_uid()))),
    )
    assert claim.status_code == 409 and "own AI worker" in claim.headers["Warning"]

    running = store.claim(job.id)
    assert running is not None
    assert _job_item(client, job.id)["00741000"]["Value"] == ["IN PROGRESS"]
    store.fail(job.id, "model crashed", retry_in=0.0, attempt=running.attempts)  # retried
    assert _job_item(client, job.id)["00741000"]["Value"] == ["IN PROGRESS"]
    again = store.claim(job.id)
    assert again is not None
    store.succeed(job.id, {"stored": []}, attempt=again.attempts)
    done = _job_item(client, job.id)
    assert done["00741000"]["Value"] == ["COMPLETED"]
    assert "00404051" in done["00741216"]["Value"][0]

    failing, _ = store.submit("ai", {"model": "lungs", "study": study}, study_uid=study)
    attempt = store.claim(failing.id)
    assert attempt is not None
    store.fail(failing.id, "out of memory", retry_in=None, attempt=attempt.attempts)
    failed = _job_item(client, failing.id)
    assert failed["00741000"]["Value"] == ["CANCELED"]
    assert failed["00741002"]["Value"][0]["00741238"]["Value"] == ["out of memory"]

    store.submit("deid.study", {"study": study}, study_uid=study)
    assert len(client.get(WORKITEMS, params={"StudyInstanceUID": study}).json()) == 2


def test_cancel_request_cancels_an_ai_job(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    study = str(generate_uid())
    job, _ = services.jobs.store.submit("ai", {"model": "m", "study": study}, study_uid=study)
    uid = _job_item(client, job.id)["00080018"]["Value"][0]
    assert client.post(f"{WORKITEMS}/{uid}/cancelrequest").status_code == 202
    assert services.jobs.get(job.id).state.value == "cancelled"
    assert _job_item(client, job.id)["00741000"]["Value"] == ["CANCELED"]


def test_state_changes_are_audited(tmp_path: Path) -> None:
    from _auth_support import auth_client, bearer, token
    from radpacs.auth.roles import Role

    with auth_client(tmp_path / "data") as client:
        service = bearer(token(client, Role.SERVICE))
        reader = bearer(token(client, Role.READER))
        assert (
            client.post(WORKITEMS, content=json.dumps(workitem()), headers=reader).status_code
            == 403
        )
        created = client.post(WORKITEMS, content=json.dumps(workitem()), headers=service)
        uid = created.headers["Location"].rsplit("/", 1)[-1]
        transaction = str(generate_uid())
        claimed = client.put(
            f"{WORKITEMS}/{uid}/state",
            content=json.dumps(state("IN PROGRESS", transaction)),
            headers=service,
        )
        assert claimed.status_code == 200
        client.app.state.services.auth.audit.flush()  # type: ignore[attr-defined]
        admin = bearer(token(client, Role.ADMIN))
        events = client.get("/api/audit", params={"action": "workitem-state"}, headers=admin)
        details = [(e["action"], e["detail"], e["status"]) for e in events.json()["events"]]
        assert details == [("workitem-state", f"workitem {uid}: SCHEDULED -> IN PROGRESS", 200)]


def test_refusals_of_odd_paths_are_plain_ascii_warnings(sqlite_client: TestClient) -> None:
    """A path that is not a UID (found by schemathesis) is a 404 whose Warning stays ASCII."""
    response = sqlite_client.get(f"{WORKITEMS}/\U0009aa81\u00c4)")
    assert response.status_code == 404
    assert response.headers["Warning"].startswith('299 radpacs "The workitem ')
    assert "\u00c4" in response.json()["detail"]
    quoted = sqlite_client.post(f'{WORKITEMS}/{GLOBAL}/subscribers/A"B\u00e9')
    assert quoted.status_code == 400 and '\\"' in quoted.headers["Warning"]


@pytest.mark.parametrize(
    "body",
    [
        {"00741000": {"vr": "CS", "Value": 5}},
        {"00741000": {"vr": "CS", "Value": ["SCHEDULED"]}, "00741216": {"vr": "SQ", "Value": [3]}},
        {"nottag": {"vr": "CS"}},
        [1, 2],
        "SCHEDULED",
    ],
)
def test_malformed_datasets_are_refused(sqlite_client: TestClient, body: object) -> None:
    response = sqlite_client.post(WORKITEMS, content=json.dumps(body))
    assert response.status_code == 400
    assert "not a DICOM JSON dataset" in response.headers["Warning"]
    uid = create(sqlite_client, workitem())
    update = sqlite_client.post(f"{WORKITEMS}/{uid}", content=json.dumps(body))
    assert update.status_code == 400
    assert sqlite_client.get(f"{WORKITEMS}/{uid}").json()[0]["00741000"]["Value"] == ["SCHEDULED"]
