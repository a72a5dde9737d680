"""STOW-RS of metadata and bulk data (PS3.18 10.5.1.2): multipart/related;
type="application/dicom+json" with the data sets in a JSON part and their bulk data in parts
named by Content-Location."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import orjson
import pydicom
from fastapi.testclient import TestClient

from conftest import make_ct

STOW = "/dicom-web/studies"
BOUNDARY = "json-bulk"


def _json_and_bulk(dataset: pydicom.Dataset, base: str) -> tuple[dict, dict[str, bytes]]:  # type: ignore[type-arg]
    bulk: dict[str, bytes] = {}

    def to_uri(element: pydicom.DataElement) -> str:
        uri = f"{base}/{element.tag:08X}"
        bulk[uri] = element.value
        return uri

    item = dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=to_uri)
    return item, bulk


def _body(items: list[dict], bulk: dict[str, bytes]) -> bytes:  # type: ignore[type-arg]
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: application/dicom+json\r\n\r\n".encode()
        + orjson.dumps(items)
        + b"\r\n"
    ]
    for uri, data in bulk.items():
        parts.append(
            f"--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Location: {uri}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


CONTENT_TYPE = f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}'


def test_metadata_and_bulk_data_are_stored_as_an_instance(
    sqlite_client: TestClient, tmp_path: Path
) -> None:
    good, orphan = make_ct(PatientName="Json^Stow"), make_ct()
    item, bulk = _json_and_bulk(good, "http://client.example/bulk/1")
    orphan_item, _ = _json_and_bulk(orphan, "http://client.example/bulk/2")  # parts not sent
    response = sqlite_client.post(
        STOW, content=_body([item, orphan_item], bulk), headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    [stored] = answer["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [good.SOPInstanceUID]
    [failed] = answer["00081198"]["Value"]
    assert failed["00081155"]["Value"] == [orphan.SOPInstanceUID]
    assert failed["00081197"]["Value"] == [0xC000]
    assert "names no part of the request" in response.headers["warning"]
    url = stored["00081190"]["Value"][0].replace("http://testserver", "")
    file = sqlite_client.get(url, headers={"Accept": "application/dicom"})
    back = pydicom.dcmread(io.BytesIO(file.content))
    assert back.PatientName == "Json^Stow"
    assert back.PixelData == good.PixelData
    assert str(back.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1"
    written = tmp_path / "from-json.dcm"
    written.write_bytes(file.content)
    report = subprocess.run(["dciodvfy", str(written)], capture_output=True, text=True)
    errors = [line for line in report.stderr.splitlines() if line.startswith("Error")]
    assert errors == [], errors


def test_another_part_type_is_415_in_words(sqlite_client: TestClient) -> None:
    response = sqlite_client.post(
        STOW,
        content=b"--b--",
        headers={"Content-Type": 'multipart/related; type="application/pdf"; boundary=b'},
    )
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "application/dicom+json" in detail and "application/dicom+xml" in detail
