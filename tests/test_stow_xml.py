"""STOW-RS of metadata and bulk data as XML (PS3.18 10.5.1.2, PS3.19 Native DICOM Model):
multipart/related; type="application/dicom+xml" with one data set per XML part and its bulk
data in parts named by Content-Location."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient

from conftest import PYDICOM_FILES, make_ct, multipart, split_multipart, to_bytes
from radpacs.app import create_app
from radpacs.dicom.from_xml import xml_to_json
from radpacs.dicomweb import stow
from radpacs.errors import InvalidInput
from radpacs.settings import load_settings

STOW = "/dicom-web/studies"
BOUNDARY = "xml-bulk"
CONTENT_TYPE = f'multipart/related; type="application/dicom+xml"; boundary={BOUNDARY}'
XML_ACCEPT = 'multipart/related; type="application/dicom+xml"'
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lollollollollollollollollollol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<NativeDicomModel><DicomAttribute tag="00100010" vr="PN"><PersonName number="1">
<Alphabetic><FamilyName>&lol9;</FamilyName></Alphabetic></PersonName></DicomAttribute>
</NativeDicomModel>"""


@pytest.fixture
def target(tmp_path: Path) -> Iterator[TestClient]:
    """A second, empty archive that the XML is stored into."""
    settings = load_settings(data_dir=tmp_path / "target")
    with TestClient(create_app(settings)) as client:
        yield client


def _body(documents: list[bytes], bulk: dict[str, bytes]) -> bytes:
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: application/dicom+xml\r\n\r\n".encode() + doc + b"\r\n"
        for doc in documents
    ]
    for uri, data in bulk.items():
        parts.append(
            f"--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Location: {uri}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _export(source: TestClient, dataset: pydicom.Dataset) -> tuple[bytes, dict[str, bytes]]:
    """The instance's metadata as the source's WADO-RS answers it in XML, and its bulk data."""
    base = (
        f"/dicom-web/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    metadata = source.get(f"{base}/metadata", headers={"Accept": XML_ACCEPT})
    assert metadata.status_code == 200, metadata.text
    [(part_type, document)] = split_multipart(metadata)
    assert part_type == "application/dicom+xml"
    bulk: dict[str, bytes] = {}
    for uri in _bulk_uris(document):
        answer = source.get(uri.replace("http://testserver", ""), headers={"Accept": "*/*"})
        assert answer.status_code == 200, (uri, answer.text)
        bulk[uri] = answer.content
    return document, bulk


def _bulk_uris(document: bytes) -> list[str]:
    from xml.etree import ElementTree as ET

    return [
        element.get("uri", "")
        for element in ET.fromstring(document).iter()
        if element.tag.endswith("BulkData")
    ]


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "MR_small.dcm"])
def test_xml_metadata_and_bulk_data_round_trip(
    sqlite_client: TestClient, target: TestClient, tmp_path: Path, name: str
) -> None:
    original = (PYDICOM_FILES / name).read_bytes()
    dataset = pydicom.dcmread(io.BytesIO(original))
    body, content_type = multipart([original])
    stored = sqlite_client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text
    document, bulk = _export(sqlite_client, dataset)
    if name != "rtplan.dcm":
        assert bulk, "the pixel data travels as a bulk data part"

    response = target.post(
        STOW, content=_body([document], bulk), headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 200, response.text
    [referenced] = response.json()["00081199"]["Value"]
    assert referenced["00081155"]["Value"] == [dataset.SOPInstanceUID]

    # Read back: the same data set, element for element, and the same metadata.
    url = referenced["00081190"]["Value"][0].replace("http://testserver", "")
    back = pydicom.dcmread(
        io.BytesIO(target.get(url, headers={"Accept": "application/dicom"}).content)
    )
    for element in dataset:
        if element.tag.is_private:
            continue
        assert element.tag in back, element
        assert back[element.tag].value == element.value, element
    again, again_bulk = _export(target, dataset)
    # The same metadata but for the transfer syntax the archive chose (PS3.18 10.5.1.2: the
    # origin server encodes data sets sent as metadata, here as Explicit VR Little Endian).
    sent, read_back = xml_to_json(document), xml_to_json(again)
    assert sent.pop("00083002") == {"vr": "UI", "Value": [str(dataset.file_meta.TransferSyntaxUID)]}
    assert read_back.pop("00083002") == {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]}
    assert read_back == sent
    assert again_bulk == bulk
    written = tmp_path / "from-xml.dcm"
    written.write_bytes(target.get(url, headers={"Accept": "application/dicom"}).content)
    report = subprocess.run(["dciodvfy", str(written)], capture_output=True, text=True)
    new_errors = [line for line in report.stderr.splitlines() if line.startswith("Error")]
    source_file = tmp_path / "source.dcm"
    source_file.write_bytes(original)
    source_report = subprocess.run(["dciodvfy", str(source_file)], capture_output=True, text=True)
    old_errors = [line for line in source_report.stderr.splitlines() if line.startswith("Error")]
    assert set(new_errors) <= set(old_errors), new_errors  # nothing the source did not have


