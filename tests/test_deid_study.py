"""Stored studies de-identified into new studies, zips and jobs; the database pseudonym store."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from _auth_support import auth_client, bearer, token
from _deid_support import RT_WORKSHOP, walk
from conftest import LiveServer, make_ct, multipart, to_bytes
from radpacs.app import create_app
from radpacs.archive import Archive
from radpacs.archive.pseudonym_store import DatabasePseudonymStore
from radpacs.auth.policy import POLICY
from radpacs.auth.roles import Permission, Role
from radpacs.deid import PatientRecord
from radpacs.settings import load_settings

STUDY = "1.3.6.1.4.1.22213.2.6291.2.1"
FILES = sorted(RT_WORKSHOP.glob("*.dcm"))


def _store_workshop(archive: Archive) -> dict[str, str]:
    results = archive.store_many([path.read_bytes() for path in FILES])
    assert [r.outcome.value for r in results] == ["stored"] * 4
    return {f.sop_uid: f.digest for f in archive.instance_files(STUDY)}


def _instance_uids(datasets: list[Dataset]) -> set[str]:
    """Every UID value of the originals that names an instance-level thing (no class UIDs)."""
    found: set[str] = set()
    for ds in datasets:
        for elem in walk(ds):
            if elem.VR == "UI" and elem.value and "ClassUID" not in elem.keyword:
                if elem.keyword in ("TransferSyntaxUID", "CodingSchemeUID"):
                    continue
                values = elem.value if isinstance(elem.value, list) else [elem.value]
                found.update(str(v) for v in values if str(v).startswith("1.3.6.1.4.1.22213"))
    return found


def _texts(ds: Dataset) -> str:
    return "\n".join(str(elem.value) for elem in walk(ds) if elem.VR != "SQ")


def _check_copy(originals: list[Dataset], copies: list[Dataset]) -> None:
    original_uids = _instance_uids(originals)
    assert original_uids, "the fixture files should hold instance UIDs"
    for ds in copies:
        assert ds.PatientIdentityRemoved == "YES"
        text = _texts(ds) + str(ds.file_meta)
        assert "Couture" not in text and "MP15-067" not in text
        assert not [uid for uid in original_uids if uid in text]
    dose = next(ds for ds in copies if ds.Modality == "RTDOSE")
    structs = [ds for ds in copies if ds.Modality == "RTSTRUCT"]
    assert len(structs) == 3
    for struct in structs:
        (reference,) = struct.ReferencedFrameOfReferenceSequence
        assert reference.FrameOfReferenceUID == dose.FrameOfReferenceUID
        for roi in struct.StructureSetROISequence:
            assert roi.ReferencedFrameOfReferenceUID == dose.FrameOfReferenceUID
        assert struct.StudyInstanceUID == dose.StudyInstanceUID


# ------------------------------------------------------------------ pseudonym store


def test_database_pseudonym_store_records_once_and_looks_up(archive: Archive) -> None:
    store = DatabasePseudonymStore(archive.engine)
    assert store.lookup("RP0000000000000001") is None
    record = PatientRecord("RP0000000000000001", "PAT-1", "DOE^JOHN", "HOSP")
    store.record(record)
    store.record(record)
    # another process (a second store on the same database) sees it, and cannot overwrite it
    other = DatabasePseudonymStore(archive.engine)
    assert other.lookup("RP0000000000000001") == record
    other.record(PatientRecord("RP0000000000000001", "PAT-2", "ROE^JANE"))
    assert store.lookup("RP0000000000000001") == record


# ------------------------------------------------------------------ stored study flow


def test_study_deidentified_into_a_new_study(client: TestClient) -> None:
    archive: Archive = client.app.state.services.archive  # type: ignore[attr-defined]
    before = _store_workshop(archive)
    response = client.post(f"/api/deid/studies/{STUDY}", json={})
    assert response.status_code == 200, response.text
    answer = response.json()
    new_study = answer["new_study_uid"]
    assert new_study != STUDY and new_study.startswith("2.25.")
    assert answer["instances"] == 4
    copies = [archive.read_dataset(f.sop_uid) for f in archive.instance_files(new_study)]
    assert len(copies) == 4
    assert all(ds.StudyInstanceUID == new_study for ds in copies)
    _check_copy([pydicom.dcmread(path) for path in FILES], copies)
    # the original study is untouched
    assert {f.sop_uid: f.digest for f in archive.instance_files(STUDY)} == before
    # the same request again gives the same study (keyed pseudonyms), stored once
    again = client.post(f"/api/deid/studies/{STUDY}", json={"output": "store"})
    assert again.json()["new_study_uid"] == new_study
    assert len(archive.instance_files(new_study)) == 4
    # the pseudonym of the patient is recorded in the database
    lookup = client.get(f"/api/deid/pseudonyms/{copies[0].PatientID}")
    assert lookup.json()["patient_id"] == "MP15-067"
    assert lookup.json()["patient_name"] == "Gabriel Couture"


def test_study_deidentified_into_a_zip(sqlite_client: TestClient) -> None:
    archive: Archive = sqlite_client.app.state.services.archive  # type: ignore[attr-defined]
    _store_workshop(archive)
    response = sqlite_client.post(
        f"/api/deid/studies/{STUDY}",
        json={"output": "zip", "options": ["retain_longitudinal_modified_dates"]},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        names = bundle.namelist()
        copies = [pydicom.dcmread(io.BytesIO(bundle.read(name))) for name in names]
    assert len(names) == 4
    assert all(name.endswith(".dcm") and name.count("/") == 1 for name in names)
    _check_copy([pydicom.dcmread(path) for path in FILES], copies)
    assert all(ds.LongitudinalTemporalInformationModified == "MODIFIED" for ds in copies)
    # nothing was stored
    assert archive.counts()["instances"] == 4


def test_errors(sqlite_client: TestClient) -> None:
    archive: Archive = sqlite_client.app.state.services.archive  # type: ignore[attr-defined]
    _store_workshop(archive)
    unknown = sqlite_client.post("/api/deid/studies/1.2.3.4", json={})
    assert unknown.status_code == 404
    for body, status in (
        ({"options": ["no_such_option"]}, 422),
        ({"output": "tape"}, 422),
        ({"options": ["retain_uids"]}, 400),
        ({"options": [f"retain_longitudinal_{kind}_dates" for kind in ("full", "modified")]}, 400),
    ):
        response = sqlite_client.post(f"/api/deid/studies/{STUDY}", json=body)
        assert response.status_code == status, (body, response.text)
    assert sqlite_client.get("/api/deid/jobs/nope").status_code == 404
    assert sqlite_client.get("/api/deid/pseudonyms/RP0000000000000000").status_code == 404
    assert archive.counts()["instances"] == 4
    # Burned In Annotation YES: refused unless the pixels were checked, nothing stored
    study, series = generate_uid(), generate_uid()
    burned = [to_bytes(make_ct(study, series, BurnedInAnnotation=yes)) for yes in ("NO", "YES")]
    archive.store_many(burned)
    refused = sqlite_client.post(f"/api/deid/studies/{study}", json={})
    assert refused.status_code == 400 and "pixels_checked" in refused.text
    assert archive.counts()["instances"] == 6
    checked = sqlite_client.post(f"/api/deid/studies/{study}", json={"pixels_checked": True})
    assert checked.status_code == 200 and checked.json()["instances"] == 2


def test_large_study_runs_as_a_job(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", deid_job_threshold=1)
    with TestClient(create_app(settings)) as client:
        archive: Archive = client.app.state.services.archive  # type: ignore[attr-defined]
        _store_workshop(archive)
        response = client.post(f"/api/deid/studies/{STUDY}")
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        assert job["total"] == 4 and job["job_url"] == f"/api/deid/jobs/{job['id']}"
        deadline = time.monotonic() + 60
        while job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
            job = client.get(f"/api/deid/jobs/{job['id']}").json()
            assert 0 <= job["done"] <= job["total"] == 4
        assert job["state"] == "done", job
        assert job["done"] == 4 and job["error"] is None
        assert len(archive.instance_files(job["new_study_uid"])) == 4
        assert client.get("/api/deid/jobs").json()["jobs"] == [job]


def test_a_second_attempt_meets_the_first_attempt_s_copy(archive: Archive) -> None:
    """What a job retried after a crash does: the same new study, nothing duplicated."""
    from radpacs.deid import Anonymizer
    from radpacs.deid.study import store_copy

    _store_workshop(archive)
    copies = [
        store_copy(
            archive, Anonymizer(b"s" * 32, [], store=DatabasePseudonymStore(archive.engine)), STUDY
        )
        for _ in range(2)
    ]
    assert copies[0] == copies[1] and copies[0].instances == 4
    assert len(archive.instance_files(copies[0].study_uid)) == 4


def test_a_job_survives_a_killed_server_and_every_process_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued job outlives the SIGKILLed server that took it; a second server process
    answers for it; the restarted server's worker runs it to the end."""
    monkeypatch.setenv("RADPACS_DEID_JOB_THRESHOLD", "1")
    monkeypatch.setenv("RADPACS_AI_EMBEDDED_WORKER", "false")
    data = tmp_path / "live"
    first, other = LiveServer(data).start(), LiveServer(data).start()
    try:
        body, content_type = multipart([path.read_bytes() for path in FILES])
        stored = httpx.post(
            f"{first.url}/dicom-web/studies", content=body, headers={"Content-Type": content_type}
        )
        assert stored.status_code == 200, stored.text
        response = httpx.post(f"{first.url}/api/deid/studies/{STUDY}", json={})
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        assert (job["state"], job["done"], job["total"]) == ("running", 0, 4)
        seen = httpx.get(f"{other.url}/api/deid/jobs/{job['id']}")
        assert seen.status_code == 200 and seen.json()["state"] == "running"
        listed = httpx.get(f"{other.url}/api/deid/jobs", params={"study": STUDY}).json()
        assert [(j["id"], j["done"], j["total"]) for j in listed["jobs"]] == [(job["id"], 0, 4)]
        assert first.process is not None
        first.process.kill()  # SIGKILL: no shutdown, nothing written on the way out
        first.process.wait()
    finally:
        first.stop()
        other.stop()
    monkeypatch.setenv("RADPACS_AI_EMBEDDED_WORKER", "true")
    restarted = LiveServer(data).start()
    try:
        url = f"{restarted.url}/api/deid/jobs/{job['id']}"
        deadline = time.monotonic() + 90
        while job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = httpx.get(url).json()
            assert 0 <= job["done"] <= job["total"] == 4
        assert job["state"] == "done", job
        assert job["done"] == 4 and job["error"] is None
        copies = httpx.get(f"{restarted.url}/dicom-web/studies/{job['new_study_uid']}/instances")
        assert copies.status_code == 200 and len(copies.json()) == 4
    finally:
        restarted.stop()


