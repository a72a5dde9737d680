"""Promises of docs/dicomweb.md that had no test: STOW failure codes 0xC000 (series under
another study) and 0x0110 (forced), the qido_max_results cap and its Warning, result order,
transcoding to JPEG-LS, JPEG 2000 lossless and Deflated, the gzip threshold, and DELETE
under a failure (of the index, of a file)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from conftest import make_ct, multipart, split_multipart, to_bytes
from radpacs.app import create_app
from radpacs.archive import ingest
from radpacs.errors import StorageError
from radpacs.settings import load_settings

STOW = "/dicom-web/studies"


def _stow(client: TestClient, *datasets: pydicom.Dataset) -> dict[str, object]:
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    response = client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code in (200, 202, 400, 409), response.text
    result: dict[str, object] = response.json()
    return result


def _failures(answer: dict[str, object]) -> dict[str, int]:
    failed = answer.get("00081198", {"Value": []})
    assert isinstance(failed, dict)
    return {item["00081155"]["Value"][0]: item["00081197"]["Value"][0] for item in failed["Value"]}


def test_a_series_stored_under_another_study_fails_with_0xc000(
    sqlite_client: TestClient,
) -> None:
    first = make_ct()
    moved = make_ct(series_uid=first.SeriesInstanceUID)  # same series, another study
    assert moved.StudyInstanceUID != first.StudyInstanceUID
    _stow(sqlite_client, first)
    answer = _stow(sqlite_client, moved)
    assert _failures(answer) == {moved.SOPInstanceUID: 0xC000}
    found = sqlite_client.get(f"/dicom-web/studies/{moved.StudyInstanceUID}/instances")
    assert found.status_code == 404 or found.json() == []


def test_a_data_set_without_dicom_json_fails_with_0x0110_alone(
    sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced (a mock, named so): the JSON encoder raises for one instance; it fails with
    0x0110 and the other instance of the request is stored."""
    good, bad = make_ct(), make_ct()
    real = ingest.dataset_to_json

    def refuses_one(dataset: pydicom.Dataset, prefix: str) -> object:
        if dataset.SOPInstanceUID == bad.SOPInstanceUID:
            raise ValueError("forced: no DICOM JSON for this data set")
        return real(dataset, prefix)

    monkeypatch.setattr(ingest, "scan", lambda _data: None)  # the path that encodes
    monkeypatch.setattr(ingest, "dataset_to_json", refuses_one)
    answer = _stow(sqlite_client, good, bad)
    assert _failures(answer) == {bad.SOPInstanceUID: 0x0110}
    stored = answer["00081199"]
    assert isinstance(stored, dict)
    assert [i["00081155"]["Value"][0] for i in stored["Value"]] == [good.SOPInstanceUID]


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(data_dir=tmp_path / "data", qido_max_results=2)
    with TestClient(create_app(settings)) as client:
        yield client


def test_qido_max_results_caps_the_answer_with_a_warning_and_results_are_ordered(
    capped: TestClient,
) -> None:
    dates = ["20200101", "20240101", "20220101"]
    studies = [make_ct(StudyDate=date, StudyTime="080000") for date in dates]
    for study in studies:
        _stow(capped, study)
    first = capped.get("/dicom-web/studies")
    assert first.status_code == 200
    newest = [s["00080020"]["Value"][0] for s in first.json()]
    assert newest == ["20240101", "20220101"]  # newest first, cut at 2
    assert (
        'There are additional results that can be requested with offset=2"'
        in (first.headers["warning"])
    )
    rest = capped.get("/dicom-web/studies", params={"offset": 2})
    assert [s["00080020"]["Value"][0] for s in rest.json()] == ["20200101"]
    assert "warning" not in rest.headers

    study, series_b, series_a = generate_uid(), generate_uid(), generate_uid()
    _stow(
        capped,
        make_ct(study, series_b, SeriesNumber=2, InstanceNumber=1),
        make_ct(study, series_a, SeriesNumber=1, InstanceNumber=3),
        make_ct(study, series_a, SeriesNumber=1, InstanceNumber=1),
    )
    series = capped.get(f"/dicom-web/studies/{study}/series").json()
    assert [s["00200011"]["Value"][0] for s in series] == [1, 2]
    instances = capped.get(f"/dicom-web/studies/{study}/series/{series_a}/instances").json()
    assert [i["00200013"]["Value"][0] for i in instances] == [1, 3]


