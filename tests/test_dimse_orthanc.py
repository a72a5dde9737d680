"""radpacs and Orthanc (Debian's package) as DICOM peers of each other: Orthanc queries and
moves from radpacs, radpacs sends to, queries and retrieves from Orthanc (its SCU), also
through the REST API as jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from _dimse_support import Node, Orthanc, free_port, running_node
from conftest import make_ct, to_bytes
from radpacs.app import create_app
from radpacs.dimse import scu
from radpacs.errors import RemoteNodeError
from radpacs.settings import load_settings


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Orthanc]]:
    radpacs_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", radpacs_port)
    try:
        with running_node(
            tmp_path / "data", dimse_port=radpacs_port, dimse_nodes={"orthanc": orthanc.node}
        ) as node:
            yield node, orthanc
    finally:
        orthanc.stop()


def _study(patient: str, count: int = 2) -> list[bytes]:
    study, series = generate_uid(), generate_uid()
    return [
        to_bytes(make_ct(study, series, PatientID=patient, PatientName=f"{patient}^Test",
                         InstanceNumber=i + 1))
        for i in range(count)
    ]  # fmt: skip


def _orthanc_job(orthanc: Orthanc, answer: dict[str, object]) -> None:
    """Wait for an asynchronous Orthanc job (answers with ``ID``) to succeed; an answer
    without one (Orthanc 1.10 runs a move synchronously) is already done."""
    if "ID" not in answer:
        return
    job_id = answer["ID"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = orthanc.http.get(f"/jobs/{job_id}").json()
        if state["State"] == "Success":
            return
        assert state["State"] != "Failure", state
        time.sleep(0.1)
    raise AssertionError(f"Orthanc job {job_id} did not end")


def test_orthanc_echoes_and_finds_studies_in_radpacs(pair: tuple[Node, Orthanc]) -> None:
    node, orthanc = pair
    files = _study("FIND1") + _study("OTHER")
    node.archive.store_many(files)
    assert orthanc.http.post("/modalities/radpacs/echo", json={}).status_code == 200
    answer = orthanc.http.post(
        "/modalities/radpacs/query",
        json={"Level": "Study", "Query": {"PatientID": "FIND*", "StudyInstanceUID": ""}},
    ).json()
    found = orthanc.http.get(f"/queries/{answer['ID']}/answers?expand&simplify").json()
    assert [match["PatientID"] for match in found] == ["FIND1"]


def test_orthanc_moves_a_study_from_radpacs_to_itself(pair: tuple[Node, Orthanc]) -> None:
    node, orthanc = pair
    results = node.archive.store_many(_study("MOVE1", 3))
    study = results[0].study_uid
    moved = orthanc.http.post(
        "/modalities/radpacs/move",
        json={
            "Level": "Study",
            "Resources": [{"StudyInstanceUID": study}],
            "TargetAet": "ORTHANC",
            "Asynchronous": True,
        },
    )
    assert moved.status_code == 200, moved.text
    _orthanc_job(orthanc, moved.json())
    assert orthanc.sop_uids() == {r.sop_instance_uid for r in results}


def test_radpacs_sends_queries_and_retrieves_from_orthanc(
    pair: tuple[Node, Orthanc], tmp_path: Path
) -> None:
    node, orthanc = pair
    remote = node.settings.dimse_nodes["orthanc"]
    scu.echo(node.settings, remote)
    # send: C-STORE from radpacs's archive to Orthanc
    sent = node.archive.store_many(_study("SENT", 2))
    report = scu.send(node.settings, remote, node.archive, sent[0].study_uid)
    assert (report.completed, report.failed) == (2, 0)
    assert orthanc.sop_uids() == {r.sop_instance_uid for r in sent}
    # studies only Orthanc has, for C-MOVE and C-GET into radpacs
    moved, got = _study("MOVED", 2), _study("GOT", 3)
    for payload in moved + got:
        assert orthanc.http.post("/instances", content=payload).status_code == 200
    found = scu.query(
        node.settings, remote, "STUDY", {"PatientID": "MOVED", "StudyInstanceUID": ""}
    )
    [study] = [str(match.StudyInstanceUID) for match in found]
    progress: list[tuple[int, int]] = []
    report = scu.move(node.settings, remote, study, progress=lambda d, t: progress.append((d, t)))
    assert report.completed == 2 and progress[-1] == (2, 2)
    assert len(node.archive.instance_files(study)) == 2  # arrived through radpacs's own SCP
    got_study = scu.query(
        node.settings, remote, "STUDY", {"PatientID": "GOT", "StudyInstanceUID": ""}
    )
    got_uid = str(got_study[0].StudyInstanceUID)
    report = scu.get(node.settings, remote, node.archive, got_uid)
    assert (report.completed, report.failed) == (3, 0)
    assert len(node.archive.instance_files(got_uid)) == 3


def test_an_unreachable_node_is_a_clear_error(tmp_path: Path) -> None:
    nowhere = {"ae_title": "NOWHERE", "host": "127.0.0.1", "port": free_port()}
    with (
        running_node(tmp_path / "data", dimse_nodes={"nowhere": nowhere}) as node,
        pytest.raises(RemoteNodeError, match="NOWHERE"),
    ):
        scu.echo(node.settings, node.settings.dimse_nodes["nowhere"])


def test_the_rest_api_drives_the_scu_as_jobs(tmp_path: Path) -> None:
    radpacs_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", radpacs_port)
    try:
        for payload in _study("API", 2):
            orthanc.http.post("/instances", content=payload)
        settings = load_settings(
            data_dir=tmp_path / "data",
            dimse_enabled=True,  # the app's own DICOM node receives the C-MOVE
            dimse_port=radpacs_port,
            dimse_nodes={"orthanc": orthanc.node},
        )
        with TestClient(create_app(settings)) as web:
            nodes = web.get("/api/dimse/nodes").json()
            assert nodes["nodes"][0]["ae_title"] == "ORTHANC"
            assert web.post("/api/dimse/nodes/orthanc/echo").json()["status"] == "success"
            assert web.post("/api/dimse/nodes/nowhere/echo").status_code == 404
            found = web.post(
                "/api/dimse/nodes/orthanc/query",
                json={"level": "STUDY", "keys": {"PatientID": "API", "StudyInstanceUID": ""}},
            ).json()
            study = found[0]["0020000D"]["Value"][0]
            for method in ("move", "get"):
                job = web.post(
                    "/api/dimse/nodes/orthanc/retrieve", json={"study": study, "method": method}
                )
                assert job.status_code == 202
                job_id = job.json()["id"]
                deadline = time.monotonic() + 60
                while (state := web.get(f"/api/dimse/jobs/{job_id}").json())["state"] in (
                    "queued",
                    "running",
                ):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert state["state"] == "succeeded", state
                assert (state["done"], state["total"]) == (2, 2)
            series = web.get(f"/dicom-web/studies/{study}/instances").json()
            assert len(series) == 2  # stored once, though retrieved twice
            sent = web.post("/api/dimse/nodes/orthanc/send", json={"study": study})
            assert sent.status_code == 202
    finally:
        orthanc.stop()


def test_orthanc_asks_radpacs_for_storage_commitment(pair: tuple[Node, Orthanc]) -> None:
    node, orthanc = pair
    results = node.archive.store_many(_study("COMMIT", 2))
    absent = generate_uid()
    ct_class = results[0].sop_class_uid
    asked = orthanc.http.post(
        "/modalities/radpacs/storage-commitment",
        json={
            "DicomInstances": [[ct_class, r.sop_instance_uid] for r in results]
            + [[ct_class, absent]],
            "Timeout": 30,
        },
    )
    assert asked.status_code == 200, asked.text
    path = asked.json()["Path"]
    deadline = time.monotonic() + 60
    while (report := orthanc.http.get(path).json())["Status"] == "Pending":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert report["Status"] == "Failure"  # one of the three is not held
    assert sorted(item["SOPInstanceUID"] for item in report["Success"]) == sorted(
        r.sop_instance_uid for r in results
    )
    assert [item["SOPInstanceUID"] for item in report["Failures"]] == [absent]
    assert report["Failures"][0]["FailureReason"] == 0x0112
