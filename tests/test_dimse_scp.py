"""radpacs as a DICOM SCP, driven by DCMTK's tools (echoscu, storescu, findscu, movescu,
getscu, storescp as the move destination)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from _dimse_support import (
    LOOPBACK,
    CuttingProxy,
    Node,
    StoreScp,
    dcmtk,
    running_node,
)
from conftest import PYDICOM_FILES, make_ct, to_bytes
from radpacs.app import create_app
from radpacs.archive import Level, StoreResult, parse_query
from radpacs.archive.audit import AuditQuery
from radpacs.settings import Settings

SCU = {"ae_title": "SCU", "host": "127.0.0.1", "port": 1}
COMPRESSED = [  # (file pydicom ships, storescu option proposing its transfer syntax)
    ("MR_small_RLE.dcm", "-xr", "1.2.840.10008.1.2.5"),
    ("JPEG2000.dcm", "-xw", "1.2.840.10008.1.2.4.91"),
    ("SC_rgb_jpeg_dcmtk.dcm", "-xy", "1.2.840.10008.1.2.4.50"),
    ("JPEGLSNearLossless_16.dcm", "-xu", "1.2.840.10008.1.2.4.81"),
]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with running_node(tmp_path / "data", dimse_nodes={"scu": SCU}) as running:
        yield running


def write(dataset: pydicom.Dataset, path: Path) -> Path:
    path.write_bytes(to_bytes(dataset))
    return path


def instance_uids(node: Node) -> list[str]:
    query = parse_query(Level.INSTANCE, [], max_results=10_000)
    return [m["00080018"]["Value"][0] for m in node.archive.search(query).matches]


def audit_rows(node: Node, action: str) -> list[SimpleNamespace]:
    """The audit events of ``action``, oldest first, read through the audit log's query."""
    node.audit.flush()
    rows, _ = node.audit.query(AuditQuery(action=action, limit=1000))
    return [SimpleNamespace(**row) for row in reversed(rows)]


# ------------------------------------------------------------------------------ association


def test_echo_from_a_configured_node(node: Node) -> None:
    result = dcmtk("echoscu", "-aet", "SCU", *node.peer)
    assert result.returncode == 0, result.stderr
    [row] = audit_rows(node, "dimse-echo")
    assert (row.username, row.client, row.status) == ("SCU", "127.0.0.1", 0)


def test_unknown_calling_ae_is_refused_and_audited(node: Node) -> None:
    result = dcmtk("echoscu", "-aet", "STRANGER", *node.peer)
    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stderr + result.stdout
    [row] = audit_rows(node, "dimse-associate")
    assert row.username == "STRANGER" and row.status == 1
    assert "not configured" in row.detail


def test_unknown_calling_ae_allowed_by_the_setting(tmp_path: Path) -> None:
    with running_node(tmp_path / "data", dimse_allow_unknown=True) as open_node:
        assert dcmtk("echoscu", "-aet", "STRANGER", *open_node.peer).returncode == 0


def test_calling_host_is_checked(tmp_path: Path) -> None:
    elsewhere = {"ae_title": "SCU", "host": "192.0.2.10", "port": 104}
    with running_node(tmp_path / "data", dimse_nodes={"scu": elsewhere}) as strict:
        refused = dcmtk("echoscu", "-aet", "SCU", *strict.peer)
        assert refused.returncode != 0
        [row] = audit_rows(strict, "dimse-associate")
        assert "192.0.2.10" in row.detail and "127.0.0.1" in row.detail


def test_wrong_called_ae_is_refused(node: Node) -> None:
    result = dcmtk("echoscu", "-aet", "SCU", "-aec", "OTHER", LOOPBACK, str(node.port))
    assert result.returncode != 0


def test_a_node_without_the_permission_is_refused(tmp_path: Path) -> None:
    echo_only = {**SCU, "permissions": ["echo"]}
    with running_node(tmp_path / "data", dimse_nodes={"scu": echo_only}) as limited:
        path = write(make_ct(), tmp_path / "ct.dcm")
        result = dcmtk("storescu", "-aet", "SCU", *limited.peer, str(path))
        assert result.returncode != 0
        assert instance_uids(limited) == []
        [row] = audit_rows(limited, "dimse-store")
        assert row.status == 0x0124