@pytest.mark.parametrize(
    "syntax",
    [
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    ],
)
def test_an_instance_is_transcoded_losslessly_on_request(
    sqlite_client: TestClient, syntax: str
) -> None:
    dataset = make_ct()
    _stow(sqlite_client, dataset)
    path = (
        f"/dicom-web/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'
    response = sqlite_client.get(path, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    [(content_type, payload)] = split_multipart(response)
    assert f"transfer-syntax={syntax}" in content_type.replace('"', "")
    served = pydicom.dcmread(io.BytesIO(payload))
    assert served.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(served.pixel_array, dataset.pixel_array)


def test_json_answers_are_gzipped_from_1_kib_when_asked(sqlite_client: TestClient) -> None:
    dataset = make_ct()
    _stow(sqlite_client, dataset)
    big = f"/dicom-web/studies/{dataset.StudyInstanceUID}/metadata"
    small = "/dicom-web/studies?StudyInstanceUID=1.2.3.4.5.6.7.8.9"  # [] : 2 bytes
    plain = sqlite_client.get(big, headers={"Accept-Encoding": "identity"})
    assert len(plain.content) >= 1024 and "content-encoding" not in plain.headers
    zipped = sqlite_client.get(big, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == plain.json()  # the client inflated it
    assert int(zipped.headers["content-length"]) < len(plain.content)
    short = sqlite_client.get(small, headers={"Accept-Encoding": "gzip"})
    assert short.status_code == 200 and "content-encoding" not in short.headers


def _instance_path(ds: pydicom.Dataset) -> str:
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def test_a_delete_the_index_refuses_answers_503_and_loses_nothing(
    sqlite_client: TestClient,
) -> None:
    """The real transaction fails at commit (an engine hook raises): nothing is deleted."""
    dataset = make_ct()
    _stow(sqlite_client, dataset)
    archive = sqlite_client.app.state.services.archive  # type: ignore[attr-defined]

    def refuse(_connection: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error (forced)"))

    event.listen(archive.engine, "commit", refuse)
    try:
        response = sqlite_client.delete(f"/dicom-web/studies/{dataset.StudyInstanceUID}")
    finally:
        event.remove(archive.engine, "commit", refuse)
    assert response.status_code == 503, response.text
    assert "refused the delete" in response.json()["detail"]
    kept = sqlite_client.get(_instance_path(dataset), headers={"Accept": "application/dicom"})
    assert kept.status_code == 200
    assert pydicom.dcmread(io.BytesIO(kept.content)).SOPInstanceUID == dataset.SOPInstanceUID


def test_a_file_that_cannot_be_removed_after_the_index_is_left_for_check(
    sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Index rows go first: when removing the file then fails (forced: the blob store's
    delete raises, a mock named so), the DELETE is done (204), the instance is gone from
    every answer and ``check`` reports the orphan file, which ``clean`` removes."""
    dataset = make_ct()
    _stow(sqlite_client, dataset)
    archive = sqlite_client.app.state.services.archive  # type: ignore[attr-defined]

    def fails(key: str) -> None:
        raise StorageError(f"forced: cannot remove {key}")

    with monkeypatch.context() as patch:
        patch.setattr(archive.blobs, "delete", fails)
        response = sqlite_client.delete(f"/dicom-web/studies/{dataset.StudyInstanceUID}")
    assert response.status_code == 204, response.text
    assert sqlite_client.get(_instance_path(dataset)).status_code == 404
    report = archive.check()
    assert len(report.orphan_keys) == 1 and report.missing == []
    assert archive.check(clean=True).cleaned == 1
    assert archive.check().orphan_keys == []
