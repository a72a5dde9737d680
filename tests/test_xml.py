"""application/dicom+xml (PS3.19 Native DICOM Model) for QIDO-RS results and metadata."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pydicom
from fastapi.testclient import TestClient

from conftest import PYDICOM_FILES, make_ct, multipart, split_multipart, to_bytes
from radpacs.dicom.json import dataset_to_json
from radpacs.dicom.xml import NATIVE_DICOM_MODEL_NS, json_to_xml

NS = {"n": NATIVE_DICOM_MODEL_NS}
XML_ACCEPT = 'multipart/related; type="application/dicom+xml"'


def _attribute(root: ET.Element, tag: str) -> ET.Element:
    found = root.find(f"n:DicomAttribute[@tag='{tag}']", NS)
    assert found is not None, tag
    return found


def test_json_to_xml_values_names_sequences_and_bulk_data() -> None:
    dataset = pydicom.dcmread(PYDICOM_FILES / "rtplan.dcm")
    dataset.PatientName = "Doe^John^^Dr"
    root = ET.fromstring(json_to_xml(dataset_to_json(dataset, "/studies/1/series/2/instances/3")))
    assert root.tag == f"{{{NATIVE_DICOM_MODEL_NS}}}NativeDicomModel"
    name = _attribute(root, "00100010")
    assert name.get("vr") == "PN" and name.get("keyword") == "PatientName"
    assert name.findtext("n:PersonName/n:Alphabetic/n:FamilyName", namespaces=NS) == "Doe"
    assert name.findtext("n:PersonName/n:Alphabetic/n:GivenName", namespaces=NS) == "John"
    assert name.findtext("n:PersonName/n:Alphabetic/n:NamePrefix", namespaces=NS) == "Dr"
    beams = _attribute(root, "300A00B0")
    items = beams.findall("n:Item", NS)
    assert [item.get("number") for item in items] == [str(n) for n in range(1, len(items) + 1)]
    assert len(items) == len(dataset.BeamSequence)
    sop = _attribute(root, "00080018")
    assert sop.findtext("n:Value[@number='1']", namespaces=NS) == dataset.SOPInstanceUID


def test_bulk_data_uri_becomes_bulkdata_element() -> None:
    dataset = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    root = ET.fromstring(json_to_xml(dataset_to_json(dataset, "/studies/1/series/2/instances/3")))
    pixel = _attribute(root, "7FE00010")
    bulk = pixel.find("n:BulkData", NS)
    assert bulk is not None and bulk.get("uri", "").endswith("/bulkdata/7FE00010")


def test_qido_and_metadata_as_xml(sqlite_client: TestClient) -> None:
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    slices = [make_ct(study, series, PatientName="Xml^Test") for _ in range(2)]
    body, content_type = multipart([to_bytes(ds) for ds in slices])
    sqlite_client.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})

    studies = sqlite_client.get("/dicom-web/studies", headers={"Accept": XML_ACCEPT})
    assert studies.status_code == 200
    assert 'type="application/dicom+xml"' in studies.headers["content-type"]
    [(part_type, document)] = split_multipart(studies)
    assert part_type == "application/dicom+xml"
    root = ET.fromstring(document)
    assert _attribute(root, "0020000D").findtext("n:Value", namespaces=NS) == study
    retrieve = _attribute(root, "00081190").findtext("n:Value", namespaces=NS) or ""
    assert retrieve.endswith(f"/dicom-web/studies/{study}")

    metadata = sqlite_client.get(
        f"/dicom-web/studies/{study}/series/{series}/metadata", headers={"Accept": XML_ACCEPT}
    )
    parts = split_multipart(metadata)
    assert len(parts) == 2
    uids = {
        _attribute(ET.fromstring(doc), "00080018").findtext("n:Value", namespaces=NS)
        for _, doc in parts
    }
    assert uids == {ds.SOPInstanceUID for ds in slices}
    bulk = _attribute(ET.fromstring(parts[0][1]), "7FE00010").find("n:BulkData", NS)
    assert bulk is not None and bulk.get("uri", "").startswith("http")

    # JSON stays the default; a type nobody serves is 406.
    assert (
        sqlite_client.get("/dicom-web/studies")
        .headers["content-type"]
        .startswith("application/dicom+json")
    )
    assert (
        sqlite_client.get("/dicom-web/studies", headers={"Accept": "text/html"}).status_code == 406
    )
