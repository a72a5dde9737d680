"""Plan sums (radpacs.rt.plansum, /api/dvh and /api/rt/dvh with several RTDOSEs): two
half doses on different grids give the DVH of the full dose."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dvh_phantoms import (
    LinearDose,
    roundtrip,
    rtdose_dataset,
    rtstruct_dataset,
    sphere,
    to_bytes,
)
from radpacs.app import create_app
from radpacs.errors import InvalidInput
from radpacs.rt import DVH, DoseGrid, dvhs_from_datasets, sum_grids
from radpacs.settings import load_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PHANTOM = sphere((1.0, -2.0, 3.0), 10.0, 2.0)
FULL = LinearDose("x", offset=40.0, gradient=0.8, origin=0.0)
HALF = LinearDose("x", offset=20.0, gradient=0.4, origin=0.0)
STATISTICS = ("D99", "D95", "D50", "D5", "D1", "D0.03cc")


def _full() -> pydicom.Dataset:
    return roundtrip(rtdose_dataset(FULL, (-19.0, -22.0, -17.0), (2.0, 2.0, 2.0), (21, 21, 21)))


def _halves() -> list[pydicom.Dataset]:
    """The same half dose on a 2 mm grid and on a 3 mm grid shifted by 1.1 mm."""
    fine = rtdose_dataset(HALF, (-19.0, -22.0, -17.0), (2.0, 2.0, 2.0), (21, 21, 21))
    coarse = rtdose_dataset(HALF, (-21.1, -24.1, -19.1), (3.0, 3.0, 3.0), (16, 16, 16))
    return [roundtrip(fine), roundtrip(coarse)]


def _structure() -> pydicom.Dataset:
    return roundtrip(rtstruct_dataset([("sphere", PHANTOM.polygons())]))


def _assert_same(summed: dict[str, float], full: dict[str, float]) -> None:
    for name, value in full.items():
        assert summed[name] == pytest.approx(value, rel=2e-3), name


def _values(dvh: DVH) -> dict[str, float]:
    result = {"volume": dvh.volume, "mean": dvh.dose_mean}
    for name in STATISTICS:
        value = dvh.statistic(name).value
        assert value is not None
        result[name] = value
    return result


def test_two_half_doses_on_different_grids_sum_to_the_full_dose() -> None:
    [full] = dvhs_from_datasets(_structure(), _full())
    [summed] = dvhs_from_datasets(_structure(), _halves())
    _assert_same(_values(summed), _values(full))
    # The sum takes the finest grid's voxels and covers both grids.
    grids = [DoseGrid.from_dataset(ds) for ds in _halves()]
    total = sum_grids(grids)
    assert total.column_spacing == 2.0
    assert total.shape[2] >= 21
    centre = total.to_grid(np.array([[1.0, -2.0, 3.0]]))
    assert float(total.sample(*centre)[0]) == pytest.approx(40.8, abs=1e-3)


def test_weights_scale_each_dose() -> None:
    [full] = dvhs_from_datasets(_structure(), _full())
    [doubled] = dvhs_from_datasets(_structure(), [_halves()[1]], weights=[2.0])
    _assert_same(_values(doubled), _values(full))
    [mixed] = dvhs_from_datasets(_structure(), [*_halves(), _full()], weights=[1, 1, -1])
    assert abs(mixed.dose_max) < 1e-3


def test_plan_sum_refuses_other_frames_and_bad_weights() -> None:
    other = rtdose_dataset(HALF, (-19.0, -22.0, -17.0), (2.0, 2.0, 2.0), (21, 21, 21), "1.2.3.4")
    with pytest.raises(InvalidInput, match="different Frames of Reference"):
        dvhs_from_datasets(_structure(), [_halves()[0], roundtrip(other)])
    with pytest.raises(InvalidInput, match="2 weights for 3"):
        dvhs_from_datasets(_structure(), [*_halves(), _full()], weights=[1, 1])


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings(data_dir=tmp_path))) as test_client:
        yield test_client


def test_api_upload_and_stored_plan_sums(client: TestClient) -> None:
    structure = _structure()
    halves = _halves()
    full = client.post(
        "/api/dvh",
        files=[("file_struct", to_bytes(structure)), ("file_dose", to_bytes(_full()))],
        data={"metrics": ",".join(STATISTICS)},
    ).json()["statistics"]
    files = [("file_struct", to_bytes(structure))]
    files += [("file_dose", to_bytes(half)) for half in halves]
    upload = client.post("/api/dvh", files=files, data={"metrics": ",".join(STATISTICS)})
    assert upload.status_code == 200, upload.text
    for name in STATISTICS:
        assert upload.json()["statistics"][name]["value"] == pytest.approx(
            full[name]["value"], rel=2e-3
        )
    archive = client.app.state.services.archive  # type: ignore[attr-defined]
    archive.store_many([to_bytes(item) for item in [structure, *halves]])
    body = {
        "rtstruct": structure.SOPInstanceUID,
        "rtdose": [half.SOPInstanceUID for half in halves],
        "weights": [1.0, 1.0],
        "metrics": list(STATISTICS),
    }
    stored = client.post("/api/rt/dvh", json=body)
    assert stored.status_code == 200, stored.text
    assert stored.json()["statistics"]["D50"]["value"] == pytest.approx(
        full["D50"]["value"], rel=2e-3
    )
    bad = client.post("/api/dvh", files=files, data={"weights": "1,x"})
    assert bad.status_code == 400
    assert "weights" in bad.json()["detail"]
    wrong = client.post("/api/rt/dvh", json={**body, "weights": [1.0]})
    assert wrong.status_code == 400
    assert "1 weights for 2" in wrong.json()["detail"]


def test_command_line_plan_sum(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from radpacs.cli import app

    paths = []
    for name, dataset in [("rs", _structure()), ("a", _halves()[0]), ("b", _halves()[1])]:
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(to_bytes(dataset))
        paths.append(str(path))
    full = tmp_path / "full.dcm"
    full.write_bytes(to_bytes(_full()))
    runner = CliRunner()
    summed = runner.invoke(app, ["dvh", *paths, "--local", "--no-plot", "--json"])
    assert summed.exit_code == 0, summed.output
    single = runner.invoke(app, ["dvh", paths[0], str(full), "--local", "--no-plot", "--json"])
    assert single.exit_code == 0, single.output
    [a], [b] = json.loads(summed.stdout), json.loads(single.stdout)
    assert a["statistics"]["mean"]["value"] == pytest.approx(b["statistics"]["mean"]["value"])
    weighted = runner.invoke(
        app, ["dvh", paths[0], paths[2], "--local", "--no-plot", "--json", "--weights", "2"]
    )
    [c] = json.loads(weighted.stdout)
    assert c["statistics"]["mean"]["value"] == pytest.approx(b["statistics"]["mean"]["value"])
    refused = runner.invoke(app, ["dvh", *paths, "--no-plot", "--url", "http://127.0.0.1:9"])
    assert refused.exit_code == 2
    assert "--local" in refused.output
