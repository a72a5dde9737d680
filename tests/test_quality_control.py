"""Quality-control status per instance (seed 002's ``set_quality_control``): the store on
SQLite and PostgreSQL, and the REST API, the clients and ``radpacs qc`` against a live server
with auth on (the setter is recorded and audited)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from conftest import LiveServer, make_ct, multipart, to_bytes
from radpacs.archive import Archive
from radpacs.archive.quality import QcStatus, QualityControlStore
from radpacs.cli import app
from radpacs.client import (
    AsyncRadpacsClient,
    QualityControlStatus,
    RadpacsClient,
    RadpacsRequestError,
)

PASSWORD = "a long enough password"


def test_store_sets_reads_and_lists(archive: Archive) -> None:
    store = QualityControlStore(archive.engine)
    assert store.get("1.2", "1.2.3", "1.2.3.4").status is QcStatus.PENDING
    store.set("1.2", "1.2.3", "1.2.3.4", QcStatus.FAILED, "motion", "ana")
    store.set("1.2", "1.2.3", "1.2.3.5", QcStatus.PASSED, "", "ana")
    store.set("9.9", "9.9.1", "9.9.1.1", QcStatus.FAILED, "", "bo")
    again = store.set("1.2", "1.2.3", "1.2.3.5", QcStatus.FAILED, "second look", "bo")
    assert again.status is QcStatus.FAILED and again.set_by == "bo"
    record = store.get("1.2", "1.2.3", "1.2.3.4")
    assert (record.status, record.comment, record.set_by) == (QcStatus.FAILED, "motion", "ana")
    assert record.updated_at is not None
    assert {r.sop_uid for r in store.search(QcStatus.FAILED, "1.2")} == {"1.2.3.4", "1.2.3.5"}
    assert [r.sop_uid for r in store.search(QcStatus.PASSED)] == []
    assert store.summary(["1.2", "9.9", "0.0"]) == {"1.2": {"failed": 2}, "9.9": {"failed": 1}}


def test_deleting_an_instance_series_or_study_deletes_its_statuses(
    archive: Archive, ct_factory: Callable[..., Dataset]
) -> None:
    study = generate_uid()
    series = [generate_uid(), generate_uid()]
    datasets = [ct_factory(study, s, generate_uid()) for s in series for _ in range(2)]
    archive.store_many([to_bytes(ds) for ds in datasets])
    store = QualityControlStore(archive.engine)
    for ds in datasets:
        store.set(study, ds.SeriesInstanceUID, ds.SOPInstanceUID, QcStatus.FAILED, "", "ana")
    store.set("9.9", "9.9.1", "9.9.1.1", QcStatus.PASSED, "", "bo")  # another study's

    def left() -> set[str]:
        return {r.sop_uid for r in store.search()}

    first, second, third, fourth = (str(ds.SOPInstanceUID) for ds in datasets)
    archive.delete(study, series[0], first)
    assert left() == {second, third, fourth, "9.9.1.1"}
    archive.delete(study, series[0])
    assert left() == {third, fourth, "9.9.1.1"}
    archive.delete(study)
    assert left() == {"9.9.1.1"}
    assert store.get(study, series[1], third).status is QcStatus.PENDING


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RADPACS_ADMIN_USER", "root")
    monkeypatch.setenv("RADPACS_ADMIN_PASSWORD", PASSWORD)
    live = LiveServer(tmp_path / "data", ["--auth"]).start()
    yield live
    live.stop()


def test_qc_through_api_clients_and_command(server: LiveServer) -> None:
    login = httpx.post(f"{server.url}/api/auth", data={"username": "root", "password": PASSWORD})
    token = str(login.json()["token"])
    first = make_ct()
    second = make_ct(first.StudyInstanceUID, first.SeriesInstanceUID)
    body, content_type = multipart([to_bytes(first), to_bytes(second)])
    stored = httpx.post(
        f"{server.url}/dicom-web/studies",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    assert stored.status_code == 200, stored.text
    study, sop, other = first.StudyInstanceUID, first.SOPInstanceUID, second.SOPInstanceUID

    with RadpacsClient(server.url, token) as client:
        pending = client.quality_control(sop)
        assert pending.status is QualityControlStatus.PENDING and pending.updated_at is None
        failed = client.set_quality_control(sop, QualityControlStatus.FAILED, "motion artefact")
        assert failed.status is QualityControlStatus.FAILED and failed.set_by == "root"
        assert failed.study_uid == study and failed.updated_at is not None
        read = client.quality_control(sop)
        assert (read.status, read.comment) == (QualityControlStatus.FAILED, "motion artefact")
        with pytest.raises(RadpacsRequestError) as refused:
            client.set_quality_control(sop, "excellent")
        assert refused.value.status_code == 400 and "passed, failed" in str(refused.value)
        with pytest.raises(RadpacsRequestError) as missing:
            client.quality_control("1.2.3.999")
        assert missing.value.status_code == 404
        assert client.quality_control(sop).status is QualityControlStatus.FAILED  # unchanged

    async def flow() -> None:
        async with AsyncRadpacsClient(server.url, token) as client:
            done = await client.set_quality_control(other, "passed")
            assert done.status is QualityControlStatus.PASSED
            listed = await client.quality_controls(status="failed", study=study)
            assert [item.sop_uid for item in listed] == [sop]

    asyncio.run(flow())

    headers = {"Authorization": f"Bearer {token}"}
    summary = httpx.get(f"{server.url}/api/qc/studies", params={"study": study}, headers=headers)
    assert summary.json() == {study: {"failed": 1, "passed": 1}}
    assert httpx.get(f"{server.url}/api/qc?status=maybe", headers=headers).status_code == 400

    runner = CliRunner()
    common = ["--url", server.url, "--token", token]
    result = runner.invoke(app, ["qc", "set", other, "failed", "--comment", "noise", *common])
    assert result.exit_code == 0, result.output
    assert f"{other}\tfailed\troot\tnoise" in result.output
    result = runner.invoke(app, ["qc", "list", "--status", "failed", "--study", study, *common])
    assert result.exit_code == 0 and sop in result.output and other in result.output
    result = runner.invoke(app, ["qc", "get", "1.2.3.999", *common])
    assert result.exit_code == 2

    # audited: who set which status of which instance of which study
    deadline = time.monotonic() + 30
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        audit = httpx.get(
            f"{server.url}/api/audit", params={"action": "qc-set", "study": study}, headers=headers
        )
        events = audit.json()["events"]
        if len(events) >= 3:
            break
        time.sleep(0.2)
    assert any(e.get("sop_uid") == sop and e.get("username") == "root" for e in events), events


@pytest.mark.peer
def test_study_list_shows_qc_in_chromium(live_server: LiveServer) -> None:
    """The web study list's QC column, in Debian's Chromium (no OHIF needed)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_web_e2e import CHROMIUM, CHROMIUM_ARGS

    checked, failed, unchecked = (make_ct(PatientID=f"QC-{n}") for n in range(3))
    second = make_ct(checked.StudyInstanceUID, checked.SeriesInstanceUID, PatientID="QC-0")
    body, content_type = multipart([to_bytes(d) for d in (checked, second, failed, unchecked)])
    stored = httpx.post(
        f"{live_server.url}/dicom-web/studies",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert stored.status_code == 200, stored.text
    with RadpacsClient(live_server.url) as client:
        client.set_quality_control(checked.SOPInstanceUID, "passed")
        client.set_quality_control(failed.SOPInstanceUID, "failed", "artefact")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(live_server.url + "/")
            expect = sync_api.expect
            row = page.locator("#study-table tbody tr", has_text="QC-0")
            expect(row.locator("td.qc")).to_have_text("1 passed, 1 not checked", timeout=30_000)
            bad = page.locator("#study-table tbody tr", has_text="QC-1").locator("td.qc")
            expect(bad).to_have_text("1 failed")
            expect(bad).to_have_class("qc qc-failed")
            none = page.locator("#study-table tbody tr", has_text="QC-2").locator("td.qc")
            expect(none).to_have_text("not checked")
        finally:
            browser.close()
