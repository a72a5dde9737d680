"""Rendered and thumbnail resources, compressed frames and transcoding, over HTTP.

The compressed instances are pydicom's own test files: JPEG baseline, JPEG extended, JPEG
lossless (process 14), JPEG-LS, JPEG 2000 (lossless and lossy) and RLE.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import PYDICOM_FILES, make_ct, multipart, split_multipart, to_bytes

COMPRESSED = {
    "JPEG baseline": "SC_jpeg_no_color_transform.dcm",
    "JPEG extended": "JPGExtended.dcm",
    "JPEG lossless": "SC_rgb_jpeg_gdcm.dcm",
    "JPEG-LS lossless": "MR_small_jpeg_ls_lossless.dcm",
    "JPEG 2000 lossless": "MR_small_jp2klossless.dcm",
    "JPEG 2000": "JPEG2000.dcm",
    "RLE": "MR_small_RLE.dcm",
    "RLE 2 frames": "SC_rgb_rle_2frame.dcm",
}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
FRAMES_AS = "multipart/related; type=application/octet-stream; transfer-syntax="
INSTANCES_AS = 'multipart/related; type="application/dicom"; transfer-syntax='


def _store(client: TestClient, *datasets: pydicom.Dataset) -> None:
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    response = client.post(
        "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text


def _store_file(client: TestClient, name: str) -> pydicom.Dataset:
    dataset = pydicom.dcmread(PYDICOM_FILES / name)
    body, content_type = multipart([(PYDICOM_FILES / name).read_bytes()])
    response = client.post(
        "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code in (200, 202), response.text
    return dataset


def _path(ds: pydicom.Dataset) -> str:
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def _image(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


@pytest.fixture
def ct_series(sqlite_client: TestClient) -> list[pydicom.Dataset]:
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    slices = [make_ct(study, series, InstanceNumber=n) for n in range(1, 4)]
    _store(sqlite_client, *slices)
    return slices


def test_rendered_instance_is_a_jpeg_of_the_stored_window(
    sqlite_client: TestClient, ct_series: list[pydicom.Dataset]
) -> None:
    response = sqlite_client.get(_path(ct_series[0]) + "/rendered")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    image = _image(response.content)
    assert image.format == "JPEG" and image.size == (128, 128) and image.mode == "L"
    assert np.asarray(image).std() > 10
    # the stored window (PS3.3 C.11.2.1.2, LINEAR) is the one applied: a CT stored with
    # W/L 400/40 renders as that window of its Hounsfield units, to JPEG precision
    windowed = make_ct(WindowCenter=40, WindowWidth=400)
    _store(sqlite_client, windowed)
    got = np.asarray(_image(sqlite_client.get(_path(windowed) + "/rendered").content), float)
    hu = windowed.pixel_array * float(windowed.RescaleSlope) + float(windowed.RescaleIntercept)

    def window(center: float, width: float) -> np.ndarray:
        return 255 * np.clip((hu - (center - 0.5)) / (width - 1) + 0.5, 0, 1)

    assert np.abs(got - window(40, 400)).mean() < 3
    assert np.abs(got - window(140, 400)).mean() > 20  # another window is told apart


def test_window_changes_the_pixels_and_png_is_lossless(
    sqlite_client: TestClient, ct_series: list[pydicom.Dataset]
) -> None:
    path = _path(ct_series[0]) + "/rendered"
    narrow = sqlite_client.get(path, params={"window": "40,80"}, headers={"Accept": "image/png"})
    wide = sqlite_client.get(
        path, params={"window": "40,4000,LINEAR_EXACT"}, headers={"Accept": "image/png"}
    )
    sigmoid = sqlite_client.get(
        path, params={"window": "40,400,SIGMOID"}, headers={"Accept": "image/png"}
    )
    assert {r.headers["content-type"] for r in (narrow, wide, sigmoid)} == {"image/png"}
    a, b, c = (np.asarray(_image(r.content)) for r in (narrow, wide, sigmoid))
    assert _image(narrow.content).format == "PNG"
    # A narrow window saturates more pixels to black or white than a wide one.
    saturated = lambda x: int(((x == 0) | (x == 255)).sum())  # noqa: E731
    assert saturated(a) > saturated(b)
    assert not np.array_equal(a, c)


def test_viewport_and_quality(sqlite_client: TestClient, ct_series: list[pydicom.Dataset]) -> None:
    path = _path(ct_series[0]) + "/rendered"
    small = sqlite_client.get(path, params={"viewport": "64,32", "quality": "95"})
    assert _image(small.content).size == (32, 32)
    low = sqlite_client.get(path, params={"quality": "5"})
    high = sqlite_client.get(path, params={"quality": "95"})
    assert len(low.content) < len(high.content)


@pytest.mark.parametrize(
    "params",
    [
        {"window": "40"},
        {"window": "a,b"},
        {"window": "40,0"},
        {"viewport": "0,10"},
        {"viewport": "x"},
        {"quality": "0"},
        {"quality": "high"},
    ],
)
def test_bad_parameters_are_400(
    sqlite_client: TestClient, ct_series: list[pydicom.Dataset], params: dict[str, str]
) -> None:
    response = sqlite_client.get(_path(ct_series[0]) + "/rendered", params=params)
    assert response.status_code == 400, params
    assert response.json()["detail"]


def test_unacceptable_media_type_is_406(
    sqlite_client: TestClient, ct_series: list[pydicom.Dataset]
) -> None:
    response = sqlite_client.get(_path(ct_series[0]) + "/rendered", headers={"Accept": "image/gif"})
    assert response.status_code == 406


def test_study_and_series_rendered_are_multipart_one_image_per_instance(
    sqlite_client: TestClient, ct_series: list[pydicom.Dataset]
) -> None:
    ds = ct_series[0]
    for path in (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/rendered",
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/rendered",
    ):
        response = sqlite_client.get(
            path, headers={"Accept": 'multipart/related; type="image/png"'}
        )
        assert response.status_code == 200
        parts = split_multipart(response)
        assert [content_type for content_type, _ in parts] == ["image/png"] * 3
        assert all(_image(body).size == (128, 128) for _, body in parts)


def test_thumbnails_at_every_level(
    sqlite_client: TestClient, ct_series: list[pydicom.Dataset]
) -> None:
    ds = ct_series[0]
    study = f"/dicom-web/studies/{ds.StudyInstanceUID}"
    for path in (
        f"{study}/thumbnail",
        f"{study}/series/{ds.SeriesInstanceUID}/thumbnail",
        _path(ds) + "/thumbnail",
        _path(ds) + "/frames/1/thumbnail",
    ):
        response = sqlite_client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "image/jpeg"
        assert max(_image(response.content).size) <= 128
    # OHIF's own request: accept as a query parameter and a 256 px viewport.
    ohif = sqlite_client.get(
        f"{study}/series/{ds.SeriesInstanceUID}/thumbnail",
        params={"viewport": "256,256", "accept": "image/jpeg"},
        headers={"Accept": "image/jpeg"},
    )
    assert _image(ohif.content).size == (256, 256)


def test_thumbnail_of_an_unknown_study_is_404(sqlite_client: TestClient) -> None:
    assert sqlite_client.get("/dicom-web/studies/1.2.3/thumbnail").status_code == 404


@pytest.mark.parametrize("kind", sorted(COMPRESSED))
def test_compressed_frames_rendered_and_transcoded(sqlite_client: TestClient, kind: str) -> None:
    ds = _store_file(sqlite_client, COMPRESSED[kind])
    stored_syntax = ds.file_meta.TransferSyntaxUID
    frames = int(ds.get("NumberOfFrames") or 1)
    frame_path = _path(ds) + f"/frames/{frames}"

    # As stored: OHIF's Accept; the part is the stored bitstream.
    ohif = sqlite_client.get(
        frame_path,
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert ohif.status_code == 200
    [(content_type, bitstream)] = split_multipart(ohif)
    assert f"transfer-syntax={stored_syntax}" in content_type
    assert bitstream == pydicom.encaps.get_frame(ds.PixelData, frames - 1, number_of_frames=frames)

    # Decoded to explicit VR little endian: the bytes of pydicom's own decoding.
    native = sqlite_client.get(
        frame_path,
        headers={"Accept": FRAMES_AS + EXPLICIT_LE},
    )
    assert native.status_code == 200
    [(content_type, pixels)] = split_multipart(native)
    assert EXPLICIT_LE in content_type
    expected = ds.pixel_array if frames == 1 else ds.pixel_array[frames - 1]
    assert pixels == expected.astype(expected.dtype.newbyteorder("<")).tobytes()

    # The whole instance transcoded to explicit VR little endian.
    instance = sqlite_client.get(
        _path(ds),
        headers={"Accept": INSTANCES_AS + EXPLICIT_LE},
    )
    assert instance.status_code == 200
    [(_, part10)] = split_multipart(instance)
    decoded = pydicom.dcmread(io.BytesIO(part10))
    assert decoded.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.array_equal(decoded.pixel_array, ds.pixel_array)

    # Rendered frame.
    rendered = sqlite_client.get(frame_path + "/rendered", headers={"Accept": "image/png"})
    assert rendered.status_code == 200
    image = _image(rendered.content)
    assert image.size == (int(ds.Columns), int(ds.Rows))
    assert np.asarray(image).std() > 0


def test_a_syntax_that_cannot_be_produced_is_406(sqlite_client: TestClient) -> None:
    ds = _store_file(sqlite_client, "MR_small_RLE.dcm")
    jpeg_baseline = "1.2.840.10008.1.2.4.50"  # no encoder for 16-bit data in JPEG baseline
    instance = sqlite_client.get(
        _path(ds),
        headers={"Accept": INSTANCES_AS + jpeg_baseline},
    )
    assert instance.status_code == 406
    frames = sqlite_client.get(
        _path(ds) + "/frames/1",
        headers={"Accept": FRAMES_AS + jpeg_baseline},
    )
    assert frames.status_code == 406


def test_multi_frame_rendered_frames(sqlite_client: TestClient) -> None:
    ds = _store_file(sqlite_client, "SC_rgb_rle_2frame.dcm")
    both = sqlite_client.get(_path(ds) + "/frames/1,2/rendered")
    parts = split_multipart(both)
    assert len(parts) == 2 and all(_image(body).mode == "RGB" for _, body in parts)
    assert sqlite_client.get(_path(ds) + "/frames/3/rendered").status_code == 400


def test_instance_without_pixels_is_not_rendered(sqlite_client: TestClient) -> None:
    ds = _store_file(sqlite_client, "rtplan.dcm")
    assert sqlite_client.get(_path(ds) + "/rendered").status_code == 406
