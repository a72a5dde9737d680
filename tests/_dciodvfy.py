"""dciodvfy (David Clunie's dicom3tools, Debian package dicom3tools) as a test oracle.

:func:`dciodvfy_errors` writes a dataset to a file, runs ``dciodvfy`` on it and returns the
lines that start with ``Error`` (warnings are left out). Missing dciodvfy skips the test,
except in CI (``CI`` set), where scripts/install-system-deps installs it and absence fails.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pydicom import Dataset

__all__ = ["dciodvfy_errors", "require_dciodvfy"]


def require_dciodvfy() -> str:
    path = shutil.which("dciodvfy")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy is missing: run scripts/install-system-deps (dicom3tools)")
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools)")
    return path


def dciodvfy_errors(data: Dataset | bytes) -> list[str]:
    """dciodvfy's Error lines for ``data`` (a dataset, written as a PS3.10 file, or bytes)."""
    program = require_dciodvfy()
    if isinstance(data, Dataset):
        buffer = io.BytesIO()
        data.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "object.dcm"
        path.write_bytes(data)
        run = subprocess.run(
            [program, str(path)], capture_output=True, text=True, timeout=60, check=False
        )
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]
