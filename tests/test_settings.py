"""Settings from YAML, environment and overrides; CORS, allowed hosts and policies as configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from conftest import make_ct, multipart, to_bytes
from radpacs.app import create_app
from radpacs.settings import DuplicatePolicy, load_settings


def test_yaml_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "settings.yml"
    config.write_text("port: 9001\nduplicate_policy: replace\ncors_origins: ['http://a.example']\n")
    monkeypatch.setenv("RADPACS_CONFIG", str(config))
    settings = load_settings()
    assert (settings.port, settings.duplicate_policy) == (9001, DuplicatePolicy.REPLACE)
    assert settings.cors_origins == ["http://a.example"]
    monkeypatch.setenv("RADPACS_PORT", "9002")
    assert load_settings().port == 9002
    assert load_settings(port=9003).port == 9003
    assert load_settings(port=None).port == 9002


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'index.sqlite').resolve()}"


@pytest.mark.parametrize(
    "content",
    ["no_such_setting: 1\n", "allowed_hosts: ['not-an-address']\n", "duplicate_policy: ignore\n"],
)
def test_bad_settings_are_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    config = tmp_path / "settings.yml"
    config.write_text(content)
    monkeypatch.setenv("RADPACS_CONFIG", str(config))
    with pytest.raises(ValidationError):
        load_settings()


def test_a_missing_named_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADPACS_CONFIG", "/nonexistent/settings.yml")
    with pytest.raises(FileNotFoundError):
        load_settings()


def test_cors_exposes_the_dicomweb_headers(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, cors_origins=["http://viewer.example"])
    with TestClient(create_app(settings)) as client:
        preflight = client.options(
            "/dicom-web/studies",
            headers={"Origin": "http://viewer.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "http://viewer.example"
        response = client.get("/dicom-web/studies", headers={"Origin": "http://viewer.example"})
        assert "ETag" in response.headers["access-control-expose-headers"]
        other = client.get("/dicom-web/studies", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_allowed_hosts_refuse_other_clients(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, allowed_hosts=["10.0.0.0/8"])
    with TestClient(create_app(settings), client=("192.168.1.5", 5000)) as client:
        response = client.get("/api/health")
        assert response.status_code == 403
        assert "192.168.1.5" in response.json()["detail"]
    with TestClient(create_app(settings), client=("10.1.2.3", 5000)) as client:
        assert client.get("/api/health").status_code == 200


def test_public_base_url_is_used_in_urls(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, public_base_url="https://pacs.example.org/rp/")
    with TestClient(create_app(settings)) as client:
        dataset = make_ct()
        body, content_type = multipart([to_bytes(dataset)])
        answer = client.post(
            "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
        )
        url = answer.json()["00081190"]["Value"][0]
        assert url == f"https://pacs.example.org/rp/dicom-web/studies/{dataset.StudyInstanceUID}"


def test_replace_policy_over_http_answers_202_and_says_so(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, duplicate_policy="replace")
    with TestClient(create_app(settings)) as client:
        original = make_ct(PatientName="Before")
        changed = make_ct(
            original.StudyInstanceUID,
            original.SeriesInstanceUID,
            original.SOPInstanceUID,
            PatientName="After",
        )
        statuses = []
        for dataset in (original, changed):
            body, content_type = multipart([to_bytes(dataset)])
            response = client.post(
                "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
            )
            statuses.append(response.status_code)
        assert statuses == [200, 202]
        assert "replaced" in response.headers["warning"]
        [study] = client.get("/dicom-web/studies").json()
        assert study["00100010"]["Value"] == [{"Alphabetic": "Before"}]  # study rows keep the first
        [metadata] = client.get(f"/dicom-web/studies/{original.StudyInstanceUID}/metadata").json()
        assert metadata["00100010"]["Value"] == [{"Alphabetic": "After"}]