# ---------------------------------------------------------------------------------- C-STORE


def test_storescu_stores_indexes_and_serves_over_dicomweb(node: Node, tmp_path: Path) -> None:
    heard: list[StoreResult] = []
    node.archive.add_listener(heard.extend)
    ct = make_ct(PatientName="Dimse^Stored")
    path = write(ct, tmp_path / "ct.dcm")
    result = dcmtk("storescu", "-aet", "SCU", *node.peer, str(path))
    assert result.returncode == 0, result.stderr
    assert instance_uids(node) == [ct.SOPInstanceUID]
    assert [r.sop_instance_uid for r in heard] == [ct.SOPInstanceUID]  # AI rules, follow-up
    stored = node.archive.read_dataset(ct.SOPInstanceUID)
    assert stored.PixelData == ct.PixelData
    with TestClient(create_app(node.settings.model_copy(update={"dimse_enabled": False}))) as web:
        found = web.get("/dicom-web/studies", params={"PatientName": "dimse*"}).json()
        assert found[0]["0020000D"]["Value"] == [ct.StudyInstanceUID]
        wado = web.get(f"/dicom-web/studies/{ct.StudyInstanceUID}/metadata").json()
        assert wado[0]["00080018"]["Value"] == [ct.SOPInstanceUID]
    [row] = audit_rows(node, "dimse-store")
    assert (row.sop_uid, row.study_uid, row.status) == (
        ct.SOPInstanceUID,
        ct.StudyInstanceUID,
        0,
    )


def test_the_same_instance_twice_is_stored_once(node: Node, tmp_path: Path) -> None:
    path = write(make_ct(), tmp_path / "ct.dcm")
    for _ in range(2):
        assert dcmtk("storescu", "-aet", "SCU", *node.peer, str(path)).returncode == 0
    assert len(instance_uids(node)) == 1
    assert node.archive.counts()["instances"] == 1


@pytest.mark.parametrize(("name", "option", "syntax"), COMPRESSED)
def test_compressed_instances_are_stored_as_received(
    node: Node, tmp_path: Path, name: str, option: str, syntax: str
) -> None:
    original = pydicom.dcmread(PYDICOM_FILES / name)
    original.StudyInstanceUID = original.get("StudyInstanceUID") or generate_uid()
    original.SeriesInstanceUID = original.get("SeriesInstanceUID") or generate_uid()
    path = write(original, tmp_path / name)
    result = dcmtk("storescu", "-R", option, "-aet", "SCU", *node.peer, str(path))
    assert result.returncode == 0, result.stderr
    files = node.archive.instance_files(original.StudyInstanceUID)
    assert [(f.sop_uid, f.transfer_syntax_uid) for f in files] == [
        (original.SOPInstanceUID, syntax)
    ]
    stored = node.archive.read_file(files[0])
    assert stored.PixelData == original.PixelData  # the compressed bytes, unchanged


def test_an_instance_without_study_uid_fails_with_cannot_understand(
    node: Node, tmp_path: Path
) -> None:
    broken = make_ct()
    del broken.StudyInstanceUID
    path = write(broken, tmp_path / "broken.dcm")
    result = dcmtk("storescu", "-v", "-aet", "SCU", *node.peer, str(path))
    assert "Store Response (Error: CannotUnderstand)" in result.stdout + result.stderr
    assert instance_uids(node) == []
    [row] = audit_rows(node, "dimse-store")
    assert row.status == 0xC000 and "StudyInstanceUID is missing" in row.detail


