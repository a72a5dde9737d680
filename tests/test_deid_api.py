"""POST /api/anonymize through the FastAPI app, and the per-installation secret."""

from __future__ import annotations

import io
import stat
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file

from radpacs.app import create_app
from radpacs.deid.secret import SECRET_FILE_NAME, installation_secret
from radpacs.errors import ConfigurationError
from radpacs.settings import load_settings

CT = Path(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings(data_dir=tmp_path))) as started:
        yield started


def _post(client: TestClient, data: bytes, params: str = "", **form: str) -> object:
    return client.post(
        f"/api/anonymize{params}",
        files={"file": ("ct.dcm", data, "application/dicom")},
        data=form or None,
    )


def test_anonymize_returns_a_dicom_file(client: TestClient, tmp_path: Path) -> None:
    original = pydicom.dcmread(CT)
    response = client.post(
        "/api/anonymize", files={"file": ("ct.dcm", CT.read_bytes(), "application/dicom")}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    result = pydicom.dcmread(io.BytesIO(response.content))
    assert result.PatientIdentityRemoved == "YES"
    assert result.SOPInstanceUID != original.SOPInstanceUID
    assert result.PatientName != original.PatientName
    assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
    secret_file = tmp_path / SECRET_FILE_NAME
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    again = client.post(
        "/api/anonymize", files={"file": ("ct.dcm", CT.read_bytes(), "application/dicom")}
    )
    assert again.content == response.content


def test_options_as_query_and_as_form(client: TestClient) -> None:
    original = pydicom.dcmread(CT)
    by_query = client.post(
        "/api/anonymize?retain_uids=true&retain_longitudinal_full_dates=true",
        files={"file": ("ct.dcm", CT.read_bytes(), "application/dicom")},
    )
    by_form = client.post(
        "/api/anonymize",
        files={"file": ("ct.dcm", CT.read_bytes(), "application/dicom")},
        data={"options": "retain_uids, retain_longitudinal_full_dates"},
    )
    assert by_query.status_code == by_form.status_code == 200
    assert by_query.content == by_form.content
    result = pydicom.dcmread(io.BytesIO(by_query.content))
    assert result.SOPInstanceUID == original.SOPInstanceUID
    assert result.StudyDate == original.StudyDate
    codes = [item.CodeValue for item in result.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113110", "113106"]


def test_bad_requests_get_400(client: TestClient) -> None:
    files = {"file": ("ct.dcm", CT.read_bytes(), "application/dicom")}
    unknown = client.post("/api/anonymize", files=files, data={"options": "retain_everything"})
    assert unknown.status_code == 400 and "retain_everything" in unknown.json()["detail"]
    both = client.post(
        "/api/anonymize?retain_longitudinal_full_dates=true&retain_longitudinal_modified_dates=true",
        files=files,
    )
    assert both.status_code == 400 and "exclude each other" in both.json()["detail"]
    junk = client.post(
        "/api/anonymize", files={"file": ("x.txt", b"not dicom at all", "text/plain")}
    )
    assert junk.status_code == 400


def test_burned_in_annotation_needs_pixels_checked(client: TestClient) -> None:
    ds = pydicom.dcmread(CT)
    ds.BurnedInAnnotation = "YES"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    files = {"file": ("ct.dcm", buffer.getvalue(), "application/dicom")}
    refused = client.post("/api/anonymize", files=files)
    assert refused.status_code == 400 and "Burned In Annotation" in refused.json()["detail"]
    accepted = client.post("/api/anonymize?pixels_checked=true", files=files)
    assert accepted.status_code == 200


def test_configured_secret_wins_and_file_secret_is_stable(tmp_path: Path) -> None:
    assert installation_secret("configured-secret-value", tmp_path) == b"configured-secret-value"
    assert not (tmp_path / SECRET_FILE_NAME).exists()
    first = installation_secret(None, tmp_path)
    assert installation_secret(None, tmp_path) == first and len(first) == 64
    (tmp_path / SECRET_FILE_NAME).write_text("short")
    with pytest.raises(ConfigurationError):
        installation_secret(None, tmp_path)


def test_setting_refuses_a_short_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        load_settings(data_dir=tmp_path, deid_secret="short")
