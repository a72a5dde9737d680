"""Stored plans: GET /api/rt/studies/{study}/objects and /api/rt/plans/{plan}/statistics."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TestClient
from dvh_phantoms import (
    PLAN_GRID,
    LinearDose,
    box,
    refer_to_plan,
    rtdose_dataset,
    rtplan_dataset,
    rtstruct_dataset,
    sphere,
    to_bytes,
)

GRID = PLAN_GRID


@pytest.fixture
def client(sqlite_client: TestClient) -> TestClient:
    """conftest's in-process server on SQLite, under the name these tests use."""
    return sqlite_client


def _store(client: TestClient, *datasets: object) -> None:
    archive = client.app.state.services.archive  # type: ignore[attr-defined]
    results = archive.store_many([to_bytes(ds) for ds in datasets])  # type: ignore[arg-type]
    assert all(result.outcome.value == "stored" for result in results)


def test_statistics_of_every_roi_of_a_stored_plan(client: TestClient) -> None:
    structures = rtstruct_dataset(
        [
            ("PTV", sphere((0.0, 0.0, 0.0), 8.0, 2.0).polygons()),
            ("cube", box((4.0, 4.0, 0.0), (10.0, 10.0, 10.0), 2.0).polygons()),
        ]
    )
    plan = rtplan_dataset(structures)
    beams = [rtdose_dataset(LinearDose("z", 10.0, 0.25, 0.0), **GRID) for _ in range(2)]  # type: ignore[arg-type]
    for beam in beams:
        refer_to_plan(beam, plan, "BEAM")
    _store(client, structures, plan, *beams)

    objects = client.get(f"/api/rt/studies/{plan.StudyInstanceUID}/objects")
    assert objects.status_code == 200
    body = objects.json()
    assert [item["uid"] for item in body["plans"]] == [plan.SOPInstanceUID]
    assert body["plans"][0]["references"] == [structures.SOPInstanceUID]
    assert body["structure_sets"][0]["rois"] == [
        {"number": 1, "name": "PTV"},
        {"number": 2, "name": "cube"},
    ]
    assert {item["dose_summation_type"] for item in body["doses"]} == {"BEAM"}

    answer = client.get(
        f"/api/rt/plans/{plan.SOPInstanceUID}/statistics",
        params={"metrics": "D95,V20Gy", "prescription": "20"},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert sorted(result["rtdose"]) == sorted(beam.SOPInstanceUID for beam in beams)
    assert [roi["name"] for roi in result["rois"]] == ["PTV", "cube"]
    ptv = result["rois"][0]["statistics"]
    assert ptv["mean"]["value"] == pytest.approx(20.0, rel=1e-3)  # two beams of 10 Gy
    assert ptv["mean"]["relative"] == pytest.approx(100.0, rel=1e-3)
    assert ptv["V20Gy"]["relative"] == pytest.approx(50.0, abs=0.5)
    assert set(ptv) == {"volume", "min", "max", "mean", "D95", "V20Gy"}

    # A PLAN dose, when there is one, is the plan's dose.
    whole = rtdose_dataset(LinearDose("z", 30.0, 0.25, 0.0), **GRID)  # type: ignore[arg-type]
    refer_to_plan(whole, plan, "PLAN")
    _store(client, whole)
    again = client.get(f"/api/rt/plans/{plan.SOPInstanceUID}/statistics").json()
    assert again["rtdose"] == [whole.SOPInstanceUID]
    assert again["rois"][0]["statistics"]["mean"]["value"] == pytest.approx(30.0, rel=1e-3)


def test_plan_without_dose_or_unknown(client: TestClient) -> None:
    structures = rtstruct_dataset([("PTV", sphere((0.0, 0.0, 0.0), 8.0, 2.0).polygons())])
    plan = rtplan_dataset(structures)
    _store(client, structures, plan)
    lonely = client.get(f"/api/rt/plans/{plan.SOPInstanceUID}/statistics")
    assert lonely.status_code == 400
    assert "no RTDOSE grid" in lonely.json()["detail"]
    unknown = client.get("/api/rt/plans/1.2.3.4.5/statistics")
    assert unknown.status_code == 404
    assert client.get("/api/rt/studies/1.2.3.4.5/objects").status_code == 404


def test_client_plan_statistics_and_stored_plan_sum(tmp_path: Path) -> None:
    """The Python client against a real server: store, list, statistics, plan sum."""
    from _client_support import USER, radpacs_with_account
    from radpacs.client import RadpacsClient

    structures = rtstruct_dataset([("PTV", sphere((0.0, 0.0, 0.0), 8.0, 2.0).polygons())])
    plan = rtplan_dataset(structures)
    beams = [rtdose_dataset(LinearDose("x", 10.0, 0.25, 0.0), **GRID) for _ in range(2)]  # type: ignore[arg-type]
    for beam in beams:
        refer_to_plan(beam, plan, "BEAM")
    with radpacs_with_account(tmp_path / "data") as url, RadpacsClient(url) as client:
        client.login(*USER)
        for number, item in enumerate((structures, plan, *beams)):
            (tmp_path / f"{number}.dcm").write_bytes(to_bytes(item))
        summary = client.store([tmp_path / f"{number}.dcm" for number in range(4)])
        assert not summary.failed
        objects = client.rt_objects(str(plan.StudyInstanceUID))
        assert len(objects["doses"]) == 2
        stats = client.plan_statistics(str(plan.SOPInstanceUID), ["D50"], prescription=20.0)
        assert stats["rois"][0]["statistics"]["D50"]["value"] == pytest.approx(20.0, rel=1e-3)
        summed = client.stored_dvh(
            str(structures.SOPInstanceUID),
            [str(beam.SOPInstanceUID) for beam in beams],
            weights=[1.0, 0.5],
            metrics=["D50"],
        )
        [curve] = summed.dvhs
        assert curve.statistics()["D50"] == pytest.approx(15.0, rel=1e-3)


def test_bad_stored_input_is_a_clear_400(client: TestClient) -> None:
    """A dose without DoseGridScaling, a structure set of another Frame of Reference and an
    ROI without contours, through the stored-object routes."""
    structures = rtstruct_dataset(
        [("PTV", sphere((0.0, 0.0, 0.0), 8.0, 2.0).polygons())],
        extra=[("empty", "CLOSED_PLANAR", [])],
    )
    plan = rtplan_dataset(structures)
    unscaled = rtdose_dataset(LinearDose("z", 10.0, 0.25, 0.0), scaling=None, **GRID)  # type: ignore[arg-type]
    refer_to_plan(unscaled, plan, "PLAN")
    elsewhere = rtdose_dataset(
        LinearDose("z", 10.0, 0.25, 0.0),
        frame_of_reference="1.2.3.4.5",
        **GRID,  # type: ignore[arg-type]
    )
    good = rtdose_dataset(LinearDose("z", 10.0, 0.25, 0.0), **GRID)  # type: ignore[arg-type]
    _store(client, structures, plan, unscaled, elsewhere, good)

    answer = client.get(f"/api/rt/plans/{plan.SOPInstanceUID}/statistics")
    assert answer.status_code == 400
    assert "DoseGridScaling" in answer.json()["detail"]
    body = {"rtstruct": structures.SOPInstanceUID, "rtdose": elsewhere.SOPInstanceUID}
    other = client.post("/api/rt/dvh", json=body)
    assert other.status_code == 400
    assert "Frame of Reference" in other.json()["detail"]
    empty = client.post("/api/rt/dvh", json={**body, "rtdose": good.SOPInstanceUID, "roi": "empty"})
    assert empty.status_code == 400
    assert "no closed planar contours" in empty.json()["detail"]
