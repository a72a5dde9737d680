"""REST under /api/followup on a real app: reads, corrections, CSV/JSON export, the SR
export (checked by dciodvfy from Debian's dicom3tools), the refusal of a bad SR."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom import Dataset

from _followup_support import (
    PATIENT_ID,
    VISITS,
    ohif_length_sr,
    visit_seg,
    wait_for_followup_jobs,
)
from conftest import multipart, to_bytes


@pytest.fixture(scope="module")
def phantom() -> list[tuple[list[Dataset], Dataset, dict[str, float]]]:
    return [visit_seg(index) for index in range(len(VISITS))]


def _stow(client: TestClient, datasets: list[Dataset]) -> None:
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    response = client.post(
        "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text
    # the server feeds the follow-up through background jobs
    wait_for_followup_jobs(client.app.state.services.jobs.store)  # type: ignore[attr-defined]


@pytest.fixture
def loaded(client: TestClient, phantom: Any) -> TestClient:
    for datasets, seg, _ in phantom:
        _stow(client, [*datasets, seg])
    return client


def test_reads(loaded: TestClient, phantom: Any) -> None:
    listing = loaded.get("/api/followup/patients", params={"search": "FU-PHANTOM"}).json()
    assert listing["total"] == 1
    assert listing["patients"][0]["latest_response"] == "PD"
    assert loaded.get("/api/followup/patients", params={"search": "nobody"}).json()["total"] == 0
    patient = loaded.get(f"/api/followup/patients/{PATIENT_ID}").json()
    assert [r["category"] for r in patient["responses"]["recist"]] == ["baseline", "PR", "PR", "PD"]
    assert len(patient["sources"]) == 4 and all(s["state"] == "ok" for s in patient["sources"])
    studies = loaded.get("/api/followup/studies", params={"patient_id": PATIENT_ID}).json()
    assert [s["date"] for s in studies["studies"]] == [v.date for v in VISITS]
    lesions = loaded.get(
        "/api/followup/lesions", params={"study_uid": phantom[0][0][0].StudyInstanceUID}
    ).json()
    assert len(lesions["lesions"]) == 3
    assert loaded.get("/api/followup/patients/unknown").status_code == 404


def test_merge_correction_changes_the_table_and_is_kept(loaded: TestClient) -> None:
    patient = loaded.get(f"/api/followup/patients/{PATIENT_ID}").json()
    first, second = patient["lesions"][0], patient["lesions"][1]
    response = loaded.post(
        f"/api/followup/patients/{PATIENT_ID}/corrections",
        json={"kind": "merge", "lesion": first["uid"], "other": second["uid"]},
    )
    assert response.status_code == 201, response.text
    result = response.json()["result"]
    assert len(result["lesions"]) == len(patient["lesions"]) - 1
    assert result["corrections"][0]["username"] == "local"
    # a rename through PATCH, then a withdrawal of the merge
    patched = loaded.patch(
        f"/api/followup/patients/{PATIENT_ID}/lesions/{first['uid']}",
        json={"label": "right frontal"},
    ).json()["result"]
    assert patched["lesions"][0]["label"] == "right frontal"
    merge_id = response.json()["correction"]["id"]
    after = loaded.delete(f"/api/followup/patients/{PATIENT_ID}/corrections/{merge_id}").json()
    assert len(after["lesions"]) == len(patient["lesions"])
    assert after["corrections"][0]["withdrawn_by"] == "local"
    bad = loaded.post(
        f"/api/followup/patients/{PATIENT_ID}/corrections",
        json={"kind": "merge", "lesion": first["uid"], "other": "2.25.1"},
    )
    assert bad.status_code == 404
    assert "no lesion" in bad.json()["detail"]


def test_exports(loaded: TestClient) -> None:
    response = loaded.get(f"/api/followup/patients/{PATIENT_ID}/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) == 4 * 4  # 4 lesions x 4 timepoints
    assert {row["recist"] for row in table if row["visit"] == "3"} == {"PD"}
    gone = [row for row in table if row["status"] == "disappeared"]
    assert len(gone) == 2 and all(float(row["volume_mm3"]) == 0 for row in gone)
    data = loaded.get(
        f"/api/followup/patients/{PATIENT_ID}/export", params={"format": "json"}
    ).json()
    assert len(data["rows"]) == 16 and data["rows"][0]["patient_id"] == PATIENT_ID


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is not installed")
def test_sr_export_is_valid_dicom_and_stays_out_of_the_feed(
    loaded: TestClient, phantom: Any, tmp_path: Path
) -> None:
    before = loaded.get(f"/api/followup/patients/{PATIENT_ID}").json()
    stored = loaded.post(f"/api/followup/patients/{PATIENT_ID}/sr")
    assert stored.status_code == 201, stored.text
    wait_for_followup_jobs(loaded.app.state.services.jobs.store)  # type: ignore[attr-defined]
    uids = stored.json()
    assert uids["study_uid"] == phantom[3][0][0].StudyInstanceUID  # the latest study
    body = loaded.get(
        f"/dicom-web/studies/{uids['study_uid']}/series/{uids['series_uid']}"
        f"/instances/{uids['sop_uid']}",
        headers={"Accept": "application/dicom"},
    )
    assert body.status_code == 200
    path = tmp_path / "followup-sr.dcm"
    path.write_bytes(body.content)
    check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in check.stderr.splitlines() if line.startswith("Error")]
    assert errors == [], check.stderr
    sr = pydicom.dcmread(path)
    uids_in_sr = {
        item.UID
        for group in sr.ContentSequence[-1].ContentSequence
        for item in group.ContentSequence
        if item.ValueType == "UIDREF"
    }
    assert {lesion["uid"] for lesion in before["lesions"]} <= uids_in_sr
    after = loaded.get(f"/api/followup/patients/{PATIENT_ID}").json()
    assert after["lesions"] == before["lesions"]  # the report is not read back as findings


def test_sr_with_unknown_codes_gets_a_note(client: TestClient, phantom: Any) -> None:
    datasets = phantom[0][0]
    _stow(client, datasets)
    sr = ohif_length_sr(datasets[0], [("x", (1, 1, 5, 5), 4.0)], ("X-1", "99FOO", "Wobble"))
    _stow(client, [sr])
    patient = client.get("/api/followup/patients", params={"search": PATIENT_ID}).json()
    assert patient["total"] == 0  # nothing half-written
    source = client.get(f"/api/followup/sources/{sr.SOPInstanceUID}").json()
    assert source["state"] == "refused" and "99FOO" in source["note"]
    jobs = client.app.state.services.jobs.store.find(kind="followup.study")  # type: ignore[attr-defined]
    notes = [
        (job.state.value, source)
        for job in jobs
        for source in job.result.get("sources", [])
        if source["sop_uid"] == sr.SOPInstanceUID
    ]
    assert [(state, s["state"]) for state, s in notes] == [("succeeded", "refused")]
    assert "99FOO" in notes[0][1]["note"]
    assert client.get("/api/followup/sources/1.2.3.4").status_code == 404
