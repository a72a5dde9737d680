"""`radpacs serve --workers 2`: two processes store into one index and one folder.

The two-process configuration is the one docs/decisions.md recommends for heavy ingest; here
concurrent STOW requests, the same batches sent twice at once included, land once each.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from conftest import LiveServer, make_ct, multipart, to_bytes
from radpacs.archive import Archive
from radpacs.settings import Settings


def test_two_processes_store_concurrent_batches_once(tmp_path: Path) -> None:
    study = generate_uid()
    series = [generate_uid() for _ in range(4)]
    files = [to_bytes(make_ct(study, series[i % 4])) for i in range(80)]
    batches = [files[start : start + 10] for start in range(0, len(files), 10)]
    server = LiveServer(tmp_path / "data", ["--workers", "2"]).start()
    try:

        def store(batch: list[bytes]) -> int:
            body, content_type = multipart(batch)
            with httpx.Client(timeout=60) as client:  # a new connection each: spread by the kernel
                response = client.post(
                    f"{server.url}/dicom-web/studies",
                    content=body,
                    headers={"Content-Type": content_type},
                )
            return response.status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(store, batches + batches))  # every batch twice
        assert statuses == [200] * len(batches) * 2
        with httpx.Client(timeout=60) as client:
            instances = client.get(f"{server.url}/dicom-web/studies/{study}/instances").json()
            studies = client.get(f"{server.url}/dicom-web/studies?StudyInstanceUID={study}").json()
        assert len(instances) == len(files)
        assert studies[0]["00201208"]["Value"] == [len(files)]  # NumberOfStudyRelatedInstances
        assert studies[0]["00201206"]["Value"] == [len(series)]
    finally:
        server.stop()
    archive = Archive.from_settings(Settings(data_dir=tmp_path / "data"))
    try:
        report = archive.check()
        assert (report.orphan_keys, report.missing) == ([], [])
        assert archive.counts()["instances"] == len(files)
    finally:
        archive.close()
