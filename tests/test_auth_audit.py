"""The audit trail: reads and writes of patient data are recorded and an admin can list them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from _auth_support import auth_client, bearer, services, token
from conftest import make_ct, multipart, to_bytes
from radpacs.archive.audit import AuditLog, AuditQuery, AuditRecord
from radpacs.archive.database import create_index_engine, migrate
from radpacs.auth.roles import Role


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with auth_client(tmp_path / "data") as test_client:
        yield test_client


def _audit(client: TestClient, **params: str | int) -> dict[str, object]:
    response = client.get("/api/audit", params=params, headers=bearer(token(client, Role.ADMIN)))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_store_retrieve_search_delete_and_refusals_are_recorded(client: TestClient) -> None:
    dataset = make_ct()
    study, series, sop = dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID
    body, content_type = multipart([to_bytes(dataset)])
    uploader = bearer(token(client, Role.UPLOADER))
    stored = client.post(
        "/dicom-web/studies", content=body, headers={**uploader, "Content-Type": content_type}
    )
    assert stored.status_code == 200
    reader = bearer(token(client, Role.READER))
    path = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    assert client.get(path, headers=reader).status_code == 200
    assert client.get(f"{path}/metadata", headers=reader).status_code == 200
    assert (
        client.get("/dicom-web/studies", params={"PatientID": "X"}, headers=reader).status_code
        == 200
    )
    assert client.delete(f"/dicom-web/studies/{study}", headers=reader).status_code == 403
    assert client.get(path).status_code == 401

    events = _audit(client, study=study)["events"]
    assert isinstance(events, list)
    seen = {(e["username"], e["action"], e["status"]) for e in events}
    assert ("uploader", "store", 200) in seen
    assert ("reader", "retrieve", 200) in seen
    assert ("reader", "retrieve-metadata", 200) in seen
    assert ("reader", "delete", 403) in seen
    assert ("", "retrieve", 401) in seen
    stored_event = next(e for e in events if e["action"] == "store")
    assert (stored_event["series_uid"], stored_event["sop_uid"]) == (series, sop)
    assert stored_event["client"] == "testclient"
    retrieve = next(e for e in events if e["action"] == "retrieve" and e["status"] == 200)
    assert (retrieve["study_uid"], retrieve["series_uid"], retrieve["sop_uid"]) == (
        study,
        series,
        sop,
    )

    search = _audit(client, action="search", user="reader")["events"]
    assert isinstance(search, list) and len(search) == 1
    assert search[0]["detail"] == "PatientID=X"

    admin = bearer(token(client, Role.ADMIN))
    assert client.delete(f"/dicom-web/studies/{study}", headers=admin).status_code == 204
    deleted = _audit(client, action="delete", user="admin")["events"]
    assert isinstance(deleted, list) and deleted[0]["study_uid"] == study


def test_tokens_in_the_query_are_not_written_to_the_audit(client: TestClient) -> None:
    value = token(client, Role.READER)
    client.get("/dicom-web/studies", params={"token": value, "Modality": "CT"})
    [event] = _audit(client, action="search")["events"]  # type: ignore[misc]
    assert value not in str(event) and event["detail"] == "Modality=CT"


def test_filters_paging_and_time_window(client: TestClient) -> None:
    reader = bearer(token(client, Role.READER))
    for _ in range(5):
        client.get("/dicom-web/studies", headers=reader)
    page = _audit(client, user="reader", limit=2, offset=1)
    assert page["total"] == 5 and len(page["events"]) == 2  # type: ignore[arg-type]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _audit(client, user="reader", since=future)["total"] == 0
    assert _audit(client, user="reader", until=future)["total"] == 5
    bad = client.get(
        "/api/audit", params={"since": "yesterday"}, headers=bearer(token(client, Role.ADMIN))
    )
    assert bad.status_code == 400
    assert client.get("/api/audit", headers=reader).status_code == 403


def test_logins_are_audited_with_the_name_tried(client: TestClient) -> None:
    client.post("/api/auth", data={"username": "reader", "password": "wrong password"})
    [event] = _audit(client, action="login")["events"]  # type: ignore[misc]
    assert event["username"] == "reader" and event["status"] == 401


def test_audit_rows_survive_a_restart(tmp_path: Path) -> None:
    with auth_client(tmp_path) as client:
        client.get("/dicom-web/studies", headers=bearer(token(client, Role.READER)))
    # closing flushed the queue; a new app on the same data sees the row
    with auth_client(tmp_path) as client:
        services(client).audit.flush()
        assert _audit(client, action="search")["total"] == 1


def test_events_close_together_are_written_in_one_transaction(tmp_path: Path) -> None:
    """Events recorded within one interval share a transaction; flush writes at once."""
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    migrate(engine)
    inserts: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("INSERT INTO audit_event"):
            inserts.append(1)

    audit = AuditLog(engine, interval=5.0)
    try:
        for number in range(20):
            audit.record(AuditRecord(action="search", method="GET", path=f"/{number}", status=200))
            time.sleep(0.01)  # the writer thread is awake between events
        audit.flush()  # long before the interval ends
        assert len(inserts) == 1
        assert audit.query(AuditQuery(limit=50))[1] == 20
    finally:
        audit.close()
        engine.dispose()
