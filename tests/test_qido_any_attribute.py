"""QIDO-RS matching on attributes the index does not hold (issue 14; seed 001 names
InstitutionName, ProtocolName, Manufacturer, ManufacturerModelName, SeriesDate, StationName):
matched on the stored metadata, with the same rules as the indexed keys."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from conftest import make_ct, multipart, to_bytes

DW = "/dicom-web"


def _uids(response: object, tag: str) -> list[str]:
    return sorted(item[tag]["Value"][0] for item in response.json())  # type: ignore[attr-defined]


def test_matching_on_attributes_the_index_does_not_hold(client: TestClient) -> None:
    study_a, study_b = generate_uid(), generate_uid()
    series = {name: generate_uid() for name in ("ge", "siemens", "philips")}
    datasets = [
        make_ct(study_a, series["ge"], Manufacturer="GE MEDICAL", InstitutionName="North",
                StationName="CT01", ProtocolName="Head", SeriesDate="20240105",
                ManufacturerModelName="Revolution"),
        make_ct(study_a, series["ge"], Manufacturer="GE MEDICAL", InstitutionName="North",
                StationName="CT01", ProtocolName="Head", SeriesDate="20240105",
                ManufacturerModelName="Revolution"),
        make_ct(study_b, series["siemens"], Manufacturer="SIEMENS", InstitutionName="South",
                StationName="CT02", ProtocolName="Chest", SeriesDate="20240310",
                ManufacturerModelName="Force"),
        make_ct(study_b, series["philips"], Manufacturer="Philips", InstitutionName="South",
                StationName="MR01", ProtocolName="Chest", SeriesDate="20231231",
                ManufacturerModelName="Ingenia"),
    ]  # fmt: skip
    body, content_type = multipart([to_bytes(dataset) for dataset in datasets])
    assert (
        client.post(
            f"{DW}/studies", content=body, headers={"Content-Type": content_type}
        ).status_code
        == 200
    )

    def series_for(**params: str) -> list[str]:
        response = client.get(f"{DW}/series", params=params)
        assert response.status_code == 200, response.text
        return _uids(response, "0020000E")

    assert series_for(Manufacturer="GE*") == [series["ge"]]
    assert series_for(ManufacturerModelName="Force") == [series["siemens"]]
    assert series_for(StationName="CT0?") == sorted([series["ge"], series["siemens"]])
    assert series_for(SeriesDate="20240101-") == sorted([series["ge"], series["siemens"]])
    assert series_for(SeriesDate="-20231231") == [series["philips"]]
    assert series_for(ProtocolName="Chest", Modality="CT") == sorted(
        [series["siemens"], series["philips"]]
    )
    assert series_for(Manufacturer="GE*", limit="1", offset="1") == []
    studies = client.get(f"{DW}/studies", params={"InstitutionName": "South"})
    assert _uids(studies, "0020000D") == [study_b]
    assert studies.json()[0]["00080080"]["Value"] == ["South"]  # the matched key is returned
    instances = client.get(f"{DW}/instances", params={"StationName": "CT01", "limit": "1"})
    assert len(instances.json()) == 1
    page = client.get(f"{DW}/instances", params={"StationName": "CT01", "offset": "1"}).json()
    assert len(page) == 1
    assert client.get(f"{DW}/instances", params={"StationName": "nothing"}).json() == []


def test_a_patient_level_query(client: TestClient) -> None:
    """GET /dicom-web/patients (beyond PS3.18): patient keys, NumberOfPatientRelatedStudies."""
    datasets = [
        make_ct(generate_uid(), PatientID="PAT-1", PatientName="Doe^Jane", PatientSex="F"),
        make_ct(generate_uid(), PatientID="PAT-1", PatientName="Doe^Jane", PatientSex="F"),
        make_ct(generate_uid(), PatientID="PAT-2", PatientName="Roe^Rick", PatientSex="M"),
    ]
    body, content_type = multipart([to_bytes(dataset) for dataset in datasets])
    stored = client.post(f"{DW}/studies", content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200
    [jane] = client.get(f"{DW}/patients", params={"PatientName": "doe*"}).json()
    assert jane["00100020"]["Value"] == ["PAT-1"]
    assert jane["00201200"]["Value"] == [2]
    both = client.get(f"{DW}/patients", params={"PatientID": "PAT-*", "limit": "1"})
    assert len(both.json()) == 1 and "offset=1" in both.headers["warning"]
    refused = client.get(f"{DW}/patients", params={"Modality": "CT"})
    assert refused.status_code == 400 and "patient keys" in refused.json()["detail"]
