"""STOW-RS over HTTP: the framings clients send, and bad input answered as PS3.18 says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import make_ct, multipart, to_bytes

STOW = "/dicom-web/studies"


def referenced(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["00081155"]["Value"][0] for item in body.get("00081199", {}).get("Value", [])]


def failures(body: dict) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    return [
        (item["00081155"].get("Value", [""])[0], item["00081197"]["Value"][0])
        for item in body.get("00081198", {}).get("Value", [])
    ]


def count_instances(client: TestClient) -> int:
    return len(client.get("/dicom-web/instances").json())


def test_store_two_instances_answers_200_with_retrieve_urls(client: TestClient) -> None:
    a, b = make_ct(), make_ct()
    body, content_type = multipart([to_bytes(a), to_bytes(b)])
    response = client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"
    answer = response.json()
    assert referenced(answer) == [a.SOPInstanceUID, b.SOPInstanceUID]
    url = answer["00081199"]["Value"][0]["00081190"]["Value"][0]
    assert url == (
        f"http://testserver/dicom-web/studies/{a.StudyInstanceUID}/series/"
        f"{a.SeriesInstanceUID}/instances/{a.SOPInstanceUID}"
    )
    assert client.get(url.removeprefix("http://testserver")).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/related; type=application/dicom; boundary=radpacs-test",
        'multipart/related; type="application/dicom"; boundary="radpacs-test"',
        "multipart/related;boundary=radpacs-test;type=application/dicom",
        "multipart/related; boundary=radpacs-test",
    ],
)
def test_type_and_boundary_quoted_or_not(sqlite_client: TestClient, content_type: str) -> None:
    dataset = make_ct()
    body, _ = multipart([to_bytes(dataset)])
    response = sqlite_client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    [stored] = response.json()["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [dataset.SOPInstanceUID]
    found = sqlite_client.get(f"/dicom-web/instances?SOPInstanceUID={dataset.SOPInstanceUID}")
    assert [i["00080018"]["Value"] for i in found.json()] == [[dataset.SOPInstanceUID]]


def test_chunked_upload(sqlite_client: TestClient) -> None:
    dataset = make_ct()
    body, content_type = multipart([to_bytes(dataset)])

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 333):
            yield body[start : start + 333]

    response = sqlite_client.post(STOW, content=chunks(), headers={"Content-Type": content_type})
    assert response.status_code == 200
    assert referenced(response.json()) == [dataset.SOPInstanceUID]


def test_single_part_application_dicom_body(sqlite_client: TestClient) -> None:
    dataset = make_ct()
    response = sqlite_client.post(
        STOW, content=to_bytes(dataset), headers={"Content-Type": "application/dicom"}
    )
    assert response.status_code == 200
    assert referenced(response.json()) == [dataset.SOPInstanceUID]


def test_same_instance_twice_is_stored_once_and_answers_200(client: TestClient) -> None:
    data = to_bytes(make_ct())
    body, content_type = multipart([data])
    for _ in range(2):
        assert (
            client.post(STOW, content=body, headers={"Content-Type": content_type}).status_code
            == 200
        )
    assert count_instances(client) == 1


def test_bad_parts_fail_alone_with_failure_reasons(client: TestClient) -> None:
    good = make_ct()
    no_uid = make_ct()
    del no_uid.SOPInstanceUID
    truncated = to_bytes(make_ct())[:-5000]
    body, content_type = multipart(
        [b"this is not DICOM", to_bytes(good), to_bytes(no_uid), truncated]
    )
    response = client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 202
    answer = response.json()
    assert referenced(answer) == [good.SOPInstanceUID]
    assert [reason for _, reason in failures(answer)] == [0xC000, 0xC000, 0xC000]
    warning = response.headers["warning"]
    assert "part 1: not a DICOM file (no DICM prefix" in warning
    assert "part 3: SOPInstanceUID is missing" in warning
    assert "part 4 (SOP Instance " in warning and "file truncated" in warning
    assert "force=True" not in warning
    assert count_instances(client) == 1


def test_a_part_of_another_media_type_fails_alone(sqlite_client: TestClient) -> None:
    good = to_bytes(make_ct())
    body = (
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--b\r\nContent-Type: application/dicom\r\n\r\n" + good + b"\r\n--b--\r\n"
    )
    response = sqlite_client.post(
        STOW,
        content=body,
        headers={"Content-Type": "multipart/related; type=application/dicom; boundary=b"},
    )
    assert response.status_code == 202
    assert "part 1: a text/plain part, not application/dicom" in response.headers["warning"]


def test_all_parts_failing_for_bad_syntax_answers_400(sqlite_client: TestClient) -> None:
    """PS3.18 10.5.3: 400 when no instance could be stored because of bad syntax."""
    body, content_type = multipart([b"", b"more junk", to_bytes(make_ct())[:3000]])
    response = sqlite_client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert [reason for _, reason in failures(response.json())] == [0xC000] * 3
    warning = response.headers["warning"]
    assert "part 1: empty body" in warning
    assert "part 2: not a DICOM file (no DICM prefix" in warning
    assert "part 3" in warning and "truncated" in warning


def test_all_parts_failing_for_a_conflict_answers_409(sqlite_client: TestClient) -> None:
    """409 is kept for conflicts: here a duplicate with other content beside bad syntax."""
    first = make_ct()
    sqlite_client.post(STOW, content=to_bytes(first), headers={"Content-Type": "application/dicom"})
    first.PatientName = "Other^Content"
    body, content_type = multipart([to_bytes(first), b"junk"])
    response = sqlite_client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 409
    assert sorted(reason for _, reason in failures(response.json())) == [0x0111, 0xC000]


def test_study_mismatch_fails_with_c409(client: TestClient) -> None:
    inside, outside = make_ct(), make_ct()
    body, content_type = multipart([to_bytes(inside), to_bytes(outside)])
    response = client.post(
        f"{STOW}/{inside.StudyInstanceUID}", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 202
    assert failures(response.json()) == [(outside.SOPInstanceUID, 0xC409)]
    assert response.json()["00081190"]["Value"][0].endswith(f"/studies/{inside.StudyInstanceUID}")


def test_duplicate_with_other_content_is_rejected_and_says_so(client: TestClient) -> None:
    original = make_ct()
    changed = make_ct(
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        original.SOPInstanceUID,
        PatientName="X",
    )
    for dataset, expected in ((original, 200), (changed, 409)):
        body, content_type = multipart([to_bytes(dataset)])
        response = client.post(STOW, content=body, headers={"Content-Type": content_type})
        assert response.status_code == expected
    assert failures(response.json()) == [(original.SOPInstanceUID, 0x0111)]
    assert "duplicate_policy=reject" in response.headers["warning"]


def test_wrong_content_type_is_415_and_stores_nothing(sqlite_client: TestClient) -> None:
    data = to_bytes(make_ct())
    for content_type in ("application/json", "text/plain", ""):
        response = sqlite_client.post(STOW, content=data, headers={"Content-Type": content_type})
        assert response.status_code == 415, content_type
    response = sqlite_client.post(
        STOW,
        content=b"<x/>",
        headers={"Content-Type": 'multipart/related; type="text/xml"; boundary=x'},
    )
    assert response.status_code == 415  # JSON and XML metadata: tests/test_stow_json.py, _xml.py
    assert count_instances(sqlite_client) == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            b"--other\r\n\r\nx\r\n--other--",
            'multipart/related; type="application/dicom"; boundary=b',
        ),
        (b"", 'multipart/related; type="application/dicom"; boundary=b'),
        (b"--b\r\n\r\nx", 'multipart/related; type="application/dicom"'),
    ],
    ids=["wrong-boundary", "empty-body", "no-boundary-parameter"],
)
def test_broken_framing_is_400(sqlite_client: TestClient, body: bytes, content_type: str) -> None:
    response = sqlite_client.post(STOW, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["detail"]


def test_a_body_cut_short_stores_nothing(sqlite_client: TestClient) -> None:
    body, content_type = multipart([to_bytes(make_ct()), to_bytes(make_ct())])
    response = sqlite_client.post(
        STOW, content=body[: len(body) - 3000], headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert "cut short" in response.json()["detail"]
    assert count_instances(sqlite_client) == 0


def test_upload_limit_is_413(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from radpacs.app import create_app
    from radpacs.settings import load_settings

    with TestClient(create_app(load_settings(data_dir=tmp_path, max_upload_bytes=1000))) as small:
        body, content_type = multipart([to_bytes(make_ct())])
        response = small.post(STOW, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 413

        def chunks() -> Iterator[bytes]:
            yield body

        response = small.post(STOW, content=chunks(), headers={"Content-Type": content_type})
        assert response.status_code == 413
        assert small.get("/dicom-web/instances").json() == []
