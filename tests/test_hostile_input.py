"""Hostile input (issue 14): nesting and element limits on every path that parses DICOM, files
pydicom reads but cannot use, truncated images, and what a refused store leaves on disk."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path

import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import DeflatedExplicitVRLittleEndian

from _hostile_support import nested_ct
from conftest import make_ct, multipart, shipped_test_files, to_bytes
from dvh_phantoms import LinearDose, box, rtdose_dataset, rtstruct_dataset
from dvh_phantoms import to_bytes as rt_bytes
from radpacs.archive import Archive, Outcome
from radpacs.archive.blobs import FolderBlobStore
from radpacs.dicom.limits import MAX_DEPTH, StructureLimit, check_structure
from radpacs.dicom.multipart import MultipartError, MultipartParser

STOW = "/dicom-web/studies"


# ------------------------------------------------------------------ the structure check


def test_every_file_pydicom_ships_passes_the_structure_check() -> None:
    for path in shipped_test_files():
        check_structure(path.read_bytes())


@pytest.mark.parametrize("defined", [False, True], ids=["undefined-length", "defined-length"])
def test_depth_limit_is_exact(defined: bool) -> None:
    check_structure(nested_ct(MAX_DEPTH, defined))
    with pytest.raises(StructureLimit, match=rf"more than {MAX_DEPTH} levels.*max_depth"):
        check_structure(nested_ct(MAX_DEPTH + 1, defined))


def test_depth_hidden_in_an_un_element_is_found() -> None:
    """A private element of VR UN whose value is a sequence in implicit VR (PS3.5 6.2.2)."""
    implicit = b""
    for _ in range(200):  # (0009,1001) of undefined length: a sequence, nested 200 times
        implicit = (
            struct.pack("<HHI", 0x0009, 0x1001, 0xFFFFFFFF)
            + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
            + implicit
            + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
            + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        )
    value = implicit[8:]  # the outer element's items, as the value of an explicit UN element
    element = struct.pack("<HH2sHI", 0x0009, 0x1001, b"UN", 0, len(value)) + value
    data = to_bytes(make_ct())
    at = data.find(b"\x10\x00\x10\x00")  # Patient's Name (0010,0010): (0009,1001) sorts before
    with pytest.raises(StructureLimit):
        check_structure(data[:at] + element + data[at:])


def test_element_count_limit() -> None:
    data = to_bytes(make_ct())
    check_structure(data, max_elements=500)
    with pytest.raises(StructureLimit, match=r"more than 20 data elements.*max_elements"):
        check_structure(data, max_elements=20)


def test_a_deflated_bomb_is_refused_before_inflating_it_whole() -> None:
    dataset = make_ct()
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = to_bytes(dataset)
    check_structure(data)
    meta_end = 144 + int.from_bytes(data[140:144], "little")  # after the group length value
    bomb = data[:meta_end] + zlib.compress(b"\x00" * (64 << 20))[2:-4]
    with pytest.raises(StructureLimit, match="inflates to more than"):
        check_structure(bomb, max_inflated_bytes=1 << 20)


def test_a_damaged_tail_with_many_items_is_refused() -> None:
    """What the walk cannot follow may not hide more items than the depth limit allows."""
    data = to_bytes(make_ct())
    at = data.find(b"\xe0\x7f\x10\x00")
    garbage = b"\x99\x99ZZ\x00\x00" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" * (MAX_DEPTH + 1)
    with pytest.raises(StructureLimit, match=r"cannot be followed"):
        check_structure(data[:at] + garbage)


# ------------------------------------------------------------------ ingest and STOW


def test_nesting_fails_one_part_and_the_others_are_stored(sqlite_client: TestClient) -> None:
    good, deep, bad_syntax = make_ct(), nested_ct(300), make_ct()
    bad_syntax.file_meta.TransferSyntaxUID = "1.2.3.4"
    body, content_type = multipart([nested_ct(1000), to_bytes(good), deep, to_bytes(bad_syntax)])
    response = sqlite_client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 202
    answer = response.json()
    [stored] = answer["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [good.SOPInstanceUID]
    reasons = [item["00081197"]["Value"][0] for item in answer["00081198"]["Value"]]
    assert reasons == [0xC000, 0xC000, 0xC000]
    warning = response.headers["warning"]
    assert "part 1: sequences nest more than 64 levels deep (limit max_depth=64)" in warning
    assert "part 4" in warning and "'1.2.3.4' is not a transfer syntax" in warning


def test_the_deepest_allowed_nesting_is_stored_and_served(sqlite_client: TestClient) -> None:
    data = nested_ct(MAX_DEPTH)
    response = sqlite_client.post(STOW, content=data, headers={"Content-Type": "application/dicom"})
    assert response.status_code == 200
    sop = response.json()["00081199"]["Value"][0]["00081155"]["Value"][0]
    metadata = sqlite_client.get(f"/dicom-web/instances?SOPInstanceUID={sop}&includefield=all")
    assert metadata.status_code == 200


def test_an_image_cut_on_an_element_boundary_is_refused_and_the_retry_works(
    sqlite_client: TestClient,
) -> None:
    """A file cut just before Rows reads without error; it must not be stored (issue F)."""
    dataset = make_ct()
    data = to_bytes(dataset)
    cut = data[: data.find(b"\x28\x00\x10\x00US")]  # everything before Rows (0028,0010)
    assert pydicom.dcmread(io.BytesIO(cut)).SOPInstanceUID == dataset.SOPInstanceUID
    first = sqlite_client.post(STOW, content=cut, headers={"Content-Type": "application/dicom"})
    assert first.status_code == 400
    assert "without Rows, Columns, BitsAllocated, PixelData" in first.headers["warning"]
    retry = sqlite_client.post(STOW, content=data, headers={"Content-Type": "application/dicom"})
    assert retry.status_code == 200


# ------------------------------------------------------------------ /api/anonymize, /api/dvh


@pytest.mark.parametrize("depth", [300, 1000])
def test_anonymize_refuses_deep_nesting_with_400(sqlite_client: TestClient, depth: int) -> None:
    response = sqlite_client.post(
        "/api/anonymize", files={"file": ("deep.dcm", nested_ct(depth), "application/dicom")}
    )
    assert response.status_code == 400
    assert "limit max_depth=64" in response.json()["detail"]


def test_anonymize_keeps_the_deepest_allowed_nesting(sqlite_client: TestClient) -> None:
    response = sqlite_client.post(
        "/api/anonymize", files={"file": ("ok.dcm", nested_ct(MAX_DEPTH), "application/dicom")}
    )
    assert response.status_code == 200
    assert "ContentSequence" in pydicom.dcmread(io.BytesIO(response.content))


def _unknown_vr() -> bytes:
    data = to_bytes(make_ct())
    at = data.find(b"\x08\x00\x16\x00UI")  # SOP Class UID
    return data[:at] + b"\x08\x00\x16\x00\x55\x9b" + data[at + 6 :]


def _bad_meta_syntax() -> bytes:
    dataset = make_ct()
    dataset.file_meta.TransferSyntaxUID = "1.2.3.4"
    return to_bytes(dataset)


@pytest.mark.parametrize("data", [_unknown_vr(), _bad_meta_syntax(), b""], ids=["vr", "ts", "0"])
def test_anonymize_answers_400_for_files_pydicom_cannot_use(
    sqlite_client: TestClient, data: bytes
) -> None:
    response = sqlite_client.post(
        "/api/anonymize", files={"file": ("bad.dcm", data, "application/dicom")}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("bad.dcm")


def _rt_pair() -> tuple[bytes, bytes]:
    structure = rtstruct_dataset([("box", box((0, 0, 0), (10, 10, 10), 2.0).polygons())])
    dose = rtdose_dataset(LinearDose("z", 20, 1, 0), (-20, -20, -20), (2, 2, 2), (21, 21, 21))
    return rt_bytes(structure), rt_bytes(dose)


def test_dvh_answers_400_or_422_for_hostile_input(sqlite_client: TestClient) -> None:
    structure, dose = _rt_pair()
    ok = sqlite_client.post("/api/dvh", files={"file_struct": structure, "file_dose": dose})
    assert ok.status_code == 200
    at = dose.find(b"\x04\x30\x0c\x00DS")  # Grid Frame Offset Vector: a digit becomes a letter
    length = struct.unpack_from("<H", dose, at + 6)[0]
    value = dose[at + 8 : at + 8 + length].replace(b"2", b"\xc8", 1)
    flipped = dose[: at + 8] + value + dose[at + 8 + length :]
    deep = nested_ct(5000)
    for files, expected in (
        ({"file_struct": structure, "file_dose": flipped}, "RTDOSE holds a value"),
        ({"file_struct": deep, "file_dose": dose}, "limit max_depth=64"),
    ):
        response = sqlite_client.post("/api/dvh", files=files)
        assert response.status_code == 400, response.text
        assert expected in response.json()["detail"]
    for width in ("inf", "nan"):
        response = sqlite_client.post(
            "/api/dvh",
            files={"file_struct": structure, "file_dose": dose},
            data={"bin_width": width},
        )
        assert response.status_code == 422


# ------------------------------------------------------------------ files left on disk


def test_concurrent_different_objects_under_one_uid_leave_one_file(archive: Archive) -> None:
    """Eight requests, different bytes, one SOP Instance UID: one stored, seven refused, and
    the refused ones' files removed (issue M). A barrier holds every request until all have
    looked the UID up, so all of them write their file before the index decides."""
    from concurrent.futures import ThreadPoolExecutor

    sop = "1.2.826.0.1.3680043.8.498.77"
    payloads = [to_bytes(make_ct(sop_uid=sop, PatientName=f"P^{n}")) for n in range(8)]
    barrier = threading.Barrier(8, timeout=30)
    lookup = archive._store._existing  # the store path's look-up

    def synchronised(uids: object) -> dict[str, tuple[str, str]]:
        found = lookup(uids)  # type: ignore[arg-type]
        barrier.wait()
        return found

    archive._store._existing = synchronised  # type: ignore[method-assign]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: archive.store_many([data])[0], payloads))
    outcomes = sorted(answer.outcome for answer in answers)
    assert outcomes.count(Outcome.STORED) == 1
    assert [a.failure_reason for a in answers if a.outcome is Outcome.FAILED] == [0x0111] * 7
    assert len(list(archive.blobs.keys())) == 1
    assert archive.check().orphan_keys == []


def test_check_reports_and_cleans_temporary_files(archive: Archive) -> None:
    archive.store_many([to_bytes(make_ct())])
    assert isinstance(archive.blobs, FolderBlobStore)
    left = archive.blobs.root / "ab" / "x.dcm.1234.partial"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half a file")
    fresh = archive.blobs.root / "ab" / "y.dcm.5678.partial"
    fresh.write_bytes(b"a write in progress")
    old = time.time() - 3600
    os.utime(left, (old, old))
    report = archive.check()
    assert sorted(report.temporaries) == ["ab/x.dcm.1234.partial", "ab/y.dcm.5678.partial"]
    assert report.orphan_keys == []
    report = archive.check(clean=True)
    assert report.temporaries_cleaned == 1
    assert not left.exists() and fresh.exists()


# ------------------------------------------------------------------ multipart framing


def test_part_headers_over_16_kib_are_refused_in_one_chunk() -> None:
    parser = MultipartParser(b"b")
    with pytest.raises(MultipartError, match="16 KiB"):
        parser.feed(b"--b\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\nbody\r\n--b--\r\n")


def test_parts_beyond_the_memory_limit_go_to_disk() -> None:
    parser = MultipartParser(b"b", memory_limit=1000)
    body = b"".join(b"--b\r\n\r\n" + bytes([n]) * 400 + b"\r\n" for n in range(5)) + b"--b--"
    parser.feed(body)
    parts = parser.close()
    assert [part.in_memory for part in parts] == [True, True, False, False, False]
    assert [part.read() for part in parts] == [bytes([n]) * 400 for n in range(5)]


def test_a_refused_part_stores_nothing(tmp_path: Path, archive: Archive) -> None:
    [result] = archive.store_many([nested_ct(100)])
    assert result.outcome is Outcome.FAILED
    assert list(archive.blobs.keys()) == [] and archive.counts()["instances"] == 0


# ------------------------------------------------------------------ /api/upload-zip


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _upload_zip(client: TestClient, body: bytes) -> httpx.Response:
    return client.post("/api/upload-zip", content=body, headers={"Content-Type": "application/zip"})


def test_a_zip_bomb_is_refused_with_413_before_anything_is_stored(
    sqlite_client: TestClient,
) -> None:
    body = _zip({"a.dcm": to_bytes(make_ct()), "bomb.dcm": b"\0" * (64 << 20)})
    assert len(body) < 1 << 20
    response = _upload_zip(sqlite_client, body)
    assert response.status_code == 413
    assert "'bomb.dcm' expands from" in response.json()["detail"]
    assert "zip bomb" in response.json()["detail"]
    assert sqlite_client.get("/dicom-web/instances").json() == []


def test_a_crc_error_fails_its_member_alone(sqlite_client: TestClient) -> None:
    good, damaged = make_ct(), make_ct()
    uid = damaged.SOPInstanceUID.encode()

    def zipped(members: dict[str, bytes]) -> bytes:
        body = bytearray(_zip(members, zipfile.ZIP_STORED))  # stored: the bytes as they are
        body[body.rfind(uid) + 2] ^= 0x01  # a digit of the damaged member's UID
        return bytes(body)

    response = _upload_zip(
        sqlite_client, zipped({"good.dcm": to_bytes(good), "damaged.dcm": to_bytes(damaged)})
    )
    assert response.status_code == 202
    answer = response.json()
    assert answer["stored"] == 1
    [failure] = answer["failed"]
    assert failure["file"] == "damaged.dcm" and "CRC" in failure["reason"]
    alone = _upload_zip(sqlite_client, zipped({"damaged.dcm": to_bytes(damaged)}))
    assert alone.status_code == 400


def test_lying_sizes_in_the_zip_headers_answer_400(sqlite_client: TestClient) -> None:
    data = to_bytes(make_ct())
    body = bytearray(_zip({"x.dcm": data}))
    directory = body.rfind(b"PK\x01\x02")  # central directory entry: uncompressed size at +24
    struct.pack_into("<I", body, directory + 24, 100)
    response = _upload_zip(sqlite_client, bytes(body))
    assert response.status_code == 400, response.text
    assert response.json()["failed"][0]["file"] == "x.dcm"
    assert _upload_zip(sqlite_client, b"PK\x03\x04" + b"\0" * 100).status_code == 400


def _large_ct(megabytes: int = 20) -> bytes:
    """A CT over the 16 MiB above which parts and members are stored from a file (random
    pixels: they do not compress, so no zip bomb)."""
    frames = megabytes * 2
    dataset = make_ct(Rows=512, Columns=512, NumberOfFrames=frames)
    dataset.PixelData = os.urandom(512 * 512 * 2 * frames)
    return to_bytes(dataset)


def test_a_large_member_is_stored_from_its_file_beside_small_ones(
    sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radpacs.api import upload

    kinds: list[str] = []
    read_member = upload._read_member

    def recording(zipped: zipfile.ZipFile, info: zipfile.ZipInfo) -> object:
        member = read_member(zipped, info)
        kinds.append(type(member).__name__)
        return member

    monkeypatch.setattr(upload, "_read_member", recording)
    large, small = _large_ct(), to_bytes(make_ct())
    response = _upload_zip(sqlite_client, _zip({"small.dcm": small, "large.dcm": large}))
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 2
    assert kinds == ["bytes", "FileBlob"]
    uid = pydicom.dcmread(io.BytesIO(large), stop_before_pixels=True).SOPInstanceUID
    got = sqlite_client.get(f"/dicom-web/instances/{uid}", headers={"Accept": _AS_STORED})
    assert got.status_code == 200
    assert large in got.content  # the same bytes, in a multipart answer


_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def test_a_large_stow_part_fails_alone_and_the_others_are_stored(
    sqlite_client: TestClient,
) -> None:
    large = _large_ct()
    truncated = large[: len(large) - 1000]
    good = to_bytes(make_ct())
    body, content_type = multipart([truncated, good, large])
    response = sqlite_client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 202, response.text
    answer = response.json()
    [failed] = answer["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xC000]
    assert "part 1" in response.headers["Warning"] and "truncated" in response.headers["Warning"]
    assert len(answer["00081199"]["Value"]) == 2


# ------------------------------------------------------------------ numbers past 64 bits


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/audit?offset=99999999999999999999", 422),
        ("/api/ai/jobs?offset=99999999999999999999", 422),
        ("/dicom-web/studies?offset=99999999999999999999", 400),
        ("/dicom-web/studies?limit=99999999999999999999", 400),
    ],
)
def test_offsets_beyond_64_bits_are_4xx(
    sqlite_client: TestClient, path: str, expected: int
) -> None:
    response = sqlite_client.get(path)
    assert response.status_code == expected, response.text
