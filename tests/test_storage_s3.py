"""The S3 backend end to end: `radpacs serve` on a bucket of moto's S3 server (STOW, WADO,
metadata, delete, `radpacs check`), and `radpacs storage migrate` between folder and S3."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from _s3_support import S3Server, s3_server  # noqa: F401 - the fixture
from conftest import LiveServer, make_ct, multipart, split_multipart, to_bytes
from radpacs.archive import Archive
from radpacs.cli import app
from radpacs.settings import Settings, load_settings


def _use_s3(monkeypatch: pytest.MonkeyPatch, server: S3Server, bucket: str) -> None:
    for name, value in server.environment(bucket).items():
        monkeypatch.setenv(name, value)


def _objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _check(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radpacs", "check", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_on_s3_stow_wado_metadata_delete_check(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.new_bucket()
    _use_s3(monkeypatch, s3_server, bucket)
    study = "1.2.826.0.1.3680043.8.498.777"
    datasets = [make_ct(study_uid=study) for _ in range(3)]
    payloads = [to_bytes(d) for d in datasets]
    server = LiveServer(tmp_path / "live").start()
    try:
        body, content_type = multipart(payloads)
        stored = httpx.post(
            f"{server.url}/dicom-web/studies",
            content=body,
            headers={"content-type": content_type, "accept": "application/dicom+json"},
            timeout=60,
        )
        assert stored.status_code == 200, stored.text
        objects = _objects(s3_server, bucket)
        assert sorted(objects.values()) == sorted(payloads)  # the files are in the bucket
        assert all(key.startswith("archive/") for key in objects)
        assert not (tmp_path / "live" / "files").exists() or not any(
            (tmp_path / "live" / "files").rglob("*.dcm")
        )

        wado = httpx.get(
            f"{server.url}/dicom-web/studies/{study}",
            headers={"accept": 'multipart/related; type="application/dicom"'},
            timeout=60,
        )
        assert wado.status_code == 200
        assert sorted(part for _, part in split_multipart(wado)) == sorted(payloads)
        metadata = httpx.get(f"{server.url}/dicom-web/studies/{study}/metadata", timeout=60)
        assert metadata.status_code == 200
        assert len(metadata.json()) == 3

        # an object lost from the bucket: a clear error, and `radpacs check` names it
        lost = datasets[0]
        lost_key = next(k for k, v in objects.items() if v == payloads[0])
        s3_server.client().delete_object(Bucket=bucket, Key=lost_key)
        series = lost.SeriesInstanceUID
        one = httpx.get(
            f"{server.url}/dicom-web/studies/{study}/series/{series}/instances/"
            f"{lost.SOPInstanceUID}",
            headers={"accept": 'multipart/related; type="application/dicom"'},
            timeout=60,
        )
        assert one.status_code == 404, one.text
        assert "missing" in one.text
        checked = _check(tmp_path / "live")
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert "1 indexed instances without a file" in checked.stdout
        assert f"missing {lost.SOPInstanceUID}" in checked.stdout

        deleted = httpx.delete(f"{server.url}/dicom-web/studies/{study}", timeout=60)
        assert deleted.status_code in (200, 202, 204), deleted.text
        assert _objects(s3_server, bucket) == {}
        gone = httpx.get(f"{server.url}/dicom-web/studies/{study}/metadata", timeout=60)
        assert gone.status_code == 404
    finally:
        server.stop()
    checked = _check(tmp_path / "live")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 indexed instances without a file" in checked.stdout


def test_migrate_folder_to_s3_and_back_resumes_and_verifies(
    s3_server: S3Server,  # noqa: F811
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On SQLite and on PostgreSQL (the ``settings`` fixture)."""
    data_dir = settings.data_dir
    if settings.database_url:
        monkeypatch.setenv("RADPACS_DATABASE_URL", settings.database_url)
    datasets = [make_ct() for _ in range(5)]
    payloads = [to_bytes(d) for d in datasets]
    with Archive.from_settings(settings) as archive:
        archive.store_many(payloads)
    bucket = s3_server.new_bucket()
    for name, value in s3_server.environment(bucket).items():
        if name != "RADPACS_BLOB_BACKEND":  # the archive is still on the folder
            monkeypatch.setenv(name, value)
    runner = CliRunner()

    first = runner.invoke(app, ["storage", "migrate", "--to", "s3", "--data-dir", str(data_dir)])
    assert first.exit_code == 0, first.output
    assert "5/5 files: 5 copied" in first.output
    objects = _objects(s3_server, bucket)
    assert sorted(objects.values()) == sorted(payloads)

    # interrupted or damaged: one object gone, one corrupted; a second run copies just those
    client = s3_server.client()
    keys = sorted(objects)
    client.delete_object(Bucket=bucket, Key=keys[0])
    client.put_object(Bucket=bucket, Key=keys[1], Body=b"not the file")
    again = runner.invoke(app, ["storage", "migrate", "--to", "s3", "--data-dir", str(data_dir)])
    assert again.exit_code == 0, again.output
    assert "5/5 files: 2 copied" in again.output and "3 already there" in again.output
    assert sorted(_objects(s3_server, bucket).values()) == sorted(payloads)

    # the archive now runs on S3
    monkeypatch.setenv("RADPACS_BLOB_BACKEND", "s3")
    settings = load_settings(data_dir=data_dir)
    with Archive.from_settings(settings) as archive:
        assert archive.check().missing == []
        for dataset in datasets:
            assert archive.read_dataset(dataset.SOPInstanceUID).PatientName == dataset.PatientName

    # and back to an empty folder; a damaged object in S3 is refused, not copied
    folder = data_dir / "files"
    for path in sorted(folder.rglob("*.dcm")):
        path.unlink()
    client.put_object(Bucket=bucket, Key=keys[2], Body=b"damaged")
    back = runner.invoke(app, ["storage", "migrate", "--to", "folder", "--data-dir", str(data_dir)])
    assert back.exit_code == 1, back.output
    assert "does not match the digest in the index" in back.output
    assert len(list(folder.rglob("*.dcm"))) == 4
    client.put_object(Bucket=bucket, Key=keys[2], Body=objects[keys[2]])  # repaired
    back = runner.invoke(app, ["storage", "migrate", "--to", "folder", "--data-dir", str(data_dir)])
    assert back.exit_code == 0, back.output
    assert "5/5 files: 1 copied" in back.output
    on_disk = sorted(p.read_bytes() for p in folder.rglob("*.dcm"))
    assert on_disk == sorted(payloads)
    assert all(
        p.name == f"{hashlib.sha256(p.read_bytes()).hexdigest()}.dcm" for p in folder.rglob("*.dcm")
    )


def test_a_bucket_that_cannot_be_used_is_one_line_not_a_traceback(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use_s3(monkeypatch, s3_server, "no-such-bucket")
    checked = _check(tmp_path / "data")
    assert checked.returncode == 2
    assert checked.stderr.startswith("error: S3 bucket 'no-such-bucket' at http://127.0.0.1:")
    assert "Traceback" not in checked.stderr
