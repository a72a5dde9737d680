"""RadpacsClient and AsyncRadpacsClient against a live `radpacs serve` (or, for login and
DVH, radpacs with an account served in a thread: see _client_support)."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import httpx
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from _client_support import USER, radpacs_with_account
from _deid_support import RT_WORKSHOP
from conftest import LiveServer, make_ct, to_bytes
from radpacs.client import (
    AsyncRadpacsClient,
    RadpacsClient,
    RadpacsRequestError,
    RetryPolicy,
)
from radpacs.client._core import PartWriter, multipart_body

FAST = RetryPolicy(attempts=2, timeout=20, initial_wait=0.01, max_wait=0.05)


def _study(folder: Path, count: int, study: str | None = None, **attrs: object) -> str:
    """``count`` CT instances of one new study (two series) written under ``folder``."""
    study = study or generate_uid()
    series = [generate_uid(), generate_uid()]
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        dataset = make_ct(study, series[number % 2], InstanceNumber=number + 1, **attrs)
        (folder / f"ct{number:03d}.dcm").write_bytes(to_bytes(dataset))
    return study


def test_store_search_retrieve_delete(live_server: LiveServer, tmp_path: Path) -> None:
    study = _study(tmp_path / "in" / "nested", 7, PatientID="LIVE-1")
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    zipped = tmp_path / "more.zip"
    other = _study(tmp_path / "zipsrc", 3, PatientID="LIVE-2")
    with zipfile.ZipFile(zipped, "w") as archive:
        for path in sorted((tmp_path / "zipsrc").iterdir()):
            archive.write(path, f"deep/{path.name}")
    batches: list[int] = []
    with RadpacsClient(live_server.url, retry=FAST, batch_instances=3, concurrency=2) as client:
        summary = client.store(
            [tmp_path / "in", zipped], progress=lambda done: batches.append(len(done))
        )
        assert summary.counts() == {"stored": 10, "already stored": 0, "failed": 0, "not DICOM": 1}
        assert summary.ok and sum(batches) == 11 and max(batches) <= 3
        assert any(item.source.endswith("more.zip!deep/ct000.dcm") for item in summary.stored)

        again = client.store([tmp_path / "in"])
        assert again.counts()["already stored"] == 7 and again.counts()["stored"] == 0
        resent = client.store([tmp_path / "in"], skip_existing=False)  # STOW is idempotent
        assert resent.counts()["stored"] == 7

        studies = client.search("studies", {"PatientID": "LIVE-*"})
        assert sorted(match.get("PatientID") for match in studies) == ["LIVE-1", "LIVE-2"]
        paged = client.search("instances", study=study, page_size=2)
        assert len(paged) == 7 and len({match.sop_uid for match in paged}) == 7
        assert len(client.search("instances", limit=4, page_size=3)) == 4
        series = client.search("series", study=study, include=["SeriesDescription"])
        assert len(series) == 2 and series[0].study_uid == study

        files = client.retrieve(study, tmp_path / "out")
        assert len(files) == 7
        originals = {
            pydicom.dcmread(path).SOPInstanceUID: path.read_bytes()
            for path in (tmp_path / "in" / "nested").iterdir()
        }
        for path in files:
            assert path.relative_to(tmp_path / "out").parts[0] == study
            assert originals[path.stem] == path.read_bytes()
        one_series = client.retrieve(study, tmp_path / "series", series[0].series_uid)
        assert len(one_series) == len([m for m in paged if m.series_uid == series[0].series_uid])

        metadata = client.metadata(study)
        assert {item.get("PatientID") for item in metadata} == {"LIVE-1"}
        first = paged[0]
        [frame] = client.frames(first.study_uid, first.series_uid, first.sop_uid, [1])
        assert len(frame) == 128 * 128 * 2  # CT_small: 128x128, 16 bits

        status = client.status()
        assert status.status == "ok" and status.counts["instances"] == 10

        client.delete(other)
        assert client.search("studies", {"PatientID": "LIVE-2"}) == []
        with pytest.raises(RadpacsRequestError) as caught:
            client.delete(other)
        assert caught.value.status_code == 404 and caught.value.method == "DELETE"


def test_store_reports_failures_with_reasons(live_server: LiveServer, tmp_path: Path) -> None:
    _study(tmp_path / "in", 2)
    broken = tmp_path / "in" / "broken.dcm"
    broken.write_bytes(b"\x08\x00" + b"\xff" * 200)  # looks like a dataset, is not one
    with RadpacsClient(live_server.url, retry=FAST) as client:
        summary = client.store([tmp_path / "in"])
    assert summary.counts()["stored"] == 2
    [failure] = summary.failed
    assert failure.source.endswith("broken.dcm")
    assert failure.reason and failure.failure_reason is not None
    assert not summary.ok


def test_store_into_an_unreachable_server_fails_every_input(tmp_path: Path) -> None:
    _study(tmp_path / "in", 2)
    dead = LiveServer(tmp_path / "dead")  # never started: its port is closed
    with RadpacsClient(dead.url, retry=FAST) as client:
        summary = client.store([tmp_path / "in"])
    assert summary.counts()["failed"] == 2
    assert "no response" in summary.failed[0].reason


def test_async_client(live_server: LiveServer, tmp_path: Path) -> None:
    study = _study(tmp_path / "in", 5, PatientID="ASYNC")

    async def flow() -> None:
        async with AsyncRadpacsClient(live_server.url, retry=FAST, batch_instances=2) as client:
            summary = await client.store([tmp_path / "in"])
            assert summary.counts()["stored"] == 5
            assert (await client.store([tmp_path / "in"])).counts()["already stored"] == 5
            [match] = await client.search("studies", {"PatientID": "ASYNC"})
            assert match.study_uid == study
            assert len(await client.search("instances", study=study, page_size=2)) == 5
            files = await client.retrieve(study, tmp_path / "out")
            assert len(files) == 5 and all(path.stat().st_size > 2000 for path in files)
            assert len(await client.metadata(study)) == 5
            assert (await client.status()).counts["studies"] == 1
            await client.delete(study)
            assert await client.search("studies") == []

    asyncio.run(flow())


def test_anonymize_through_the_server(live_server: LiveServer) -> None:
    source = RT_WORKSHOP / "rtstruct-sphere.dcm"
    with RadpacsClient(live_server.url, retry=FAST) as client:
        result = client.anonymize(source, ["retain_uids"])
        assert (
            asyncio.run(_async_anonymize(live_server.url, source.read_bytes()))[128:132] == b"DICM"
        )
    dataset = pydicom.dcmread(io.BytesIO(result))
    original = pydicom.dcmread(source, stop_before_pixels=True)
    assert dataset.PatientName != original.PatientName
    assert dataset.SOPInstanceUID == original.SOPInstanceUID  # retain_uids


async def _async_anonymize(url: str, data: bytes) -> bytes:
    async with AsyncRadpacsClient(url, retry=FAST) as client:
        return await client.anonymize(data)


def test_login_and_dvh(tmp_path: Path) -> None:
    """The real POST /api/auth, /api/dvh and /api/dvh/plot on the workshop's structures."""
    with radpacs_with_account(tmp_path / "data") as url:
        with RadpacsClient(url, retry=FAST) as client:
            with pytest.raises(RadpacsRequestError) as caught:
                client.login("alice", "wrong")
            assert caught.value.status_code == 401
            token = client.login(*USER)
            assert client._http.headers["Authorization"] == f"Bearer {token}"
            result = client.dvh(RT_WORKSHOP / "rtstruct-sphere.dcm", RT_WORKSHOP / "rtdose.dcm")
            names = [curve.name for curve in result.dvhs]
            assert "Sphere_02_0" in names
            sphere = result.dvhs[names.index("Sphere_02_0")]
            assert sphere.statistics()["max"] == pytest.approx(28.1, rel=0.01)  # Gy, analytical
            assert sphere.statistics()["volume"] == pytest.approx(7.23824, rel=0.01)  # cm3
            png = client.dvh_plot(result)
            assert png.startswith(b"\x89PNG")
            # options reach the server (form fields): one ROI, % volumes, a chosen metric
            chosen = client.dvh(
                RT_WORKSHOP / "rtstruct-sphere.dcm",
                RT_WORKSHOP / "rtdose.dcm",
                roi="Sphere_02_0",
                relative_volume="true",
                metrics="D95,V20Gy",
            )
            [curve] = chosen.dvhs
            extra = curve.model_extra or {}
            assert extra["volume_units"] == "%" and extra["volumes"][0] == pytest.approx(100.0)
            assert {"D95", "V20Gy"} <= set(curve.statistics())
            with pytest.raises(RadpacsRequestError) as caught:
                client.dvh(
                    RT_WORKSHOP / "rtstruct-sphere.dcm", RT_WORKSHOP / "rtdose.dcm", roi="NOPE"
                )
            assert caught.value.status_code == 400 and "Sphere_02_0" in str(caught.value)

        async def flow() -> None:
            async with AsyncRadpacsClient(url, retry=FAST) as client:
                await client.login(*USER)
                result = await client.dvh(
                    (RT_WORKSHOP / "rtstruct-cone.dcm").read_bytes(),
                    (RT_WORKSHOP / "rtdose.dcm").read_bytes(),
                )
                assert "Cone_02_0" in [curve.name for curve in result.dvhs]
                assert (await client.dvh_plot(result)).startswith(b"\x89PNG")

        asyncio.run(flow())