def test_bad_xml_fails_alone(sqlite_client: TestClient) -> None:
    good = make_ct(PatientName="Xml^Good")
    source_body, content_type = multipart([to_bytes(good)])
    sqlite_client.post(STOW, content=source_body, headers={"Content-Type": content_type})
    document, bulk = _export(sqlite_client, good)
    sqlite_client.delete(f"/dicom-web/studies/{good.StudyInstanceUID}")

    documents = [b"<NativeDicomModel><DicomAttribute tag=", document, b"<Other/>"]
    response = sqlite_client.post(
        STOW, content=_body(documents, bulk), headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    [stored] = answer["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [good.SOPInstanceUID]
    failed = answer["00081198"]["Value"]
    assert [item["00081197"]["Value"] for item in failed] == [[0xC000], [0xC000]]
    warning = response.headers["warning"]
    assert "part 1 is not DICOM XML: the XML is not well-formed" in warning
    assert "not <NativeDicomModel>" in warning

    only_bad = sqlite_client.post(
        STOW, content=_body([b"not xml"], {}), headers={"Content-Type": CONTENT_TYPE}
    )
    assert only_bad.status_code == 400
    assert "not well-formed" in only_bad.headers["warning"]


def test_xml_bomb_is_refused_before_expansion(sqlite_client: TestClient) -> None:
    response = sqlite_client.post(
        STOW, content=_body([BOMB], {}), headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 400
    assert "DTD, entities or external references" in response.headers["warning"]
    external = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    with pytest.raises(InvalidInput, match="refused"):
        xml_to_json(external + b"<NativeDicomModel>&e;</NativeDicomModel>")


def test_a_metadata_part_over_the_limit_fails_alone_unparsed(
    sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stow, "_METADATA_PART_BYTES", 4096)
    huge = b"<NativeDicomModel>" + b"<!-- padding -->" * 400 + b"</NativeDicomModel>"
    response = sqlite_client.post(
        STOW, content=_body([huge], {}), headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 400
    assert "over the 4096 bytes a metadata part may have" in response.headers["warning"]


def test_xml_reader_values_names_and_limits() -> None:
    document = (
        b'<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">'
        b'<DicomAttribute tag="00280010" vr="US"><Value number="1">512</Value></DicomAttribute>'
        b'<DicomAttribute tag="00281050" vr="DS"><Value number="2">-20.5</Value>'
        b'<Value number="1">40</Value></DicomAttribute>'
        b'<DicomAttribute tag="00100010"><PersonName number="1"><Alphabetic>'
        b"<FamilyName>Doe</FamilyName><GivenName>Jane</GivenName></Alphabetic>"
        b"</PersonName></DicomAttribute>"
        b'<DicomAttribute tag="00100020" vr="LO"><Value number="1"/></DicomAttribute>'
        b"</NativeDicomModel>"
    )
    assert xml_to_json(document) == {
        "00280010": {"vr": "US", "Value": [512]},
        "00281050": {"vr": "DS", "Value": [40.0, -20.5]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "00100020": {"vr": "LO", "Value": [None]},
    }
    with pytest.raises(InvalidInput, match="not a number"):
        xml_to_json(
            b'<NativeDicomModel><DicomAttribute tag="00280010" vr="US">'
            b'<Value number="1">many</Value></DicomAttribute></NativeDicomModel>'
        )
    deep = b"".join(b'<DicomAttribute tag="00081115" vr="SQ"><Item number="1">' for _ in range(100))
    deep += b"".join(b"</Item></DicomAttribute>" for _ in range(100))
    with pytest.raises(InvalidInput, match="nest deeper"):
        xml_to_json(b"<NativeDicomModel>" + deep + b"</NativeDicomModel>")
