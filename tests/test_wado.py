"""WADO-RS over HTTP: instances, transcoding, frames, bulk data, metadata, delete."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless

from conftest import PYDICOM_FILES, make_ct, multipart, split_multipart, to_bytes

ROOT = "/dicom-web"


def store_files(client: TestClient, *names: str) -> list[pydicom.Dataset]:
    payloads = [(PYDICOM_FILES / name).read_bytes() for name in names]
    body, content_type = multipart(payloads)
    response = client.post(f"{ROOT}/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    return [pydicom.dcmread(io.BytesIO(p)) for p in payloads]


def instance_path(dataset: pydicom.Dataset) -> str:
    return (
        f"{ROOT}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )


def test_study_series_and_instance_come_back_byte_for_byte(client: TestClient) -> None:
    study = "1.2.826.0.1.3680043.8.498.77"
    datasets = [make_ct(study), make_ct(study), make_ct(study)]
    payloads = [to_bytes(d) for d in datasets]
    body, content_type = multipart(payloads)
    assert (
        client.post(
            f"{ROOT}/studies", content=body, headers={"Content-Type": content_type}
        ).status_code
        == 200
    )
    response = client.get(
        f"{ROOT}/studies/{study}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        'multipart/related; type="application/dicom"'
    )
    parts = split_multipart(response)
    assert sorted(p for _, p in parts) == sorted(payloads)
    assert all(ct.startswith("application/dicom; transfer-syntax=") for ct, _ in parts)
    series = client.get(f"{ROOT}/studies/{study}/series/{datasets[0].SeriesInstanceUID}")
    assert [p for _, p in split_multipart(series)] == [payloads[0]]
    single = client.get(instance_path(datasets[1]), headers={"Accept": "application/dicom"})
    assert single.content == payloads[1]


def test_unknown_uids_are_404(sqlite_client: TestClient) -> None:
    for path in (
        "/studies/1.2.3",
        "/studies/1.2.3/series/4.5",
        "/studies/1.2.3/series/4.5/instances/6.7",
        "/studies/1.2.3/metadata",
        "/studies/1.2.3/series/4.5/instances/6.7/frames/1",
    ):
        response = sqlite_client.get(ROOT + path)
        assert response.status_code == 404, path
        assert "1.2.3" in response.json()["detail"]


def test_a_compressed_instance_is_decoded_on_request(client: TestClient) -> None:
    [stored] = store_files(client, "SC_rgb_rle.dcm")
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={ExplicitVRLittleEndian}'
    )
    response = client.get(instance_path(stored), headers={"Accept": accept})
    assert response.status_code == 200
    [(content_type, data)] = split_multipart(response)
    assert content_type.endswith(ExplicitVRLittleEndian)
    served = pydicom.dcmread(io.BytesIO(data))
    assert served.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(served.pixel_array, stored.pixel_array)


def test_an_uncompressed_instance_is_encoded_rle_on_request(client: TestClient) -> None:
    [stored] = store_files(client, "MR_small.dcm")
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={RLELossless}'
    [(_, data)] = split_multipart(client.get(instance_path(stored), headers={"Accept": accept}))
    served = pydicom.dcmread(io.BytesIO(data))
    assert served.file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(served.pixel_array, stored.pixel_array)


def test_an_impossible_conversion_is_406_before_any_byte(client: TestClient) -> None:
    [stored] = store_files(client, "MR_small.dcm")
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={JPEGBaseline8Bit}'
    response = client.get(instance_path(stored), headers={"Accept": accept})
    assert response.status_code == 406
    assert "transfer-syntax=*" in response.json()["detail"]
    assert (
        client.get(instance_path(stored), headers={"Accept": "application/zip"}).status_code == 406
    )


def test_frames_as_stored_for_ohif(client: TestClient) -> None:
    [stored] = store_files(client, "SC_rgb_rle_2frame.dcm")
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    response = client.get(f"{instance_path(stored)}/frames/2,1", headers={"Accept": accept})
    assert response.status_code == 200
    parts = split_multipart(response)
    assert [ct for ct, _ in parts] == [f"image/x-dicom-rle; transfer-syntax={RLELossless}"] * 2
    expected = list(pydicom.encaps.generate_frames(stored.PixelData, number_of_frames=2))
    assert [p for _, p in parts] == [expected[1], expected[0]]


def test_frames_decoded_by_default(client: TestClient) -> None:
    [stored] = store_files(client, "SC_rgb_rle_2frame.dcm")
    response = client.get(
        f"{instance_path(stored)}/frames/2",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    [(content_type, data)] = split_multipart(response)
    assert content_type == f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}"
    assert data == stored.pixel_array[1].astype("<u1").tobytes()


def test_native_frames_are_slices_of_the_pixel_data(client: TestClient) -> None:
    [stored] = store_files(client, "CT_small.dcm")
    response = client.get(f"{instance_path(stored)}/frames/1")
    [(_, data)] = split_multipart(response)
    assert data == stored.PixelData
    assert np.array_equal(np.frombuffer(data, "<i2").reshape(128, 128), stored.pixel_array)


def test_jpeg_frames_served_as_image_jpeg(client: TestClient) -> None:
    [stored] = store_files(client, "SC_rgb_jpeg_dcmtk.dcm")
    response = client.get(
        f"{instance_path(stored)}/frames/1",
        headers={"Accept": 'multipart/related; type="image/jpeg"'},
    )
    [(content_type, data)] = split_multipart(response)
    assert content_type.startswith("image/jpeg")
    assert data.startswith(b"\xff\xd8")


@pytest.mark.parametrize(("frames", "status"), [("3", 400), ("0", 400), ("1,x", 400), ("1-2", 400)])
def test_bad_frame_numbers(client: TestClient, frames: str, status: int) -> None:
    [stored] = store_files(client, "SC_rgb_rle_2frame.dcm")
    response = client.get(f"{instance_path(stored)}/frames/{frames}")
    assert response.status_code == status
    assert "frame" in response.json()["detail"]


def test_metadata_has_bulkdata_uris_that_serve_the_bytes(client: TestClient) -> None:
    [stored] = store_files(client, "CT_small.dcm")
    response = client.get(f"{instance_path(stored)}/metadata")
    assert response.status_code == 200
    [metadata] = response.json()
    assert metadata["00100010"]["Value"] == [{"Alphabetic": str(stored.PatientName)}]
    assert metadata["00083002"]["Value"] == [stored.file_meta.TransferSyntaxUID]
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert uri.startswith("http://testserver/dicom-web/studies/")
    path = uri.removeprefix("http://testserver")
    assert (
        client.get(path, headers={"Accept": "application/octet-stream"}).content == stored.PixelData
    )
    [(_, data)] = split_multipart(
        client.get(path, headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    )
    assert data == stored.PixelData
    ranged = client.get(
        path, headers={"Accept": "application/octet-stream", "Range": "bytes=10-19"}
    )
    assert ranged.status_code == 206
    assert ranged.content == stored.PixelData[10:20]
    assert ranged.headers["content-range"] == f"bytes 10-19/{len(stored.PixelData)}"
    tail = client.get(path, headers={"Range": "bytes=-4"})
    assert tail.content == stored.PixelData[-4:]
    assert client.get(path, headers={"Range": "bytes=999999-"}).status_code == 416


def test_bulkdata_inside_sequences(client: TestClient) -> None:
    icon = pydicom.Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated = 40, 50, 8
    icon.add_new("PixelData", "OB", bytes(range(256)) * 8)
    dataset = make_ct(IconImageSequence=pydicom.Sequence([icon]))
    body, content_type = multipart([to_bytes(dataset)])
    client.post(f"{ROOT}/studies", content=body, headers={"Content-Type": content_type})
    [metadata] = client.get(f"{instance_path(dataset)}/metadata").json()
    uri = metadata["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"{instance_path(dataset)}/bulkdata/00880200/0/7FE00010")
    assert client.get(uri.removeprefix("http://testserver")).content == bytes(range(256)) * 8
    assert client.get(instance_path(dataset) + "/bulkdata/00880200/1/7FE00010").status_code == 404
    assert client.get(instance_path(dataset) + "/bulkdata/00100010").status_code == 404
    assert client.get(instance_path(dataset) + "/bulkdata/zzzz").status_code == 400


def test_series_metadata_etag_and_change(client: TestClient) -> None:
    study, series = "1.2.826.0.1.3680043.8.498.88", "1.2.826.0.1.3680043.8.498.89"
    first = make_ct(study, series, InstanceNumber=2)
    body, content_type = multipart([to_bytes(first)])
    client.post(f"{ROOT}/studies", content=body, headers={"Content-Type": content_type})
    url = f"{ROOT}/studies/{study}/series/{series}/metadata"
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    etag = response.headers["etag"]
    assert response.headers["content-encoding"] == "gzip"
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    second = make_ct(study, series, InstanceNumber=1)
    body, content_type = multipart([to_bytes(second)])
    client.post(f"{ROOT}/studies", content=body, headers={"Content-Type": content_type})
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert [m["00080018"]["Value"][0] for m in changed.json()] == [
        second.SOPInstanceUID,
        first.SOPInstanceUID,
    ]
    assert len(client.get(f"{ROOT}/studies/{study}/metadata").json()) == 2


def test_delete_study_series_instance(client: TestClient) -> None:
    study, series = "1.2.826.0.1.3680043.8.498.91", "1.2.826.0.1.3680043.8.498.92"
    a, b, c = make_ct(study, series), make_ct(study, series), make_ct(study)
    body, content_type = multipart([to_bytes(a), to_bytes(b), to_bytes(c)])
    client.post(f"{ROOT}/studies", content=body, headers={"Content-Type": content_type})
    assert client.delete(instance_path(a)).status_code == 204
    assert client.get(instance_path(a)).status_code == 404
    assert client.delete(instance_path(a)).status_code == 404
    assert client.delete(f"{ROOT}/studies/{study}/series/{series}").status_code == 204
    assert len(client.get(f"{ROOT}/studies/{study}/instances").json()) == 1
    assert client.delete(f"{ROOT}/studies/{study}").status_code == 204
    assert client.get(f"{ROOT}/studies").json() == []
    assert client.delete(f"{ROOT}/studies/{study}").status_code == 404


def test_a_body_longer_than_one_chunk_streams_with_its_content_length(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("radpacs.dicomweb.responses.STREAM_CHUNK_BYTES", 1000)
    study = "1.2.826.0.1.3680043.8.498.78"
    payloads = [to_bytes(make_ct(study)) for _ in range(4)]
    body, content_type = multipart(payloads)
    client.post(f"{ROOT}/studies", content=body, headers={"Content-Type": content_type})
    response = client.get(f"{ROOT}/studies/{study}")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert sorted(p for _, p in split_multipart(response)) == sorted(payloads)


def test_a_stored_file_of_the_wrong_size_is_an_error_not_a_wrong_body(client: TestClient) -> None:
    [stored] = store_files(client, "CT_small.dcm")
    archive = client.app.state.services.archive  # type: ignore[attr-defined]
    [file] = archive.instance_files(stored.StudyInstanceUID)
    path = archive.blobs.local_path(file.storage_key)
    path.write_bytes(path.read_bytes()[:-10])
    response = client.get(f"{ROOT}/studies/{stored.StudyInstanceUID}")
    assert response.status_code == 503  # StorageError, as for any unreadable store
    assert "radpacs check" in response.json()["detail"]
