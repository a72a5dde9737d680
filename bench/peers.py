"""Shared by the bench scripts: the peers' venv and the corpus both sides run on."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import warnings
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_files

BENCH = Path(__file__).resolve().parent
PEERS_VENV = BENCH / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
RUNNER = BENCH / "_peer_runner.py"
RT_WORKSHOP = BENCH.parents[1] / "shared" / "data" / "rt-workshop"
if not RT_WORKSHOP.is_dir():
    RT_WORKSHOP = Path("/work/shared/data/rt-workshop")


def ensure_peers() -> Path:
    """bench/.venv-peers with dicognito and deid from PyPI, created when missing."""
    if not PEERS_PYTHON.exists():
        venv.create(PEERS_VENV, with_pip=True)
        subprocess.run(
            [str(PEERS_PYTHON), "-m", "pip", "install", "-q", "dicognito", "deid"], check=True
        )
    return PEERS_PYTHON


def corpus() -> list[str]:
    """Every file pydicom ships that it reads as an instance, plus the rt-workshop files."""
    paths = [*get_testdata_files(), *sorted(str(p) for p in RT_WORKSHOP.glob("*.dcm"))]
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            try:
                ds = pydicom.dcmread(path, force=True)
                list(ds.iterall())
            except Exception:
                continue
            if "SOPClassUID" in ds:
                found.append(path)
    return found


def run_peer(*args: str, paths: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [str(ensure_peers()), str(RUNNER), *args],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    print(len(corpus()), file=sys.stderr)


# --- what a de-identifier leaves behind (the same measure as tests/_deid_support.py) ---

DUMMIES = {"000000", "19000101", "19000101000000", "ANONYMIZED", "ANONYMOUS", "000D"}


def _values(elem: object) -> list[str]:
    from pydicom.multival import MultiValue

    value = elem.value  # type: ignore[attr-defined]
    if value is None or elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):  # type: ignore[attr-defined]
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


def identifying(ds: object) -> tuple[set[str], set[str], set[str]]:
    """(instance UIDs, identifying values, those of them that are names, IDs, texts or
    dates) of an original dataset: attributes that PS3.15 Table E.1-1 marks D, Z, X, U
    or compound, anywhere in the dataset."""
    from radpacs.deid.anonymizer import CLASS_UID_TAGS
    from radpacs.deid.profile import Action, table_row

    uids: set[str] = set()
    found: set[str] = set()
    texts: set[str] = set()
    kept: set[str] = set()
    for elem in ds.iterall():  # type: ignore[attr-defined]
        row = table_row(elem.tag)
        if elem.VR == "UI":
            if elem.tag in CLASS_UID_TAGS or elem.tag.is_private:
                continue
            uids.update(v for v in _values(elem) if v not in pydicom.uid.UID_dictionary)
        elif row is not None and row.basic not in (Action.KEEP, Action.CLEAN):
            found.update(_values(elem))
            if elem.VR in ("PN", "LO", "SH", "LT", "ST", "UT", "UC", "DA", "DT"):
                texts.update(_values(elem))
        elif row is None and not elem.tag.is_private and elem.VR not in ("DA", "DT", "TM"):
            kept.update(_values(elem))
    found = {v for v in found - kept - DUMMIES if len(v) >= 3}
    return {u for u in uids if len(u) >= 3}, found, texts & found


def everything(ds: object) -> set[str]:
    found: set[str] = set()
    for elem in ds.iterall():  # type: ignore[attr-defined]
        found.update(_values(elem))
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for elem in meta:
            found.update(_values(elem))
    return found