# ------------------------------------------------------------------ access


def test_only_admins_look_up_pseudonyms(tmp_path: Path) -> None:
    with auth_client(tmp_path) as client:
        archive: Archive = client.app.state.services.archive  # type: ignore[attr-defined]
        _store_workshop(archive)
        reader = bearer(token(client, Role.READER))
        admin = bearer(token(client, Role.ADMIN))
        uploader = bearer(token(client, Role.UPLOADER))
        assert client.post(f"/api/deid/studies/{STUDY}", headers=reader).status_code == 403
        made = client.post(f"/api/deid/studies/{STUDY}", headers=uploader)
        assert made.status_code == 200, made.text
        new_study = made.json()["new_study_uid"]
        pseudonym = archive.read_dataset(archive.instance_files(new_study)[0].sop_uid).PatientID
        path = f"/api/deid/pseudonyms/{pseudonym}"
        assert client.get(path).status_code == 401
        assert client.get(path, headers=reader).status_code == 403
        assert client.get(path, headers=uploader).status_code == 403
        found = client.get(path, headers=admin)
        assert found.status_code == 200
        assert found.json() == {
            "pseudonym": pseudonym,
            "patient_id": "MP15-067",
            "patient_name": "Gabriel Couture",
            "issuer_of_patient_id": "",
        }
        events = client.get("/api/audit", headers=admin).json()
        actions = {event["action"] for event in events.get("events", events)}
        assert {"deid-study", "deid-lookup"} <= actions


def test_policy_names_the_routes() -> None:
    assert POLICY[("GET", "/api/deid/pseudonyms/{pseudonym}")].permission is Permission.MANAGE
    assert POLICY[("GET", "/api/deid/pseudonyms/{pseudonym}")].action == "deid-lookup"
    assert POLICY[("POST", "/api/deid/studies/{study}")].permission is Permission.STORE
    assert POLICY[("POST", "/api/deid/studies/{study}")].action == "deid-study"
    assert POLICY[("GET", "/api/deid/jobs/{job_id}")].permission is Permission.READ
