"""Memory of a large STOW-RS (issue 14 L): a real server whose address space is bounded takes a
body several times larger than the bound, and stores all of it; and one part larger than the
bound, which it stores from its file without holding it."""

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
LARGE_PART_BYTES = 480 * 1024 * 1024  # one part: more than HEADROOM, were it held whole


@pytest.fixture
def bounded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # glibc reserves 64 MiB per arena otherwise
    server = LiveServer(tmp_path / "live").start()
    assert server.process is not None
    yield server  # type: ignore[misc]
    server.stop()


def _bounded_stow(
    server: LiveServer, client: httpx.Client, count: int, part_bytes: int, study: str
) -> tuple[httpx.Response, int]:
    """Bound the warmed-up server's address space to what it has plus HEADROOM, then STOW
    ``count`` parts of ``part_bytes``; the answer and the bound."""
    pid = server.process.pid  # type: ignore[union-attr]
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
        content=parts(count, part_bytes, study),
        headers={"Content-Type": CONTENT_TYPE},
    )
    return response, limit


def test_a_stow_larger_than_the_address_space_left_is_stored(bounded_server: LiveServer) -> None:
    pid = bounded_server.process.pid  # type: ignore[union-attr]
    study = generate_uid()
    with httpx.Client(base_url=bounded_server.url, timeout=300) as client:
        response, limit = _bounded_stow(bounded_server, client, PARTS, PART_BYTES, study)
        assert response.status_code == 200, response.text[:500]
        assert len(response.json()["00081199"]["Value"]) == PARTS
        found = client.get("/dicom-web/studies", params={"StudyInstanceUID": study}).json()
        assert found[0]["00201208"]["Value"] == [PARTS]
    assert peak_rss_bytes(pid) < limit


def test_one_part_larger_than_the_address_space_left_is_stored_from_its_file(
    bounded_server: LiveServer,
) -> None:
    pid = bounded_server.process.pid  # type: ignore[union-attr]
    study = generate_uid()
    with httpx.Client(base_url=bounded_server.url, timeout=300) as client:
        response, limit = _bounded_stow(bounded_server, client, 1, LARGE_PART_BYTES, study)
        assert response.status_code == 200, response.text[:500]
        [stored] = response.json()["00081199"]["Value"]
        url = stored["00081190"]["Value"][0]
        with client.stream(
            "GET", url, headers={"Accept": "multipart/related; type=application/dicom"}
        ) as got:
            assert got.status_code == 200
            size = sum(len(chunk) for chunk in got.iter_bytes())
        assert size > LARGE_PART_BYTES
    assert peak_rss_bytes(pid) < limit
