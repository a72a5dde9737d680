"""Series and instances by their UID alone (dicomweb/by_uid.py, beyond PS3.18): the same
answers as under their study, 404 for an unknown UID."""

from __future__ import annotations

import io

import pydicom
from fastapi.testclient import TestClient

from conftest import make_ct, split_multipart, to_bytes

DW = "/dicom-web"


def test_series_and_instances_answer_without_their_parents(client: TestClient) -> None:
    dataset = make_ct()
    stored = client.post(
        f"{DW}/studies", content=to_bytes(dataset), headers={"Content-Type": "application/dicom"}
    )
    assert stored.status_code == 200
    study, series, sop = dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID
    full = f"{DW}/studies/{study}/series/{series}"
    for short, long in (
        (f"{DW}/series/{series}/metadata", f"{full}/metadata"),
        (f"{DW}/instances/{sop}/metadata", f"{full}/instances/{sop}/metadata"),
    ):
        assert client.get(short).json() == client.get(long).json()
    one = client.get(f"{DW}/instances/{sop}", headers={"Accept": "application/dicom"})
    assert one.status_code == 200
    assert pydicom.dcmread(io.BytesIO(one.content)).SOPInstanceUID == sop
    for short, long in (
        (f"{DW}/series/{series}", full),
        (f"{DW}/instances/{sop}/frames/1", f"{full}/instances/{sop}/frames/1"),
    ):
        response = client.get(short)
        assert response.status_code == 200
        assert split_multipart(response) == split_multipart(client.get(long))
    for path in (
        f"{DW}/instances/{sop}/rendered",
        f"{DW}/instances/{sop}/frames/1/rendered",
        f"{DW}/instances/{sop}/thumbnail",
        f"{DW}/series/{series}/rendered",
        f"{DW}/series/{series}/thumbnail",
    ):
        response = client.get(path, headers={"Accept": "image/png"})
        assert response.status_code == 200, path
        assert b"\x89PNG" in response.content[:200], path  # one image, or a multipart of them


def test_an_unknown_uid_is_404_in_words(sqlite_client: TestClient) -> None:
    for path in (f"{DW}/series/1.2.3.4", f"{DW}/instances/1.2.3.4/metadata"):
        response = sqlite_client.get(path)
        assert response.status_code == 404
        assert "1.2.3.4" in response.json()["detail"]
