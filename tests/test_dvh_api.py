"""HTTP routes: POST /api/dvh (workshop contract), /api/dvh/plot and /api/rt/dvh."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from _deid_support import RT_WORKSHOP as WORKSHOP  # the worktree's shared/, or /work/shared
from dvh_phantoms import LinearDose, box, rtdose_dataset, rtstruct_dataset, to_bytes
from radpacs.app import create_app
from radpacs.settings import load_settings

with warnings.catch_warnings():
    # starlette warns at import that its TestClient will move to httpx2; not our code.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SEED_FIELDS = {"name", "type", "volume", "dose_units", "doses", "volume_units", "volumes"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings(data_dir=tmp_path))) as test_client:
        yield test_client


def _files(shape: str = "sphere") -> dict[str, bytes]:
    return {
        "file_struct": (WORKSHOP / f"rtstruct-{shape}.dcm").read_bytes(),
        "file_dose": (WORKSHOP / "rtdose.dcm").read_bytes(),
    }


def test_dvh_upload_answers_the_workshop_fields(client: TestClient) -> None:
    response = client.post("/api/dvh", files=_files())
    assert response.status_code == 200
    dvh = response.json()  # one structure with contours: the DVH itself, as the seed reads it
    assert set(dvh) >= SEED_FIELDS
    assert dvh["name"] == "Sphere_02_0"
    assert dvh["type"] == "cumulative"
    assert dvh["volume_units"] == "cm3" and dvh["dose_units"] == "Gy"
    assert dvh["volume"] == pytest.approx(7.23824, rel=0.01)
    assert len(dvh["doses"]) == len(dvh["volumes"])
    assert dvh["doses"][:3] == pytest.approx([0.0, 0.01, 0.02])
    assert dvh["volumes"][0] == pytest.approx(dvh["volume"])
    stats = dvh["statistics"]
    assert stats["D95"] == {"value": pytest.approx(7.245, rel=0.01), "unit": "Gy", "relative": None}
    assert stats["D0.03cc"]["value"] == pytest.approx(27.095, rel=0.01)
    assert stats["mean"]["value"] == pytest.approx(16.0, rel=0.01)


def test_dvh_upload_options(client: TestClient) -> None:
    response = client.post(
        "/api/dvh",
        files=_files("cylinder"),
        data={
            "roi": "Cylinder_02_0",
            "prescription": "20",
            "relative_volume": "true",
            "bin_width": "0.5",
            "metrics": "D95, V10Gy, V95%",
        },
    )
    assert response.status_code == 200
    dvh = response.json()
    assert dvh["volume_units"] == "%" and dvh["volumes"][0] == pytest.approx(100.0)
    assert dvh["dose_units"] == "%"  # relative to the 20 Gy prescription
    assert dvh["doses"][1] == pytest.approx(0.5 / 20 * 100)
    assert set(dvh["statistics"]) == {"volume", "min", "max", "mean", "D95", "V10Gy", "V95%"}
    # Cylinder along the gradient: dose uniform over 3.9..28.1 Gy.
    assert dvh["statistics"]["V10Gy"]["relative"] == pytest.approx(
        100 * (28.1 - 10) / 24.2, rel=0.01
    )
    assert dvh["statistics"]["V95%"]["relative"] == pytest.approx(
        100 * (28.1 - 19) / 24.2, rel=0.01
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"file_struct": b"x"},
            "both 'file_struct' (RTSTRUCT) and 'file_dose' (RTDOSE) are required",
        ),
        (
            {"file_struct": b"not dicom", "file_dose": b"nor this"},
            "file_struct is not a DICOM file",
        ),
    ],
)
def test_dvh_upload_bad_files(client: TestClient, files: dict[str, bytes], message: str) -> None:
    response = client.post("/api/dvh", files=files)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_dvh_upload_swapped_files(client: TestClient) -> None:
    files = _files()
    swapped = {"file_struct": files["file_dose"], "file_dose": files["file_struct"]}
    response = client.post("/api/dvh", files=swapped)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the structure file is not an RTSTRUCT")


def test_dvh_upload_roi_without_contours(client: TestClient) -> None:
    response = client.post("/api/dvh", files=_files(), data={"roi": "1"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "ROI 'POI_1' (ROI 1) has no closed planar contours to compute a DVH"
    )


def test_dvh_upload_frame_of_reference_mismatch(client: TestClient) -> None:
    dose = rtdose_dataset(
        LinearDose("z", 10, 1, 0), (-20, -20, -20), (2, 2, 2), (21, 21, 21), "1.2.3"
    )
    response = client.post(
        "/api/dvh", files={"file_struct": _files()["file_struct"], "file_dose": to_bytes(dose)}
    )
    assert response.status_code == 400
    assert "but the dose is in 1.2.3" in response.json()["detail"]


def test_dvh_upload_missing_dose_grid_scaling(client: TestClient) -> None:
    dose = pydicom.dcmread(WORKSHOP / "rtdose.dcm")
    del dose.DoseGridScaling
    response = client.post(
        "/api/dvh", files={"file_struct": _files()["file_struct"], "file_dose": to_bytes(dose)}
    )
    assert response.status_code == 400
    assert "no DoseGridScaling" in response.json()["detail"]


def test_plot_png_from_the_dvh_answer(client: TestClient) -> None:
    dvhs = [client.post("/api/dvh", files=_files(s)).json() for s in ("sphere", "cone")]
    seed_shape = [{key: dvh[key] for key in SEED_FIELDS - {"type", "volume"}} for dvh in dvhs]
    response = client.post("/api/dvh/plot", json={"dvhs": seed_shape})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    # The bare list /api/dvh answered is accepted too.
    assert client.post("/api/dvh/plot", json=dvhs).status_code == 200


def test_plot_svg_by_query_or_accept_with_absolute_volume(client: TestClient) -> None:
    dvh = client.post("/api/dvh", files=_files()).json()
    by_query = client.post("/api/dvh/plot?format=svg&volume=absolute", json={"dvhs": [dvh]})
    by_accept = client.post(
        "/api/dvh/plot", json={"dvhs": [dvh]}, headers={"Accept": "image/svg+xml"}
    )
    for response in (by_query, by_accept):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in response.content
    text = by_query.content.decode()
    assert "Sphere_02_0" in text and "Dose [Gy]" in text and "Volume [cm3]" in text
    assert "Volume [%]" in by_accept.content.decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dvhs": []}, "'dvhs' must be a non-empty list"),
        ({"curves": []}, "the body must hold 'dvhs'"),
        ({"dvhs": [{"name": "a", "doses": [0, 1], "volumes": [1]}]}, "lacks dose_units"),
        (
            {
                "dvhs": [
                    {
                        "name": "a",
                        "doses": [0, 1],
                        "volumes": [2, 1],
                        "dose_units": "Gy",
                        "volume_units": "cm3",
                    },
                    {
                        "name": "b",
                        "doses": [0, 1],
                        "volumes": [2, 1],
                        "dose_units": "cGy",
                        "volume_units": "cm3",
                    },
                ]
            },
            "the DVHs mix dose units (Gy, cGy)",
        ),
        (
            {
                "dvhs": [
                    {
                        "name": "a",
                        "doses": [0, 1],
                        "volumes": [1],
                        "dose_units": "Gy",
                        "volume_units": "cm3",
                    }
                ]
            },
            "dvhs[0]: DVH 'a': 2 doses but 1 volumes",
        ),
    ],
)
def test_plot_bad_bodies(client: TestClient, body: dict[str, object], message: str) -> None:
    response = client.post("/api/dvh/plot", json=body)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_plot_takes_one_dvh_object_as_dvh_answers_it(client: TestClient) -> None:
    """/api/dvh answers one object for one ROI; the plot takes it bare or under 'dvhs'."""
    dvh = {
        "name": "a",
        "type": "cumulative",
        "volume": 2.0,
        "doses": [0, 1, 2],
        "volumes": [2, 1, 0],
        "dose_units": "Gy",
        "volume_units": "cm3",
    }
    for body in (dvh, {"dvhs": dvh}, {"dvhs": [dvh]}):
        response = client.post("/api/dvh/plot?format=svg", json=body)
        assert response.status_code == 200, response.text
        assert b"<svg" in response.content


def test_stored_dvh_reads_the_archive(client: TestClient) -> None:
    structure = rtstruct_dataset([("box", box((0, 0, 0), (10, 10, 10), 2.0).polygons())])
    dose = rtdose_dataset(LinearDose("z", 20, 1, 0), (-20, -20, -20), (2, 2, 2), (21, 21, 21))
    archive = client.app.state.services.archive  # type: ignore[attr-defined]
    stored = archive.store_many([to_bytes(structure), to_bytes(dose)])
    assert all(result.outcome.value == "stored" for result in stored)
    body = {"rtstruct": structure.SOPInstanceUID, "rtdose": dose.SOPInstanceUID, "roi": "box"}
    response = client.post("/api/rt/dvh", json=body)
    assert response.status_code == 200
    dvh = response.json()
    assert dvh["name"] == "box" and dvh["volume"] == pytest.approx(1.0, rel=1e-3)
    assert dvh["statistics"]["mean"]["value"] == pytest.approx(20.0, abs=1e-3)
    assert dvh["statistics"]["min"]["value"] == pytest.approx(15.0, abs=1e-3)

    missing = client.post("/api/rt/dvh", json={**body, "rtdose": "1.2.3.999"})
    assert missing.status_code == 404
    assert "1.2.3.999" in missing.json()["detail"]


def test_several_rois_answer_a_dvhs_list_the_plot_route_takes(client: TestClient) -> None:
    structure = rtstruct_dataset(
        [
            ("small", box((0, 0, 0), (6, 6, 6), 2.0).polygons()),
            ("large", box((0, 0, 0), (12, 12, 12), 2.0).polygons()),
        ]
    )
    dose = rtdose_dataset(LinearDose("z", 20, 1, 0), (-20, -20, -20), (2, 2, 2), (21, 21, 21))
    files = {"file_struct": to_bytes(structure), "file_dose": to_bytes(dose)}
    answer = client.post("/api/dvh", files=files).json()
    assert [dvh["name"] for dvh in answer["dvhs"]] == ["small", "large"]
    assert answer["dvhs"][1]["volume"] == pytest.approx(1.728, rel=1e-3)
    plot = client.post("/api/dvh/plot", json=answer)
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
