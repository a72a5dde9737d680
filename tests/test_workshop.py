"""The radiotherapy workshop notebook (seeds/000), step by step, with requests against a live
``radpacs serve --open-enrolment --demo`` and ``URL = http://HOST:PORT/api``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.filebase import DicomFileLike

from conftest import LiveServer
from radpacs.archive.demo import dataset_name, default_demo_dir

pytestmark = pytest.mark.skipif(default_demo_dir() is None, reason="no ../shared/data/rt-workshop")


def read_dicom_dataset(raw_data: bytes) -> pydicom.Dataset:
    """The notebook's helper: bytes of a DICOM file to a Dataset."""
    return pydicom.dcmread(io.BytesIO(raw_data))


def dicom_dataset_to_bytes(ds: pydicom.Dataset) -> io.BytesIO:
    """The notebook's helper: a Dataset to a file-like of its bytes."""
    buffer = io.BytesIO()
    memory_dataset = DicomFileLike(buffer)
    pydicom.dcmwrite(memory_dataset, ds)
    memory_dataset.seek(0)
    return buffer


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = LiveServer(
        tmp_path_factory.mktemp("workshop"), ["--auth", "--open-enrolment", "--demo"]
    ).start()
    yield f"{server.url}/api"
    server.stop()


def _steps_0_to_4(url: str, idul: str) -> dict[str, pydicom.Dataset]:
    # 0. Valider la connexion
    response = requests.get(f"{url}")
    assert response.status_code == 200
    assert response.json()["name"] == "radpacs"

    # 1. Création d'un compte
    response = requests.post(url=f"{url}/account", data={"idul": idul})
    assert response.status_code == 201, response.text
    assert response.json()["idul"] == idul
    assert requests.post(url=f"{url}/account", data={"idul": idul}).status_code == 409
    assert requests.post(url=f"{url}/account", data={"idul": "not valid!"}).status_code == 400

    # 2. Authentification
    response = requests.post(url=f"{url}/auth", data={"idul": idul})
    assert response.status_code == 200, response.text
    token = response.json()["token"]

    # 3. Récupération des données
    assert requests.get(f"{url}/data").status_code == 401
    response = requests.get(f"{url}/data", params={"token": token})
    assert response.status_code == 200
    names = response.json()
    assert sorted(names) == ["cone", "cylinder", "dose", "sphere"]
    datasets = {}
    for name in names:
        response = requests.get(f"{url}/data/{name}", params={"token": token})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/dicom"
        datasets[name] = read_dicom_dataset(response.content)
        assert str(datasets[name].PatientName)  # a name to remove
    assert datasets["dose"].Modality == "RTDOSE"
    assert {datasets[n].Modality for n in ("cone", "cylinder", "sphere")} == {"RTSTRUCT"}

    # 4. Anonymisation des données
    anonymized = {}
    for name, dataset in datasets.items():
        dataset_bytes = dicom_dataset_to_bytes(dataset)
        response = requests.post(
            f"{url}/anonymize", files={"file": dataset_bytes}, params={"token": token}
        )
        assert response.status_code == 200, response.text
        anonymized[name] = read_dicom_dataset(response.content)
        assert str(anonymized[name].PatientName) != str(dataset.PatientName)
    return anonymized | {"_token": token}  # type: ignore[dict-item]


def test_workshop_steps_0_to_4(url: str) -> None:
    """Connect, enrol, log in, list and download, anonymize: what exists on every branch."""
    _steps_0_to_4(url, "abcde12")


def test_workshop_whole_flow_with_dvh(url: str) -> None:
    """Steps 0 to 6 as the notebook does them, DVH computation and plot included."""
    anonymized = _steps_0_to_4(url, "fghij34")
    token = anonymized.pop("_token")

    # 5. Calculer des DVH
    dose_bytes = dicom_dataset_to_bytes(anonymized["dose"]).getvalue()
    dvhs = []
    for name in ("sphere", "cylinder", "cone"):
        struct_bytes = dicom_dataset_to_bytes(anonymized[name]).getvalue()
        response = requests.post(
            f"{url}/dvh",
            files={"file_struct": struct_bytes, "file_dose": dose_bytes},
            params={"token": token},
        )
        assert response.status_code == 200, response.text
        dvh = response.json()
        for key in ("name", "type", "volume", "dose_units", "doses", "volume_units", "volumes"):
            assert key in dvh, key
        assert len(dvh["doses"]) == len(dvh["volumes"]) > 1
        dvhs.append(dvh)

    # 6. Tracer des DVH
    response = requests.post(
        f"{url}/dvh/plot",
        json={
            "dvhs": [
                {
                    key: dvh[key]
                    for key in ("name", "volumes", "doses", "volume_units", "dose_units")
                }
                for dvh in dvhs
            ]
        },
        params={"token": token},
    )
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_demo_names() -> None:
    assert dataset_name(Path("rtdose.dcm")) == "dose"
    assert dataset_name(Path("rtstruct-sphere.dcm")) == "sphere"
    assert dataset_name(Path("ct.dcm")) == "ct"
