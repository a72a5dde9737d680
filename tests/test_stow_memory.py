"""Memory of a large STOW-RS (issue 14 L): a real server whose address space is bounded takes a
body several times larger than the bound, and stores all of it."""

from __future__ import annotations

import resource
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid

from _stow_load import CONTENT_TYPE, address_space_bytes, parts, peak_rss_bytes
from conftest import LiveServer

PARTS = 120
PART_BYTES = 5 * 1024 * 1024  # 600 MiB in all
HEADROOM = 320 * 1024 * 1024  # what the server may add to its address space


@pytest.fixture
def bounded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # glibc reserves 64 MiB per arena otherwise
    server = LiveServer(tmp_path / "live").start()
    assert server.process is not None
    yield server  # type: ignore[misc]
    server.stop()


def test_a_stow_larger_than_the_address_space_left_is_stored(bounded_server: LiveServer) -> None:
    pid = bounded_server.process.pid  # type: ignore[union-attr]
    study = generate_uid()
    with httpx.Client(base_url=bounded_server.url, timeout=300) as client:
        warm = client.post(  # every thread the server uses for a STOW exists after this one
            "/dicom-web/studies",
            content=parts(2, 1024 * 1024, generate_uid()),
            headers={"Content-Type": CONTENT_TYPE},
        )
        assert warm.status_code == 200
        limit = address_space_bytes(pid) + HEADROOM
        resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
        response = client.post(
            "/dicom-web/studies",
            content=parts(PARTS, PART_BYTES, study),
            headers={"Content-Type": CONTENT_TYPE},
        )
        assert response.status_code == 200, response.text[:500]
        assert len(response.json()["00081199"]["Value"]) == PARTS
        found = client.get("/dicom-web/studies", params={"StudyInstanceUID": study}).json()
        assert found[0]["00201208"]["Value"] == [PARTS]
    assert peak_rss_bytes(pid) < limit