def test_an_aborted_association_stores_nothing_partial(node: Node, tmp_path: Path) -> None:
    small = write(make_ct(), tmp_path / "a.dcm")
    big = make_ct(Rows=1024, Columns=2048)
    big.PixelData = bytes(range(256)) * (1024 * 2048 * 2 // 256)
    big_path = write(big, tmp_path / "b.dcm")
    proxy = CuttingProxy(node.port, limit=small.stat().st_size + 2_000_000)
    result = dcmtk(
        "storescu", "-R", "-aet", "SCU", "-aec", "RADPACS", LOOPBACK, str(proxy.port),
        str(small), str(big_path),
    )  # fmt: skip
    assert result.returncode != 0
    proxy.thread.join(10)
    first = pydicom.dcmread(small)
    assert instance_uids(node) == [first.SOPInstanceUID]  # the whole first, none of the second
    report = node.archive.check()
    assert report.orphan_keys == [] and report.missing == []
    assert dcmtk("echoscu", "-aet", "SCU", *node.peer).returncode == 0  # still serving


def test_eight_concurrent_associations_store_everything_once(node: Node, tmp_path: Path) -> None:
    shared = write(make_ct(), tmp_path / "shared.dcm")
    study = generate_uid()
    commands = []
    expected = {pydicom.dcmread(shared).SOPInstanceUID}
    for sender in range(8):
        folder = tmp_path / f"sender{sender}"
        folder.mkdir()
        paths = [shared]
        for index in range(5):
            ct = make_ct(study_uid=study, InstanceNumber=index + 1)
            expected.add(ct.SOPInstanceUID)
            paths.append(write(ct, folder / f"{index}.dcm"))
        commands.append(["storescu", "-aet", "SCU", *node.peer, *(str(p) for p in paths)])
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for command in commands
    ]
    for process in processes:
        _, error = process.communicate(timeout=120)
        assert process.returncode == 0, error.decode()
    uids = instance_uids(node)
    assert sorted(uids) == sorted(expected)  # each exactly once
    assert node.archive.check().orphan_keys == []


# ----------------------------------------------------------------------- C-FIND, MOVE, GET


@pytest.fixture
def studies(node: Node) -> dict[str, pydicom.Dataset]:
    """Three studies of two patients, stored through the archive as STOW-RS stores them."""
    made = {
        "doe1": make_ct(PatientName="Doe^Jane", PatientID="P1", StudyDate="20240105",
                        AccessionNumber="A1", Modality="CT"),
        "doe2": make_ct(PatientName="Doe^Jane", PatientID="P1", StudyDate="20240320",
                        AccessionNumber="A2", Modality="MR"),
        "roe": make_ct(PatientName="Roe^Rick", PatientID="P2", StudyDate="20230701",
                       AccessionNumber="A3", Modality="CT"),
    }  # fmt: skip
    second = make_ct(
        study_uid=made["doe1"].StudyInstanceUID,
        series_uid=made["doe1"].SeriesInstanceUID,
        PatientName="Doe^Jane",
        PatientID="P1",
        StudyDate="20240105",
        InstanceNumber=2,
    )
    results = node.archive.store_many([to_bytes(ds) for ds in [*made.values(), second]])
    assert all(r.outcome.value == "stored" for r in results)
    made["doe1-2"] = second
    return made


