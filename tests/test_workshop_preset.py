"""``radpacs serve --workshop``: the workshop's solution notebook (seeds/000) runs unchanged,
calling /anonymize, /dvh and /dvh/plot without a token; without the preset those answer 401.

Every call below is the notebook's own, with ``URL = http://HOST:PORT/api``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import LiveServer
from radpacs.archive.demo import default_demo_dir
from radpacs.auth.policy import POLICY, WORKSHOP_OPEN, rule_for
from radpacs.auth.roles import Permission
from test_workshop import dicom_dataset_to_bytes, read_dicom_dataset

needs_demo = pytest.mark.skipif(default_demo_dir() is None, reason="no ../shared/data/rt-workshop")


@pytest.fixture(scope="module")
def workshop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("preset"), ["--auth", "--workshop"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("default"), ["--auth", "--open-enrolment", "--demo"]
    ).start()
    yield server
    server.stop()


def _notebook(URL: str, idul: str) -> tuple[list[int], bytes]:
    """The solution notebook, steps 0 to 6; the statuses of the token-less calls and the PNG."""
    response = requests.get(f"{URL}")
    assert response.status_code == 200
    response = requests.post(url=f"{URL}/account", data={"idul": idul})
    assert response.status_code == 201, response.text
    token = requests.post(url=f"{URL}/auth", data={"idul": idul}).json()["token"]
    names = requests.get(f"{URL}/data", params={"token": token}).json()
    datasets = {
        name: read_dicom_dataset(
            requests.get(f"{URL}/data/{name}", params={"token": token}).content
        )
        for name in names
    }
    statuses = []
    anonymized = {}
    for name, dataset in datasets.items():
        response = requests.post(
            f"{URL}/anonymize", files={"file": dicom_dataset_to_bytes(dataset)}
        )
        statuses.append(response.status_code)
        if response.status_code != 200:
            return statuses, b""
        anonymized[name] = read_dicom_dataset(response.content)
        assert str(anonymized[name].PatientName) != str(dataset.PatientName)
    dvhs = []
    for name in ("sphere", "cylinder", "cone"):
        response = requests.post(
            f"{URL}/dvh",
            files={
                "file_struct": dicom_dataset_to_bytes(anonymized[name]),
                "file_dose": dicom_dataset_to_bytes(anonymized["dose"]),
            },
        )
        statuses.append(response.status_code)
        dvhs.append(response.json())
    keys = ("name", "volumes", "doses", "volume_units", "dose_units")
    response = requests.post(
        f"{URL}/dvh/plot", json={"dvhs": [{key: dvh[key] for key in keys} for dvh in dvhs]}
    )
    statuses.append(response.status_code)
    return statuses, response.content


@needs_demo
def test_the_notebook_runs_without_tokens_under_workshop(workshop_server: LiveServer) -> None:
    statuses, png = _notebook(f"{workshop_server.url}/api", "wkshp01")
    assert statuses == [200] * 8
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # stored data still needs a token
    assert requests.get(f"{workshop_server.url}/api/data").status_code == 401
    assert requests.get(f"{workshop_server.url}/dicom-web/studies").status_code == 401


@needs_demo
def test_without_the_preset_the_compute_routes_answer_401(default_server: LiveServer) -> None:
    statuses, _ = _notebook(f"{default_server.url}/api", "wkshp02")
    assert statuses == [401]
    url = f"{default_server.url}/api"
    response = requests.post(f"{url}/dvh/plot", json={"dvhs": []})
    assert response.status_code == 401
    assert "token" in response.json()["detail"]


@needs_demo
def test_the_preset_is_logged_as_warnings_at_start(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", ["--auth", "--workshop"]).start()
    server.stop()
    log = server.stderr_path.read_text()
    assert "WARNING" in log
    assert "workshop preset: POST /api/anonymize, /api/dvh and /api/dvh/plot" in log
    assert "open enrolment: anyone can create a password-less reader account" in log


def test_nothing_is_open_without_the_preset() -> None:
    for method, template in POLICY:
        assert rule_for(method, template) == POLICY[(method, template)]
    for method, template in WORKSHOP_OPEN:
        assert rule_for(method, template).permission is Permission.COMPUTE  # type: ignore[union-attr]
        opened = rule_for(method, template, workshop=True)
        assert opened is not None and opened.permission is Permission.PUBLIC
        assert opened.action == POLICY[(method, template)].action  # still audited
    opened_by_preset = {key for key in POLICY if rule_for(*key, workshop=True) != rule_for(*key)}
    assert opened_by_preset == WORKSHOP_OPEN
