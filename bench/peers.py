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