def test_rendered_and_thumbnail(live_server: LiveServer, tmp_path: Path) -> None:
    """Real GET .../rendered and .../thumbnail of a stored CT (128x128) through both clients."""
    study = _study(tmp_path / "in", 2)
    with RadpacsClient(live_server.url, retry=FAST) as client:
        client.store([tmp_path / "in"])
        [first, _] = client.search("instances", study=study)
        uids = (first.study_uid, first.series_uid, first.sop_uid)
        png = client.rendered(*uids)
        assert png.startswith(b"\x89PNG") and _size(png) == (128, 128)
        jpeg = client.rendered(
            *uids, frame=1, media_type="image/jpeg", params={"viewport": "64,64", "quality": "80"}
        )
        assert jpeg.startswith(b"\xff\xd8") and _size(jpeg) == (64, 64)
        windowed = client.rendered(*uids, params={"window": "40,80"})
        assert windowed != png  # the stored window differs from a soft-tissue one
        thumbnail = client.thumbnail(first.study_uid, first.series_uid)
        assert thumbnail.startswith(b"\xff\xd8") and max(_size(thumbnail)) <= 128
        small = client.thumbnail(*uids, media_type="image/png", params={"viewport": "32,32"})
        assert small.startswith(b"\x89PNG") and _size(small) == (32, 32)
        with pytest.raises(RadpacsRequestError) as caught:
            client.rendered(first.study_uid, first.series_uid, "1.2.3.4")
        assert caught.value.status_code == 404
        with pytest.raises(ValueError):
            client.rendered(first.study_uid, first.series_uid, frame=1)  # a frame needs its sop

    async def flow() -> bytes:
        async with AsyncRadpacsClient(live_server.url, retry=FAST) as client:
            assert (await client.rendered(*uids)) == png
            return await client.thumbnail(study)

    assert _size(asyncio.run(flow())) == _size(thumbnail)


def _size(image: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(image)) as opened:
        return opened.size


def test_part_writer_writes_each_part_before_the_body_ends(tmp_path: Path) -> None:
    payloads = [to_bytes(make_ct()) for _ in range(3)]
    body, content_type = multipart_body(payloads)
    response = httpx.Response(200, headers={"Content-Type": content_type})
    writer = PartWriter(response, tmp_path)
    first_two = body.index(payloads[2]) - 10  # inside part 3's headers
    written = writer.feed(body[:first_two])
    assert len(written) == 2  # parts 1 and 2 are on disk, part 3 is not complete
    assert written[0].read_bytes() == payloads[0]
    assert len(writer.feed(body[first_two:]) + writer.close()) == 1
    assert len(writer.written) == 3
    assert not list(tmp_path.rglob("*.part"))
