"""Locust users that work a DICOMweb server as OHIF's viewer does, plus an uploader.

Run through bench/load_bench.py, which stores a corpus first and writes the STOW bodies this
file sends (LOAD_BENCH_BODIES, a folder of `*.body` files named with their boundary).

A viewer user, between 0.5 and 2 s of thought after each step, either lists studies (QIDO-RS
with OHIF's includefields), or opens a study: its series (QIDO), the metadata of one series,
then the first frame of up to 10 of its instances (`transfer-syntax=*`, as OHIF asks for
them). One user in ten instead stores a batch (STOW-RS). Only the server named by --host is
contacted (load_bench.py gives a loopback one).
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path
from typing import Any

from locust import HttpUser, between, task

DICOM_JSON = "application/dicom+json"
FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
STUDY_LIST = (
    "/studies?limit=101&offset=0&fuzzymatching=false"
    "&includefield=00081030,00080060,00080061,00201206,00201208"
)
BODIES = sorted(Path(os.environ.get("LOAD_BENCH_BODIES", "bench/out/stow-bodies")).glob("*.body"))
NEXT_BODY = itertools.cycle(BODIES)


def _values(item: dict[str, Any], tag: str) -> list[Any]:
    return list(item.get(tag, {}).get("Value", []))


class Viewer(HttpUser):
    """A radiologist in OHIF: study list, then studies opened and scrolled."""

    weight = 9
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.studies: list[str] = []
        self.list_studies()

    @task(1)
    def list_studies(self) -> None:
        with self.client.get(
            STUDY_LIST, headers={"Accept": DICOM_JSON}, name="QIDO studies", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            self.studies = [_values(s, "0020000D")[0] for s in response.json()]

    @task(3)
    def open_study(self) -> None:
        if not self.studies:
            return
        study = random.choice(self.studies)
        series = self.client.get(
            f"/studies/{study}/series", headers={"Accept": DICOM_JSON}, name="QIDO series"
        )
        if series.status_code != 200:
            return
        uids = [_values(s, "0020000E")[0] for s in series.json()]
        chosen = random.choice(uids)
        metadata = self.client.get(
            f"/studies/{study}/series/{chosen}/metadata",
            headers={"Accept": DICOM_JSON},
            name="series metadata",
        )
        if metadata.status_code != 200:
            return
        instances = [_values(i, "00080018")[0] for i in metadata.json()][:10]
        for sop in instances:
            self.client.get(
                f"/studies/{study}/series/{chosen}/instances/{sop}/frames/1",
                headers={"Accept": FRAMES},
                name="frames",
            )


class Uploader(HttpUser):
    """A modality or script storing batches of instances (STOW-RS)."""

    weight = 1
    wait_time = between(0.5, 2.0)

    @task
    def store(self) -> None:
        if not BODIES:
            return
        path = next(NEXT_BODY)
        boundary = path.stem
        with self.client.post(
            "/studies",
            data=path.read_bytes(),
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": DICOM_JSON,
            },
            name="STOW",
            catch_response=True,
        ) as response:
            failed = response.status_code == 200 and _values(response.json(), "00081198")
            if response.status_code != 200 or failed:
                response.failure(f"status {response.status_code}, failures {failed}")
