"""QIDO-RS over HTTP: matching, required attributes, paging, includefield and errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from conftest import make_ct, multipart, to_bytes


def value(match: dict, tag: str) -> object:  # type: ignore[type-arg]
    return match.get(tag, {}).get("Value", [None])[0]


def store(client: TestClient, datasets: list) -> None:  # type: ignore[type-arg]
    body, content_type = multipart([to_bytes(d) for d in datasets])
    response = client.post(
        "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def populated(client: TestClient) -> TestClient:
    """Three patients, four studies, one MR series among CTs."""
    s1, s2, s3, s4 = (generate_uid() for _ in range(4))
    mr_series = generate_uid()
    ct1 = generate_uid()
    store(
        client,
        [
            make_ct(
                s1,
                ct1,
                PatientName="Doe^John",
                PatientID="P1",
                StudyDate="20200110",
                StudyTime="083000",
                AccessionNumber="ACC1",
                StudyDescription="Chest CT",
                InstanceNumber=1,
            ),
            make_ct(
                s1,
                ct1,
                PatientName="Doe^John",
                PatientID="P1",
                StudyDate="20200110",
                StudyTime="083000",
                AccessionNumber="ACC1",
                InstanceNumber=2,
            ),
            make_ct(
                s1,
                mr_series,
                PatientName="Doe^John",
                PatientID="P1",
                Modality="MR",
                SeriesNumber=7,
                InstanceNumber=1,
            ),
            make_ct(
                s2,
                PatientName="Doe^Jane",
                PatientID="P2",
                StudyDate="20210315",
                StudyTime="141500",
                AccessionNumber="ACC2",
            ),
            make_ct(
                s3,
                PatientName="Smith^Anna^Maria",
                PatientID="P3",
                StudyDate="20211231",
                StudyTime="235900",
                AccessionNumber="XY_3",
            ),
            make_ct(
                s4,
                PatientName="Smithson^Bob",
                PatientID="P4",
                StudyDate="20220601",
                AccessionNumber="ACC4",
            ),
        ],
    )
    client.study_uids = [s1, s2, s3, s4]  # type: ignore[attr-defined]
    return client


def search(client: TestClient, path: str, **params: str) -> list[dict]:  # type: ignore[type-arg]
    response = client.get(f"/dicom-web{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def patient_ids(matches: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return sorted(str(value(m, "00100020")) for m in matches)


def test_study_results_carry_the_required_attributes(populated: TestClient) -> None:
    [study] = search(populated, "/studies", PatientID="P1")
    for tag in (
        "00080020",
        "00080030",
        "00080050",
        "00080061",
        "00080090",
        "00100010",
        "00100020",
        "00100030",
        "00100040",
        "0020000D",
        "00200010",
        "00201206",
        "00201208",
        "00081190",
    ):
        assert tag in study, tag
    assert study["00080061"]["Value"] == ["CT", "MR"]
    assert value(study, "00201206") == 2
    assert value(study, "00201208") == 3
    assert value(study, "00081030") == "Chest CT"
    assert str(value(study, "00081190")).endswith(f"/dicom-web/studies/{populated.study_uids[0]}")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"PatientID": "P2"}, ["P2"]),
        ({"00100020": "P2"}, ["P2"]),
        ({"PatientName": "Doe*"}, ["P1", "P2"]),
        ({"PatientName": "doe^j?n*"}, ["P2"]),
        ({"PatientName": "doe^j*n"}, ["P1"]),
        ({"PatientName": "Smith^*"}, ["P3"]),
        ({"AccessionNumber": "XY_3"}, ["P3"]),
        ({"AccessionNumber": "XY%3"}, []),
        ({"StudyDate": "20210315"}, ["P2"]),
        ({"StudyDate": "20210101-20211231"}, ["P2", "P3"]),
        ({"StudyDate": "20211231-"}, ["P3", "P4"]),
        ({"StudyDate": "-20200110"}, ["P1"]),
        ({"StudyTime": "1415"}, ["P2"]),
        ({"StudyTime": "1400-2359"}, ["P2", "P3"]),
        ({"ModalitiesInStudy": "MR"}, ["P1"]),
        ({"ModalitiesInStudy": "MR,SEG"}, ["P1"]),
        ({"PatientName": "anna", "fuzzymatching": "true"}, ["P3"]),
        ({"PatientName": "smi bob", "fuzzymatching": "true"}, ["P4"]),
        ({"PatientName": "anna"}, []),
        ({"PatientName": ""}, ["P1", "P2", "P3", "P4"]),
    ],
)
def test_study_matching(populated: TestClient, params: dict[str, str], expected: list[str]) -> None:
    assert patient_ids(search(populated, "/studies", **params)) == expected


def test_uid_lists(populated: TestClient) -> None:
    s1, s2, _, _ = populated.study_uids  # type: ignore[attr-defined]
    assert patient_ids(search(populated, "/studies", StudyInstanceUID=f"{s1},{s2}")) == ["P1", "P2"]
    assert patient_ids(search(populated, "/studies", StudyInstanceUID=f"{s1}\\{s2}")) == [
        "P1",
        "P2",
    ]


def test_series_and_instance_levels_nested_and_flat(populated: TestClient) -> None:
    s1 = populated.study_uids[0]  # type: ignore[attr-defined]
    series = search(populated, f"/studies/{s1}/series")
    assert sorted(str(value(s, "00080060")) for s in series) == ["CT", "MR"]
    ct = next(s for s in series if value(s, "00080060") == "CT")
    assert value(ct, "00201209") == 2
    assert str(value(ct, "00081190")).endswith(f"/studies/{s1}/series/{value(ct, '0020000E')}")
    assert len(search(populated, "/series", Modality="MR")) == 1
    instances = search(populated, f"/studies/{s1}/series/{value(ct, '0020000E')}/instances")
    assert [value(i, "00200013") for i in instances] == [1, 2]
    assert len(search(populated, f"/studies/{s1}/instances")) == 3
    assert len(search(populated, "/instances", PatientID="P1", Modality="CT")) == 2
    [mr] = search(populated, "/instances", SeriesNumber="7")
    for tag in ("00080016", "00080018", "00200013", "00280010", "00280011", "00280100", "00280008"):
        assert tag in mr, tag


def test_limit_offset_and_the_warning(populated: TestClient) -> None:
    response = populated.get("/dicom-web/studies", params={"limit": "3"})
    assert len(response.json()) == 3
    assert "additional results" in response.headers["warning"]
    rest = populated.get("/dicom-web/studies", params={"limit": "3", "offset": "3"})
    assert len(rest.json()) == 1
    assert "warning" not in rest.headers
    everything = {value(m, "0020000D") for m in response.json() + rest.json()}
    assert everything == set(populated.study_uids)  # type: ignore[attr-defined]


def test_includefield_reads_what_the_index_lacks(populated: TestClient) -> None:
    [study] = search(populated, "/studies", PatientID="P2", includefield="SliceThickness,00180060")
    assert study["00180050"]["vr"] == "DS"
    assert "00180060" in study
    [study] = populated.get(
        "/dicom-web/studies",
        params=[
            ("PatientID", "P2"),
            ("includefield", "00081030"),
            ("includefield", "BodyPartExamined"),
        ],
    ).json()
    assert "00081030" in study
    [instance] = search(populated, "/instances", PatientID="P2", includefield="all")
    assert "00180050" in instance and "00280030" in instance
    assert "7FE00010" not in instance or "BulkDataURI" in instance["7FE00010"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"NotAKeyword": "x"}, "neither a DICOM keyword"),
        ({"StudyDate": "2020-01-01"}, "StudyDate"),
        ({"StudyDate": "20200101-20201301-"}, "StudyDate"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching"),
        ({"includefield": "Bogus"}, "Bogus"),
        ({"Modality": "CT"}, "series-level"),
        ({"ReferencedImageSequence": "x"}, "sequence ReferencedImageSequence is not supported"),
        ({"SliceThickness": "thick"}, "not a number"),
        ({"StudyInstanceUID": "abc"}, "UID"),
    ],
)
def test_bad_parameters_are_a_clear_400(
    sqlite_client: TestClient, params: dict[str, str], fragment: str
) -> None:
    response = sqlite_client.get("/dicom-web/studies", params=params)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]


def test_unknown_study_gives_an_empty_list(sqlite_client: TestClient) -> None:
    assert sqlite_client.get("/dicom-web/studies/1.2.3/series").json() == []


def test_retrieve_urls_follow_forwarded_headers(
    populated: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a trusted proxy (TestClient's address is "testclient"); see test_hostile_access."""
    monkeypatch.setattr(populated.app.state.settings, "trusted_proxies", ["testclient"])  # type: ignore[attr-defined]
    response = populated.get(
        "/dicom-web/studies",
        params={"PatientID": "P2"},
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "pacs.example.org",
            "X-Forwarded-Prefix": "/radpacs",
        },
    )
    url = str(value(response.json()[0], "00081190"))
    assert url.startswith("https://pacs.example.org/radpacs/dicom-web/studies/")


def test_json_is_gzipped_when_asked(populated: TestClient) -> None:
    response = populated.get("/dicom-web/studies", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.json()) == 4


def test_unacceptable_accept_is_406(sqlite_client: TestClient) -> None:
    response = sqlite_client.get("/dicom-web/studies", headers={"Accept": "image/png"})
    assert response.status_code == 406
