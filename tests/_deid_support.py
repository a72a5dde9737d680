"""Helpers shared by the tests/test_deid_*.py modules: corpora and dataset walks."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from radpacs.deid.anonymizer import CLASS_UID_TAGS
from radpacs.deid.profile import Action, table_row

SECRET = b"test-secret-0123456789abcdef"
RT_WORKSHOP = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-workshop"
if not RT_WORKSHOP.is_dir():
    RT_WORKSHOP = Path("/work/shared/data/rt-workshop")


def read(path: str | Path) -> Dataset | None:
    """The dataset in ``path``, or None when pydicom cannot read it as a DICOM instance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True)
            list(ds.iterall())  # parse every element now
        except Exception:
            return None
    if "SOPClassUID" not in ds:
        return None
    return ds


def corpus() -> tuple[list[tuple[str, Dataset]], int]:
    """Every instance pydicom ships that it can read, plus rt-workshop; and the skip count."""
    found: list[tuple[str, Dataset]] = []
    skipped = 0
    paths = [*get_testdata_files(), *sorted(str(p) for p in RT_WORKSHOP.glob("*.dcm"))]
    for path in paths:
        ds = read(path)
        if ds is None:
            skipped += 1
        else:
            found.append((Path(path).name, ds))
    return found, skipped


def walk(ds: Dataset) -> Iterator[Any]:
    """Every data element of ``ds``, items of sequences included (pydicom's iterall)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield from ds.iterall()


def values(elem: Any) -> list[str]:
    value = elem.value
    if value is None or elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


# radpacs's dummy values: an original that happens to equal one is not a leak.
DUMMIES = {"000000", "19000101", "19000101000000", "ANONYMIZED", "ANONYMOUS", "000D"}

PROTECTED = {
    Action.DUMMY,
    Action.EMPTY,
    Action.REMOVE,
    Action.UID,
    Action.EMPTY_OR_DUMMY,
    Action.REMOVE_OR_EMPTY,
    Action.REMOVE_OR_DUMMY,
    Action.REMOVE_OR_EMPTY_OR_DUMMY,
}


def identifying_values(ds: Dataset) -> set[str]:
    """Original values that must not survive: attributes the table marks D/Z/X/U (and
    compounds) anywhere in the dataset, and every instance UID, minus values that the
    profile legitimately keeps elsewhere in the same dataset (e.g. a Modality equal to a
    Station Name)."""
    found: set[str] = set()
    kept: set[str] = set()
    for elem in walk(ds):
        row = table_row(elem.tag)
        if elem.VR == "UI":
            if elem.tag in CLASS_UID_TAGS or elem.tag.is_private:
                continue
            found.update(v for v in values(elem) if v not in pydicom.uid.UID_dictionary)
        elif row is not None and row.basic in PROTECTED:
            found.update(values(elem))
        elif row is None and not elem.tag.is_private and elem.VR not in ("DA", "DT", "TM"):
            kept.update(values(elem))
    return {v for v in found - kept - DUMMIES if len(v) >= 3}


def all_values(ds: Dataset) -> set[str]:
    found: set[str] = set()
    for elem in walk(ds):
        found.update(values(elem))
    if getattr(ds, "file_meta", None) is not None:
        for elem in ds.file_meta:
            found.update(values(elem))
    return found
