"""The fast DICOM JSON path gives the same JSON as pydicom's own encoder, file for file."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pydicom
import pytest

from conftest import shipped_test_files
from radpacs.dicom.json import BULK_DATA_THRESHOLD, _BulkUri, _to_json, dataset_to_json

RT_WORKSHOP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rt-workshop"


def _readable() -> list[Path]:
    files = []
    for path in shipped_test_files() + sorted(RT_WORKSHOP.glob("*.dcm")):
        try:
            pydicom.dcmread(path)
        except Exception:
            continue
        files.append(path)
    return files


def _normal(value: Any) -> Any:
    """Trailing padding is insignificant in DICOM text; floats compare to 1e-12."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str):
        return value.rstrip("\x00 ")
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 12)
    return value


def _pydicom_json(dataset: pydicom.Dataset, prefix: str) -> dict[str, Any]:
    return _to_json(dataset, prefix, None)


@pytest.mark.parametrize("path", _readable(), ids=lambda p: p.name)
def test_fast_path_matches_pydicom(path: Path) -> None:
    data = path.read_bytes()
    fast = dataset_to_json(pydicom.dcmread(io.BytesIO(data)), "/x")
    reference = _pydicom_json(pydicom.dcmread(io.BytesIO(data)), "/x/bulkdata/")
    assert _normal(fast) == _normal(reference)


def test_bulk_threshold_follows_pydicom() -> None:
    dataset = pydicom.Dataset()
    dataset.add_new(0x00091001, "OB", b"x")
    element = pydicom.DataElement(0x7FE00010, "OB", bytes(800))
    assert "BulkDataURI" in element.to_json_dict(_BulkUri("/u"), BULK_DATA_THRESHOLD)
