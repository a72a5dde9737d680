"""Metadata without PHI (seed 002's ``phi=False``): ``?phi=false`` on the metadata routes and
the client, and no-PHI tokens that force it on metadata and QIDO and refuse whole instances,
against a live server with auth on. The attribute list is the deid profile's (PS3.15 E.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from conftest import LiveServer, make_ct, multipart, to_bytes
from radpacs.auth.policy import NO_PHI_ROUTES, POLICY
from radpacs.auth.roles import Principal, Role
from radpacs.client import AsyncRadpacsClient, RadpacsClient
from radpacs.deid.json_view import without_phi

PASSWORD = "a long enough password"


def test_without_phi_walks_sequences_and_drops_private() -> None:
    dataset = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "00100030": {"vr": "DA", "Value": ["19700101"]},
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00091010": {"vr": "LO", "Value": ["secret"]},
        "00081110": {  # Referenced Study Sequence (X/Z/U*): items kept, walked
            "vr": "SQ",
            "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}, "00100020": {"vr": "LO"}}],
        },
        "00321032": {"vr": "PN", "Value": [{"Alphabetic": "Dr^Who"}]},  # X
    }
    (clean,) = without_phi([dataset])
    assert clean["00100010"] == {"vr": "PN"}
    assert clean["00100030"] == {"vr": "DA"}
    assert clean["00080060"]["Value"] == ["CT"]
    assert "00091010" not in clean and "00321032" not in clean
    assert clean["00081110"]["Value"][0]["00081155"]["Value"] == ["1.2.3"]
    assert clean["00120062"]["Value"] == ["YES"]
    assert dataset["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane"}]  # input unchanged


def test_provider_scope_and_claim_make_a_no_phi_principal() -> None:
    roles = frozenset({Role.SERVICE})
    assert Principal("ai", roles).phi_allowed
    assert Principal("ai", roles, claims={"scope": "openid profile"}).phi_allowed
    assert not Principal("ai", roles, claims={"scope": "openid radpacs:no-phi"}).phi_allowed
    assert not Principal("ai", roles, claims={"phi": False}).phi_allowed
    assert set(POLICY) >= NO_PHI_ROUTES  # no misspelt route in the no-PHI list
    assert ("GET", "/api/worklist") not in NO_PHI_ROUTES


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RADPACS_ADMIN_USER", "root")
    monkeypatch.setenv("RADPACS_ADMIN_PASSWORD", PASSWORD)
    live = LiveServer(tmp_path / "data", ["--auth"]).start()
    yield live
    live.stop()


def _login(url: str, **extra: object) -> str:
    response = httpx.post(
        f"{url}/api/auth", json={"username": "root", "password": PASSWORD, **extra}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _ct() -> Dataset:
    ct = make_ct(PatientName="Doe^Jane", PatientID="PID-77", PatientBirthDate="19700101")
    other = Dataset()
    other.PatientID = "OLD-ID"
    ct.OtherPatientIDsSequence = Sequence([other])
    return ct


def test_phi_parameter_and_no_phi_token(server: LiveServer) -> None:
    full = _login(server.url)
    no_phi = _login(server.url, phi=False)
    ct = _ct()
    auth = {"Authorization": f"Bearer {full}"}
    body, content_type = multipart([to_bytes(ct)])
    stored = httpx.post(
        f"{server.url}/dicom-web/studies",
        content=body,
        headers={**auth, "Content-Type": content_type},
    )
    assert stored.status_code == 200, stored.text
    study = ct.StudyInstanceUID
    path = f"/dicom-web/studies/{study}/metadata"
    with httpx.Client(base_url=server.url) as http:
        plain = http.get(path, headers=auth)
        assert plain.json()[0]["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane"}]
        hidden = http.get(path, params={"phi": "false"}, headers=auth)
        body = hidden.json()[0]
        assert "Value" not in body["00100010"] and "Value" not in body["00100020"]
        assert "00101002" not in body  # OtherPatientIDsSequence (X)
        assert body["0020000D"]["Value"] == [study]  # UIDs kept: frames stay reachable
        # the variants never share an ETag, and each revalidates only as itself
        assert plain.headers["etag"] != hidden.headers["etag"]
        assert hidden.headers["cache-control"] == "private"
        again = http.get(path, headers={**auth, "If-None-Match": hidden.headers["etag"]})
        assert again.status_code == 200 and "Doe^Jane" in again.text
        same = http.get(
            path, params={"phi": "false"}, headers={**auth, "If-None-Match": hidden.headers["etag"]}
        )
        assert same.status_code == 304
        assert http.get(path, params={"phi": "maybe"}, headers=auth).status_code == 400

        # a no-PHI token gets no PHI whatever it asks, and the cached full body never leaks
        forced = {"Authorization": f"Bearer {no_phi}"}
        for params in ({}, {"phi": "true"}):
            answer = http.get(path, params=params, headers=forced)
            assert answer.status_code == 200 and "Doe^Jane" not in answer.text
            assert "PID-77" not in answer.text and "OLD-ID" not in answer.text
        revalidate = http.get(path, headers={**forced, "If-None-Match": plain.headers["etag"]})
        assert revalidate.status_code == 200 and "Doe^Jane" not in revalidate.text
        series = f"/dicom-web/studies/{study}/series/{ct.SeriesInstanceUID}"
        instance = f"{series}/instances/{ct.SOPInstanceUID}"
        for route in (f"{series}/metadata", f"{instance}/metadata"):
            assert "Doe^Jane" not in http.get(route, headers=forced).text
        qido = http.get("/dicom-web/studies", headers=forced)
        assert qido.status_code == 200 and qido.json()[0]["0020000D"]["Value"] == [study]
        assert "Doe^Jane" not in qido.text and "PID-77" not in qido.text
        assert "Doe^Jane" in http.get("/dicom-web/studies", headers=auth).text
        probe = http.get("/dicom-web/studies", params={"PatientName": "Doe*"}, headers=forced)
        assert probe.status_code == 400 and "PatientName" in probe.text
        assert http.get(f"/dicom-web/studies/{study}", headers=forced).status_code == 403
        assert http.get("/dicom-web/patients", headers=forced).status_code == 403
        assert http.get(f"/dicom-web/studies/{study}", headers=auth).status_code == 200
        frames = http.get(
            f"{instance}/frames/1",
            headers={**forced, "Accept": 'multipart/related; type="application/octet-stream"'},
        )
        assert frames.status_code == 200
        me = http.get("/api/auth/me", headers=forced)
        assert me.status_code == 200
        # REST routes that answer identity are closed to it; those that do not stay open
        worklist = http.get("/api/worklist", headers=forced)
        assert worklist.status_code == 403 and "no-PHI" in worklist.text
        assert http.get("/api/worklist", headers=auth).status_code == 200
        assert http.get("/api/qc", headers=forced).status_code == 200

    with RadpacsClient(server.url, full) as client:
        (with_phi,) = client.metadata(study)
        (without,) = client.metadata(study, phi=False)
        assert with_phi.get_value_as_string("PatientName") == "Doe^Jane"
        assert without.get_value_as_string("PatientName") == ""
        assert without.get_value_as_string("PatientIdentityRemoved") == "YES"

    async def flow() -> None:
        async with AsyncRadpacsClient(server.url, no_phi) as client:
            (item,) = await client.metadata(study, ct.SeriesInstanceUID, ct.SOPInstanceUID)
            assert item.get_value_as_string("PatientID") == ""

    asyncio.run(flow())
