"""A large C-STORE (issue 14): received into a temporary file and stored from it, never whole in
memory; one over ``max_upload_bytes`` refused with 0xA700 and a log line. Driven by DCMTK's
storescu."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom
import pytest

from _dimse_support import dcmtk, running_node
from conftest import make_ct, to_bytes
from radpacs.archive import FileBlob, StoreResult

SCU = {"ae_title": "SCU", "host": "127.0.0.1", "port": 1}


def _large_ct(path: Path, frames: int) -> Path:
    """A CT of ``frames`` 512 x 512 frames (0.5 MiB each) of random pixels."""
    dataset = make_ct(Rows=512, Columns=512, NumberOfFrames=frames)
    dataset.PixelData = os.urandom(512 * 512 * 2 * frames)
    path.write_bytes(to_bytes(dataset))
    return path


def test_a_large_instance_is_stored_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _large_ct(tmp_path / "large.dcm", 48)  # 24 MiB: over the 16 MiB stored from a file
    with running_node(tmp_path / "data", dimse_nodes={"scu": SCU}) as node:
        payloads: list[str] = []
        store_many = node.archive.store_many

        def recording(items: Sequence[Any], study: str | None = None) -> list[StoreResult]:
            payloads.extend(type(item).__name__ for item in items)
            return store_many(items, study)

        monkeypatch.setattr(node.archive, "store_many", recording)
        result = dcmtk("storescu", "-aet", "SCU", *node.peer, str(path))
        assert result.returncode == 0, result.stderr
        assert payloads == [FileBlob.__name__]
        study = pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID
        [stored] = node.archive.instance_files(str(study))
        with node.archive.open(stored) as file:
            digest = hashlib.sha256(file.read()).hexdigest()
        sent = pydicom.dcmread(path)
        assert stored.digest == digest and stored.size > 24 * 1024 * 1024
        assert pydicom.dcmread(node.archive.open(stored)).PixelData == sent.PixelData


def test_an_instance_over_the_limit_is_refused_with_out_of_resources(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _large_ct(tmp_path / "large.dcm", 4)  # 2 MiB
    small = tmp_path / "small.dcm"
    small.write_bytes(to_bytes(make_ct()))
    limit = 1024 * 1024
    caplog.set_level(logging.WARNING, logger="radpacs.dimse")
    with running_node(tmp_path / "data", dimse_nodes={"scu": SCU}, max_upload_bytes=limit) as node:
        result = dcmtk("storescu", "-v", "-nh", "-aet", "SCU", *node.peer, str(path), str(small))
        output = result.stdout + result.stderr
        assert "OutOfResources" in output, output
        assert node.archive.counts()["instances"] == 1  # the small one
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and f"larger than the limit of {limit} bytes" in refused[0]
