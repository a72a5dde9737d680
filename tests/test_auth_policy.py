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
        "frames": "1",
        "path": "7FE00010",
        "name": "nothing",
        "username": "nobody",
        "token_id": "0" * 32,
        "job_id": "0" * 32,
        "pseudonym": "RP" + "0" * 16,
        "patient_id": "NOBODY",
        "uid": "2.25.1",
        "correction_id": "1",
    }
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], template)


APP_KEYS = [key for key in _app_keys() if key[0] != "MOUNT"]
PRINCIPALS = [None, *ROLES]


@pytest.mark.parametrize("principal", PRINCIPALS, ids=lambda r: r.value if r else "no-token")
@pytest.mark.parametrize("key", APP_KEYS, ids=lambda k: f"{k[0]} {k[1]}")
def test_each_role_on_each_route(
    matrix_client: tuple[TestClient, str], key: tuple[str, str], principal: Role | None
) -> None:
    client, sop = matrix_client
    method, template = key
    permission = POLICY[key].permission
    headers = bearer(token(client, principal)) if principal else {}
    response = client.request(method, _concrete(template, sop), headers=headers)
    if permission is Permission.PUBLIC:
        assert response.status_code not in (401, 403), response.text
    elif principal is None:
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif permission in ROLE_PERMISSIONS[principal]:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text


def test_role_table_matches_the_issue() -> None:
    """Readers read, uploaders store, admins delete and manage; service reads and stores."""
    assert Permission.READ in ROLE_PERMISSIONS[Role.READER]
    assert Permission.STORE not in ROLE_PERMISSIONS[Role.READER]
    assert Permission.STORE in ROLE_PERMISSIONS[Role.UPLOADER]
    assert Permission.DELETE not in ROLE_PERMISSIONS[Role.UPLOADER]
    assert {Permission.READ, Permission.STORE} <= ROLE_PERMISSIONS[Role.SERVICE]
    assert Permission.MANAGE not in ROLE_PERMISSIONS[Role.SERVICE]
    assert {Permission.DELETE, Permission.MANAGE} <= ROLE_PERMISSIONS[Role.ADMIN]
