"""Default deny: every route has a policy entry, unknown routes are refused, and each role
gets exactly what the policy table grants on each route family."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.websockets import WebSocketDisconnect

from _auth_support import ROLES, auth_client, bearer, token
from conftest import make_ct, multipart, to_bytes
from radpacs.app import create_app
from radpacs.auth.policy import POLICY
from radpacs.auth.roles import ROLE_PERMISSIONS, Permission, Role
from radpacs.http.routes import route_entries
from radpacs.settings import load_settings


def _app_keys() -> list[tuple[str, str]]:
    app = create_app(load_settings(data_dir=Path("unused"), auth_enabled=True))
    return [key for entry in route_entries(app) for key in entry.policy_keys]


def test_every_route_of_the_application_has_a_policy_entry() -> None:
    missing = [key for key in _app_keys() if key not in POLICY]
    assert not missing, f"routes without an entry in radpacs.auth.policy.POLICY: {missing}"


def test_a_route_missing_from_the_policy_is_refused(tmp_path: Path) -> None:
    with auth_client(tmp_path) as client:
        client.app.add_api_route("/api/forgotten", lambda: {"ok": True})  # type: ignore[attr-defined]
        client.app.router.routes.append(  # type: ignore[attr-defined]
            Mount("/static-thing", app=PlainTextResponse("mounted"))
        )
        admin = bearer(token(client, Role.ADMIN))
        for path in ("/api/forgotten", "/static-thing/x"):
            response = client.get(path, headers=admin)
            assert response.status_code == 403, path
            assert "not in the access policy" in response.json()["detail"]
        assert client.get("/api/no-such-route", headers=admin).status_code == 404


# --------------------------------------------------------------------- role matrix

UIDS = {"study": "1.2.826.0.1.3680043.8.498.1", "series": "1.2.826.0.1.3680043.8.498.2"}


@pytest.fixture(scope="module")
def matrix_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    with auth_client(tmp_path_factory.mktemp("matrix"), open_enrolment=True) as client:
        dataset = make_ct(UIDS["study"], UIDS["series"])
        body, content_type = multipart([to_bytes(dataset)])
        stored = client.post(
            "/dicom-web/studies",
            content=body,
            headers={**bearer(token(client, Role.ADMIN)), "Content-Type": content_type},
        )
        assert stored.status_code == 200
        yield client, str(dataset.SOPInstanceUID)


def _concrete(template: str, sop: str) -> str:
    values = {
        "study": UIDS["study"],
        "series": UIDS["series"],
        "instance": sop,
        "sop_uid": sop,
        "plan": sop,
        "frames": "1",
        "path": "7FE00010",
        "name": "nothing",
        "username": "nobody",
        "token_id": "0" * 32,
        "job_id": "0" * 32,
        "node": "nowhere",
        "item_id": "nothing",
        "pseudonym": "RP" + "0" * 16,
        "patient_id": "NOBODY",
        "uid": "2.25.1",
        "correction_id": "1",
        "aetitle": "NOBODY",
    }
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], template)


APP_KEYS = [key for key in _app_keys() if key[0] != "MOUNT"]
PRINCIPALS = [None, *ROLES]


# Written by hand from docs/auth.md ("Roles", "Public"), not from POLICY or ROLE_PERMISSIONS.
MAY: dict[Role, set[str]] = {
    Role.READER: {"authenticated", "read", "compute"},
    Role.UPLOADER: {"authenticated", "read", "compute", "store"},
    Role.SERVICE: {"authenticated", "read", "compute", "store"},
    Role.ADMIN: {"authenticated", "read", "compute", "store", "delete", "manage"},
}

OK = {200}
GONE = {204, 404}  # a DELETE: the first role deletes, the next ones find nothing
NO_BODY = {400, 415, 422}  # the test sends no body: a documented refusal of the input
MISSING = {404}  # the test names a job, token, user or pseudonym that does not exist

# (method, path template) -> (what it needs, what an allowed caller gets for the test input)
EXPECTED: dict[tuple[str, str], tuple[str, set[int]]] = {
    ("GET", "/openapi.json"): ("public", OK),
    ("GET", "/docs"): ("public", OK),
    ("GET", "/docs/oauth2-redirect"): ("public", OK),
    ("GET", "/redoc"): ("public", OK),
    ("GET", "/api"): ("public", OK),
    ("GET", "/api/health"): ("public", OK),
    ("GET", "/"): ("public", OK),
    ("GET", "/rt"): ("public", OK),
    ("GET", "/favicon.ico"): ("public", OK),
    ("GET", "/viewer"): ("public", OK),
    ("GET", "/viewer/{path:path}"): ("public", OK | MISSING),
    ("POST", "/api/auth"): ("public", NO_BODY),
    ("POST", "/api/session"): ("public", NO_BODY),
    ("POST", "/api/account"): ("public", NO_BODY),
    ("GET", "/api/auth/me"): ("authenticated", OK),
    ("POST", "/api/auth/revoke"): ("authenticated", {204}),
    ("DELETE", "/api/session"): ("authenticated", {204}),
    ("GET", "/dicom-web/studies"): ("read", OK),
    ("GET", "/dicom-web/series"): ("read", OK),
    ("GET", "/dicom-web/instances"): ("read", OK),
    ("GET", "/dicom-web/studies/{study}/series"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/instances"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/metadata"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/metadata"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata"): (
        "read",
        OK | MISSING,
    ),
    ("GET", "/dicom-web/studies/{study}"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{instance}"): (
        "read",
        OK | MISSING,
    ),
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}"): (
        "read",
        OK | MISSING,
    ),
    (
        "GET",
        "/dicom-web/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path:path}",
    ): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/rendered"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/rendered"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered"): (
        "read",
        OK | MISSING,
    ),
    (
        "GET",
        "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
    ): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/thumbnail"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/thumbnail"): ("read", OK | MISSING),
    ("GET", "/dicom-web/studies/{study}/series/{series}/instances/{instance}/thumbnail"): (
        "read",
        OK | MISSING,
    ),
    (
        "GET",
        "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
    ): ("read", OK | MISSING),
    ("GET", "/dicom-web/patients"): ("read", OK),
    # by series or instance UID alone (beyond PS3.18, dicomweb/by_uid.py): WADO-RS reading
    ("GET", "/dicom-web/series/{series}"): ("read", OK | MISSING),
    ("GET", "/dicom-web/series/{series}/metadata"): ("read", OK | MISSING),
    ("GET", "/dicom-web/series/{series}/rendered"): ("read", OK | MISSING),
    ("GET", "/dicom-web/series/{series}/thumbnail"): ("read", OK | MISSING),
    ("GET", "/dicom-web/instances/{instance}"): ("read", OK | MISSING),
    ("GET", "/dicom-web/instances/{instance}/metadata"): ("read", OK | MISSING),
    ("GET", "/dicom-web/instances/{instance}/frames/{frames}"): ("read", OK | MISSING),
    ("GET", "/dicom-web/instances/{instance}/frames/{frames}/rendered"): ("read", OK | MISSING),
    ("GET", "/dicom-web/instances/{instance}/rendered"): ("read", OK | MISSING),
    ("GET", "/dicom-web/instances/{instance}/thumbnail"): ("read", OK | MISSING),
    ("POST", "/dicom-web/studies"): ("store", NO_BODY),
    ("POST", "/dicom-web/studies/{study}"): ("store", NO_BODY),
    ("DELETE", "/dicom-web/studies/{study}"): ("delete", GONE),
    ("DELETE", "/dicom-web/studies/{study}/series/{series}"): ("delete", GONE),
    ("DELETE", "/dicom-web/studies/{study}/series/{series}/instances/{instance}"): (
        "delete",
        GONE,
    ),
    ("POST", "/api/anonymize"): ("compute", NO_BODY),
    ("POST", "/api/dvh"): ("compute", NO_BODY),
    ("POST", "/api/rt/dvh"): ("compute", NO_BODY),
    ("POST", "/api/rt/dvh/store"): ("store", NO_BODY),
    ("GET", "/api/rt/studies/{study}/objects"): ("read", OK | MISSING),
    ("GET", "/api/rt/plans/{plan}/statistics"): ("read", MISSING),  # the instance is a CT
    ("POST", "/api/dvh/plot"): ("compute", NO_BODY),
    ("POST", "/api/deid/studies/{study}"): ("store", OK | MISSING),
    ("GET", "/api/deid/jobs"): ("read", OK),
    ("GET", "/api/deid/jobs/{job_id}"): ("read", MISSING),
    ("GET", "/api/deid/pseudonyms/{pseudonym}"): ("manage", MISSING),
    ("DELETE", "/api/tokens/{token_id}"): ("manage", {204}),
    ("GET", "/api/users"): ("manage", OK),
    ("POST", "/api/users"): ("manage", NO_BODY),
    ("DELETE", "/api/users/{username}"): ("manage", MISSING),
    ("GET", "/api/audit"): ("manage", OK),
    ("GET", "/api/data"): ("read", OK),
    ("GET", "/api/data/{name}"): ("read", MISSING),
    ("GET", "/api/counts"): ("read", OK),
    ("POST", "/api/upload-zip"): ("store", NO_BODY),
    ("GET", "/api/ai/models"): ("read", OK),
    ("GET", "/api/ai/jobs"): ("read", OK),
    ("GET", "/api/ai/jobs/{job_id}"): ("read", MISSING),
    ("GET", "/api/ai/jobs/{job_id}/result"): ("read", MISSING),
    ("POST", "/api/ai/jobs"): ("store", NO_BODY),
    ("POST", "/api/ai/jobs/{job_id}/cancel"): ("store", MISSING),
    ("POST", "/api/ai/batch"): ("store", NO_BODY),
    ("GET", "/followup"): ("public", OK),
    ("GET", "/tracking"): ("public", OK),
    ("GET", "/api/followup/patients"): ("read", OK),
    ("GET", "/api/followup/patients/{patient_id}"): ("read", MISSING),
    ("GET", "/api/followup/studies"): ("read", NO_BODY),
    ("GET", "/api/followup/lesions"): ("read", NO_BODY),
    ("GET", "/api/followup/sources/{sop_uid}"): ("read", MISSING),
    ("GET", "/api/followup/patients/{patient_id}/export"): ("read", MISSING),
    ("POST", "/api/followup/patients/{patient_id}/corrections"): ("store", NO_BODY),
    ("PATCH", "/api/followup/patients/{patient_id}/lesions/{uid}"): ("store", NO_BODY),
    ("DELETE", "/api/followup/patients/{patient_id}/corrections/{correction_id}"): (
        "store",
        MISSING,
    ),
    ("POST", "/api/followup/patients/{patient_id}/sr"): ("store", MISSING),
    ("GET", "/api/dimse/nodes"): ("read", OK),
    ("POST", "/api/dimse/nodes/{node}/echo"): ("read", MISSING),
    ("POST", "/api/dimse/nodes/{node}/query"): ("read", NO_BODY),
    ("POST", "/api/dimse/nodes/{node}/send"): ("manage", NO_BODY),
    ("POST", "/api/dimse/nodes/{node}/retrieve"): ("store", NO_BODY),
    ("GET", "/api/dimse/jobs"): ("read", OK),
    ("GET", "/api/dimse/jobs/{job_id}"): ("read", MISSING),
    ("POST", "/api/worklist"): ("store", NO_BODY),
    ("GET", "/api/worklist"): ("read", OK),
    ("DELETE", "/api/worklist/{item_id}"): ("store", MISSING),
    ("POST", "/dicom-web/workitems"): ("store", NO_BODY),
    ("GET", "/dicom-web/workitems"): ("read", OK),
    ("GET", "/dicom-web/workitems/{uid}"): ("read", MISSING),
    ("POST", "/dicom-web/workitems/{uid}"): ("store", NO_BODY),
    ("PUT", "/dicom-web/workitems/{uid}/state"): ("store", NO_BODY | MISSING),
    ("POST", "/dicom-web/workitems/{uid}/cancelrequest"): ("store", MISSING),
    ("POST", "/dicom-web/workitems/{uid}/subscribers/{aetitle}"): ("read", MISSING),
    ("DELETE", "/dicom-web/workitems/{uid}/subscribers/{aetitle}"): ("read", MISSING),
    ("POST", "/dicom-web/workitems/1.2.840.10008.5.1.4.34.5/subscribers/{aetitle}/suspend"): (
        "read",
        MISSING,
    ),
    # the UPS-RS event channel: OK means the WebSocket opens
    ("WEBSOCKET", "/dicom-web/subscribers/{aetitle}"): ("read", OK),
    ("PUT", "/api/instances/{sop_uid}/qc"): ("store", NO_BODY),
    ("GET", "/api/instances/{sop_uid}/qc"): ("read", OK | MISSING),  # after the DELETEs: 404
    ("GET", "/api/qc"): ("read", OK),
    ("GET", "/api/qc/studies"): ("read", OK),
    ("POST", "/api/apps"): ("manage", NO_BODY),
    ("GET", "/api/apps"): ("read", OK),
    ("GET", "/api/apps/{name}"): ("read", MISSING),
    ("PATCH", "/api/apps/{name}"): ("manage", NO_BODY | MISSING),
    ("DELETE", "/api/apps/{name}"): ("manage", MISSING),
    ("POST", "/api/apps/{name}/analyses"): ("store", NO_BODY),
    ("GET", "/api/apps/analyses"): ("read", OK),
    ("GET", "/api/apps/analyses/{uid}"): ("read", MISSING),
    ("DELETE", "/api/apps/analyses/{uid}"): ("store", MISSING),
    ("POST", "/api/apps/analyses/{uid}/result"): ("store", NO_BODY),
}


def test_the_hand_written_table_names_every_route() -> None:
    """A route added without a line in EXPECTED (and in docs/auth.md) fails here."""
    assert sorted(set(APP_KEYS) - set(EXPECTED)) == []
    assert sorted(set(EXPECTED) - set(APP_KEYS)) == []


@pytest.mark.parametrize("principal", PRINCIPALS, ids=lambda r: r.value if r else "no-token")
@pytest.mark.parametrize("key", APP_KEYS, ids=lambda k: f"{k[0]} {k[1]}")
def test_each_role_on_each_route(
    matrix_client: tuple[TestClient, str], key: tuple[str, str], principal: Role | None
) -> None:
    client, sop = matrix_client
    method, template = key
    if key not in EXPECTED:
        pytest.fail(f"{method} {template} has no line in EXPECTED (written from docs/auth.md)")
    needs, allowed = EXPECTED[key]
    headers = bearer(token(client, principal)) if principal else {}
    if method == "WEBSOCKET":
        may = needs == "public" or (principal is not None and needs in MAY[principal])
        assert _websocket_opens(client, _concrete(template, sop), headers) == may
        return
    response = client.request(method, _concrete(template, sop), headers=headers)
    if needs == "public":
        assert response.status_code in allowed, response.text
    elif principal is None:
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif needs in MAY[principal]:
        assert response.status_code in allowed, response.text
    else:
        assert response.status_code == 403, response.text


def _websocket_opens(client: TestClient, path: str, headers: dict[str, str]) -> bool:
    """Whether the WebSocket handshake succeeds; a refusal closes it with 1008."""
    try:
        with client.websocket_connect(path, headers=headers):
            return True
    except WebSocketDisconnect as closed:
        assert closed.code == 1008
        return False


def test_role_table_matches_the_issue() -> None:
    """Readers read, uploaders store, admins delete and manage; service reads and stores."""
    assert Permission.READ in ROLE_PERMISSIONS[Role.READER]
    assert Permission.STORE not in ROLE_PERMISSIONS[Role.READER]
    assert Permission.STORE in ROLE_PERMISSIONS[Role.UPLOADER]
    assert Permission.DELETE not in ROLE_PERMISSIONS[Role.UPLOADER]
    assert {Permission.READ, Permission.STORE} <= ROLE_PERMISSIONS[Role.SERVICE]
    assert Permission.MANAGE not in ROLE_PERMISSIONS[Role.SERVICE]
    assert {Permission.DELETE, Permission.MANAGE} <= ROLE_PERMISSIONS[Role.ADMIN]