def findscu(node: Node, out: Path, *keys: str, model: str = "-S") -> list[pydicom.Dataset]:
    """findscu's responses, read back from the files its --extract writes."""
    out.mkdir(exist_ok=True)
    args = [model, "-X", "-od", str(out), "-aet", "SCU", *node.peer]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("findscu", *args)
    assert result.returncode == 0, result.stderr
    return [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def test_find_studies_with_wildcards_and_ranges(
    node: Node, studies: dict[str, pydicom.Dataset], tmp_path: Path
) -> None:
    found = findscu(
        node, tmp_path / "a", "QueryRetrieveLevel=STUDY", "PatientName=doe*",
        "StudyInstanceUID", "StudyDate", "ModalitiesInStudy", "NumberOfStudyRelatedInstances",
    )  # fmt: skip
    by_uid = {ds.StudyInstanceUID: ds for ds in found}
    assert set(by_uid) == {studies["doe1"].StudyInstanceUID, studies["doe2"].StudyInstanceUID}
    doe1 = by_uid[studies["doe1"].StudyInstanceUID]
    assert doe1.NumberOfStudyRelatedInstances == 2
    assert doe1.ModalitiesInStudy == "CT" and doe1.StudyDate == "20240105"
    assert doe1.RetrieveAETitle == "RADPACS"
    ranged = findscu(
        node, tmp_path / "b", "QueryRetrieveLevel=STUDY", "StudyDate=20240101-20241231",
        "AccessionNumber",
    )  # fmt: skip
    assert sorted(ds.AccessionNumber for ds in ranged) == ["A1", "A2"]
    listed = findscu(
        node, tmp_path / "c", "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={studies['doe2'].StudyInstanceUID}\\{studies['roe'].StudyInstanceUID}",
    )  # fmt: skip
    assert len(listed) == 2


def test_find_series_and_images_of_a_study(
    node: Node, studies: dict[str, pydicom.Dataset], tmp_path: Path
) -> None:
    study = studies["doe1"]
    series = findscu(
        node, tmp_path / "s", "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={study.StudyInstanceUID}", "SeriesInstanceUID", "Modality",
        "NumberOfSeriesRelatedInstances",
    )  # fmt: skip
    assert [(ds.SeriesInstanceUID, ds.NumberOfSeriesRelatedInstances) for ds in series] == [
        (study.SeriesInstanceUID, 2)
    ]
    images = findscu(
        node, tmp_path / "i", "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={study.StudyInstanceUID}",
        f"SeriesInstanceUID={study.SeriesInstanceUID}", "SOPInstanceUID", "InstanceNumber",
    )  # fmt: skip
    assert sorted(ds.SOPInstanceUID for ds in images) == sorted(
        [study.SOPInstanceUID, studies["doe1-2"].SOPInstanceUID]
    )


def test_find_patients_in_the_patient_root_model(
    node: Node, studies: dict[str, pydicom.Dataset], tmp_path: Path
) -> None:
    patients = findscu(
        node, tmp_path / "p", "QueryRetrieveLevel=PATIENT", "PatientID", "PatientName",
        "NumberOfPatientRelatedStudies", model="-P",
    )  # fmt: skip
    counts = {str(ds.PatientID): int(ds.NumberOfPatientRelatedStudies) for ds in patients}
    assert counts == {"P1": 2, "P2": 1}


def test_find_with_a_bad_value_fails_with_a900(
    node: Node, studies: dict[str, pydicom.Dataset], tmp_path: Path
) -> None:
    result = dcmtk(
        "findscu", "-v", "-S", "-aet", "SCU", *node.peer,
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyDate=2024-bad",
    )  # fmt: skip
    assert "Find Response (Error: DataSetDoesNotMatchSOPClass)" in result.stdout + result.stderr
    [row] = audit_rows(node, "dimse-find")
    assert row.status == 0xA900 and "StudyDate" in row.detail


def test_move_a_study_to_a_configured_storescp(tmp_path: Path) -> None:
    destination = StoreScp(tmp_path / "dest")
    try:
        nodes = {
            "scu": SCU,
            "dest": {"ae_title": "DEST", "host": "127.0.0.1", "port": destination.port},
        }
        with running_node(tmp_path / "data", dimse_nodes=nodes) as mover:
            study = make_ct(PatientID="M1")
            other = make_ct(study_uid=study.StudyInstanceUID, InstanceNumber=2)
            compressed = pydicom.dcmread(PYDICOM_FILES / "MR_small_RLE.dcm")
            compressed.StudyInstanceUID = study.StudyInstanceUID
            mover.archive.store_many([to_bytes(study), to_bytes(other), to_bytes(compressed)])
            uid = study.StudyInstanceUID
            result = dcmtk(
                "movescu", "-S", "-aet", "SCU", "-aem", "DEST", *mover.peer,
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            received = {pydicom.dcmread(p).SOPInstanceUID for p in destination.files()}
            assert received == {
                study.SOPInstanceUID,
                other.SOPInstanceUID,
                compressed.SOPInstanceUID,
            }
            unknown = dcmtk(
                "movescu", "-v", "-S", "-aet", "SCU", "-aem", "NOWHERE", *mover.peer,
                "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
            )  # fmt: skip
            assert (
                "Move Response (Refused: MoveDestinationUnknown)" in unknown.stdout + unknown.stderr
            )
            moves = audit_rows(mover, "dimse-move")
            assert sorted(row.status for row in moves) == [0, 0xA801]
    finally:
        destination.stop()


def test_get_a_series(node: Node, studies: dict[str, pydicom.Dataset], tmp_path: Path) -> None:
    study = studies["doe1"]
    out = tmp_path / "got"
    out.mkdir()
    result = dcmtk(
        "getscu", "-S", "-aet", "SCU", *node.peer, "-od", str(out),
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study.StudyInstanceUID}",
        "-k", f"SeriesInstanceUID={study.SeriesInstanceUID}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = {pydicom.dcmread(p).SOPInstanceUID for p in out.iterdir()}
    assert got == {study.SOPInstanceUID, studies["doe1-2"].SOPInstanceUID}
    [row] = audit_rows(node, "dimse-get")
    assert row.detail == "2 instances" and row.study_uid == study.StudyInstanceUID


# ------------------------------------------------------------------------ modality worklist


def test_a_modality_queries_the_worklist_the_rest_api_manages(node: Node, tmp_path: Path) -> None:
    with TestClient(create_app(node.settings.model_copy(update={"dimse_enabled": False}))) as web:
        items = [
            {"patient_id": "W1", "patient_name": "Wong^Ada", "modality": "CT",
             "scheduled_date": "20261202", "scheduled_time": "0930", "accession_number": "ACC1",
             "station_ae_title": "CT1", "step_description": "CT chest"},
            {"patient_id": "W2", "patient_name": "Wu^Bo", "modality": "MR",
             "scheduled_date": "20261202", "scheduled_time": "1100", "station_ae_title": "MR1"},
            {"patient_id": "W3", "patient_name": "Wang^Cy", "modality": "CT",
             "scheduled_date": "20261203", "station_ae_title": "CT1"},
        ]  # fmt: skip
        added = [web.post("/api/worklist", json=item) for item in items]
        assert [r.status_code for r in added] == [201, 201, 201]
        bad = web.post("/api/worklist", json={**items[0], "scheduled_date": "2 Dec"})
        assert bad.status_code == 400 and "scheduled_date" in bad.json()["detail"]
        listed = web.get("/api/worklist", params={"Modality": "CT"}).json()
        assert [i["patient_id"] for i in listed] == ["W1", "W3"]
        # the way a modality asks (DCMTK's wlmscpfs examples): today's CT steps for its AE
        out = tmp_path / "wl"
        out.mkdir()
        result = dcmtk(
            "findscu", "-W", "-X", "-od", str(out), "-aet", "SCU", *node.peer,
            "-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber",
            "-k", "StudyInstanceUID",
            "-k", "ScheduledProcedureStepSequence[0].Modality=CT",
            "-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT1",
            "-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261202",
            "-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        [answer] = [pydicom.dcmread(p) for p in out.glob("rsp*.dcm")]
        assert (answer.PatientID, answer.PatientName, answer.AccessionNumber) == (
            "W1",
            "Wong^Ada",
            "ACC1",
        )
        step = answer.ScheduledProcedureStepSequence[0]
        assert (step.Modality, step.ScheduledProcedureStepDescription) == ("CT", "CT chest")
        assert answer.StudyInstanceUID == added[0].json()["study_uid"]
        removed = web.delete(f"/api/worklist/{added[0].json()['item_id']}")
        assert removed.status_code == 204
        assert [i["patient_id"] for i in web.get("/api/worklist").json()] == ["W2", "W3"]


def test_store_and_find_on_each_index_database(settings: Settings, tmp_path: Path) -> None:
    """The same C-STORE and C-FIND on SQLite and on PostgreSQL (the `settings` fixture)."""
    with running_node(
        settings.data_dir,
        database_url=settings.database_url,
        dimse_nodes={"scu": SCU},
    ) as node:
        ct = make_ct(PatientName="Index^Both", PatientID="DB1")
        path = write(ct, tmp_path / "ct.dcm")
        assert dcmtk("storescu", "-aet", "SCU", *node.peer, str(path)).returncode == 0
        assert dcmtk("storescu", "-aet", "SCU", *node.peer, str(path)).returncode == 0
        found = findscu(
            node, tmp_path / "f", "QueryRetrieveLevel=STUDY", "PatientName=INDEX*",
            "StudyInstanceUID", "NumberOfStudyRelatedInstances",
        )  # fmt: skip
        assert [(d.StudyInstanceUID, d.NumberOfStudyRelatedInstances) for d in found] == [
            (ct.StudyInstanceUID, 1)
        ]
