"""DVHs kept as DICOM: POST /api/rt/dvh/store writes an RT Dose with an RT DVH module into
the study, which reads back with the same numbers and passes dciodvfy (dicom3tools)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import TestClient
from dvh_phantoms import (
    PLAN_GRID,
    LinearDose,
    box,
    refer_to_plan,
    roundtrip,
    rtdose_dataset,
    rtplan_dataset,
    rtstruct_dataset,
    sphere,
    to_bytes,
)
from radpacs.errors import InvalidInput
from radpacs.rt import dvhs_from_datasets
from radpacs.rt.dicom_dvh import dvh_dataset

GRID = PLAN_GRID


@pytest.fixture
def client(sqlite_client: TestClient) -> TestClient:
    """conftest's in-process server on SQLite, under the name these tests use."""
    return sqlite_client


def _dciodvfy(path: Path) -> str:
    tool = shutil.which("dciodvfy")
    assert tool, "dciodvfy (Debian dicom3tools, scripts/install-system-deps) is needed"
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def test_stored_dvhs_read_back_and_pass_dciodvfy(client: TestClient, tmp_path: Path) -> None:
    structures = rtstruct_dataset(
        [
            ("PTV", sphere((0.0, 0.0, 0.0), 8.0, 2.0).polygons()),
            ("cube", box((4.0, 4.0, 0.0), (10.0, 10.0, 10.0), 2.0).polygons()),
        ]
    )
    structures.StudyDate, structures.StudyTime, structures.StudyID = "20261202", "080000", "1"
    plans = [rtplan_dataset(structures, label) for label in ("a", "b")]
    doses = [rtdose_dataset(LinearDose("z", 10.0, 0.25, 0.0), **GRID) for _ in plans]  # type: ignore[arg-type]
    for dose, plan in zip(doses, plans, strict=True):
        refer_to_plan(dose, plan, "PLAN")
    archive = client.app.state.services.archive  # type: ignore[attr-defined]
    archive.store_many([to_bytes(item) for item in (structures, *plans, *doses)])

    body = {
        "rtstruct": structures.SOPInstanceUID,
        "rtdose": [dose.SOPInstanceUID for dose in doses],
        "weights": [1.0, 0.5],
    }
    answer = client.post("/api/rt/dvh/store", json=body)
    assert answer.status_code == 200, answer.text
    stored = answer.json()
    assert [roi["name"] for roi in stored["rois"]] == ["PTV", "cube"]
    assert stored["study_instance_uid"] == structures.StudyInstanceUID
    assert "sum 1,0.5" in stored["method"]

    kept = archive.read_dataset(stored["sop_instance_uid"])
    assert kept.Modality == "RTDOSE" and "PixelData" not in kept
    assert kept.DoseSummationType == "MULTI_PLAN"
    assert {item.ReferencedSOPInstanceUID for item in kept.ReferencedRTPlanSequence} == {
        plan.SOPInstanceUID for plan in plans
    }
    assert [item.ReferencedSOPInstanceUID for item in kept.ReferencedInstanceSequence] == [
        dose.SOPInstanceUID for dose in doses
    ]
    referenced = kept.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
    assert referenced == structures.SOPInstanceUID
    [ptv, cube] = dvhs_from_datasets(
        roundtrip(structures), [roundtrip(dose) for dose in doses], weights=[1.0, 0.5]
    )
    for item, dvh in zip(kept.DVHSequence, (ptv, cube), strict=True):
        assert item.DVHReferencedROISequence[0].ReferencedROINumber == dvh.roi_number
        assert item.DVHType == "CUMULATIVE" and item.DVHVolumeUnits == "CM3"
        data = np.asarray(item.DVHData, dtype=np.float64)
        widths, volumes = data[0::2], data[1::2]
        assert int(item.DVHNumberOfBins) == volumes.size
        assert volumes[0] == pytest.approx(dvh.volume, rel=1e-6)
        # the volume at the bin where 15 Gy starts is V(15 Gy)
        index = round(15.0 / float(widths[0]))
        assert volumes[index] == pytest.approx(dvh.volume_at_dose(15.0), rel=1e-4, abs=1e-6)
        assert float(item.DVHMeanDose) == pytest.approx(15.0, rel=1e-3)  # 10 + 5 Gy
        assert float(item.DVHMinimumDose) == pytest.approx(dvh.dose_min, abs=1e-5)

    path = tmp_path / "dvh.dcm"
    buffer = io.BytesIO()
    kept.save_as(buffer, enforce_file_format=True)
    path.write_bytes(buffer.getvalue())
    report = _dciodvfy(path)
    assert "RTDose" in report
    assert "Error" not in report, report

    objects = client.get(f"/api/rt/studies/{structures.StudyInstanceUID}/objects").json()
    dvh_object = [item for item in objects["doses"] if not item["has_grid"]]
    assert [item["uid"] for item in dvh_object] == [stored["sop_instance_uid"]]


def test_a_dose_without_a_plan_cannot_be_stored_as_plan_dvh() -> None:
    structures = rtstruct_dataset([("PTV", sphere((0.0, 0.0, 0.0), 8.0, 2.0).polygons())])
    dose = roundtrip(rtdose_dataset(LinearDose("z", 10.0, 0.25, 0.0), **GRID))  # type: ignore[arg-type]
    dvhs = dvhs_from_datasets(roundtrip(structures), dose)
    with pytest.raises(InvalidInput, match="references no RTPLAN"):
        dvh_dataset(dvhs, roundtrip(structures), [dose])
