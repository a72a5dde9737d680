"""QIDO-RS answers carry what Sphere DicomWeb's tables (seed 001) and PS3.18 Tables 10.6.3-3
to -5 list: InstanceAvailability for studies and instances, SpecificCharacterSet, and
TimezoneOffsetFromUTC when asked for and known."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import make_ct, multipart, to_bytes


def test_availability_character_set_and_timezone(sqlite_client: TestClient) -> None:
    ct = make_ct(PatientID="SEED-1", TimezoneOffsetFromUTC="-0500")
    body, content_type = multipart([to_bytes(ct)])
    stored = sqlite_client.post(
        "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert stored.status_code == 200, stored.text
    answers = {
        level: sqlite_client.get(f"/dicom-web/{level}", params={"PatientID": "SEED-1"}).json()
        for level in ("studies", "series", "instances")
    }
    for level, [match] in answers.items():
        assert match["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}, level
    assert answers["studies"][0]["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
    assert answers["instances"][0]["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
    assert "00080056" not in answers["series"][0]  # PS3.18 lists it for studies and instances
    for level in ("studies", "series", "instances"):
        [match] = sqlite_client.get(
            f"/dicom-web/{level}",
            params={"PatientID": "SEED-1", "includefield": "TimezoneOffsetFromUTC"},
        ).json()
        assert match["00080201"] == {"vr": "SH", "Value": ["-0500"]}, level
    # XML answers say the same (PS3.19)
    xml = sqlite_client.get(
        "/dicom-web/studies",
        params={"PatientID": "SEED-1"},
        headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
    )
    assert xml.status_code == 200
    assert b'keyword="InstanceAvailability"' in xml.content and b"ONLINE" in xml.content
