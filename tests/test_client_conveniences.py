"""The DPAT client's conveniences (seed 002) in radpacs.client, each against a live server:
find_one / find_one_study with DicomCodes, and HTTP Basic credentials for peers that use them
(a real Orthanc with AuthenticationEnabled, since radpacs itself takes tokens)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from conftest import LiveServer, free_port, make_ct, to_bytes
from radpacs.client import AsyncRadpacsClient, DicomCodes, RadpacsClient, RadpacsRequestError

ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
BASIC = ("radiologist", "basic password")


def _store(url: str, *datasets: pydicom.Dataset) -> None:
    with httpx.Client(base_url=url) as http:
        for dataset in datasets:
            boundary = "b0undary"
            body = (
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                + to_bytes(dataset)
                + f"\r\n--{boundary}--\r\n".encode()
            )
            response = http.post(
                "/dicom-web/studies",
                content=body,
                headers={
                    "Content-Type": f'multipart/related; type="application/dicom"; '
                    f"boundary={boundary}"
                },
            )
            assert response.status_code == 200, response.text


def test_find_one_study_and_dicom_codes(live_server: LiveServer) -> None:
    first = make_ct(PatientID="FIND-1", AccessionNumber="ACC-1", StudyID="EXAM-1")
    second = make_ct(PatientID="FIND-2", AccessionNumber="ACC-2")
    third = make_ct(PatientID="FIND-2", AccessionNumber="ACC-3")
    _store(live_server.url, first, second, third)
    with RadpacsClient(live_server.url) as client:
        study = client.find_one_study(StudyInstanceUID=first.StudyInstanceUID)
        assert study is not None and study.study_uid == first.StudyInstanceUID
        assert study.get_value_as_string(DicomCodes.PATIENT_ID) == "FIND-1"
        assert study.get_value_as_string(DicomCodes.REQUEST_ID) == "ACC-1"
        assert study.get_value_as_string(DicomCodes.EXAM_ID) == "EXAM-1"
        assert study.get_value_as_string(DicomCodes.STUDY_ID) == first.StudyInstanceUID
        assert study.get_value_as_string("ReferringPhysicianName") == ""
        # the seed's own spelling, and a DicomCodes value as the filter's name
        same = client.find_one_study(studyInstanceUid=first.StudyInstanceUID)
        assert same is not None and same.study_uid == first.StudyInstanceUID
        by_code = client.find_one("studies", {DicomCodes.REQUEST_ID: "ACC-2"})
        assert by_code is not None and by_code.study_uid == second.StudyInstanceUID
        assert client.find_one_study(PatientID="NOBODY") is None
        with pytest.raises(ValueError, match="more than one of the studies match PatientID=FIND-2"):
            client.find_one_study(PatientID="FIND-2")
        series = client.find_one("series", study=first.StudyInstanceUID)
        assert series is not None and series.series_uid == first.SeriesInstanceUID

    async def flow() -> None:
        async with AsyncRadpacsClient(live_server.url) as client:
            found = await client.find_one_study(AccessionNumber="ACC-3")
            assert found is not None and found.study_uid == third.StudyInstanceUID
            assert await client.find_one_study(AccessionNumber="NONE") is None

    asyncio.run(flow())


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[str]:
    """A real Orthanc that wants HTTP Basic credentials, with its DICOMweb plugin."""
    if shutil.which(ORTHANC) is None or not Path(ORTHANC_DICOMWEB).exists():
        pytest.fail("Orthanc is missing: apt-get install -y orthanc orthanc-dicomweb")
    port = free_port()
    config = {
        "Name": "radpacs-basic-auth-peer",
        "StorageDirectory": str(tmp_path / "storage"),
        "IndexDirectory": str(tmp_path / "index"),
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {BASIC[0]: BASIC[1]},
        "DicomServerEnabled": False,
        "Plugins": [ORTHANC_DICOMWEB],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    path = tmp_path / "orthanc.json"
    path.write_text(json.dumps(config))
    log = (tmp_path / "orthanc.log").open("wb")
    process = subprocess.Popen([ORTHANC, str(path)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/system", auth=BASIC, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not start: {(tmp_path / 'orthanc.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_http_basic_credentials_against_orthanc(orthanc: str) -> None:
    dataset = make_ct(PatientID="BASIC-1")
    stored = httpx.post(f"{orthanc}/instances", content=to_bytes(dataset), auth=BASIC)
    assert stored.status_code == 200, stored.text
    with RadpacsClient(orthanc) as anonymous:
        with pytest.raises(RadpacsRequestError) as refused:
            anonymous.search("studies")
        assert refused.value.status_code == 401
    with RadpacsClient(orthanc, auth=BASIC) as client:
        study = client.find_one_study(StudyInstanceUID=dataset.StudyInstanceUID)
        assert study is not None
        assert study.get_value_as_string(DicomCodes.PATIENT_ID) == "BASIC-1"
    with RadpacsClient(orthanc, auth=(BASIC[0], "wrong")) as wrong:
        with pytest.raises(RadpacsRequestError) as refused:
            wrong.search("studies")
        assert refused.value.status_code == 401

    async def flow() -> None:
        async with AsyncRadpacsClient(orthanc, auth=BASIC) as client:
            assert len(await client.search("studies")) == 1

    asyncio.run(flow())
    with pytest.raises(ValueError, match="not both"):
        RadpacsClient(orthanc, "a-token", auth=BASIC)
