"""Follow-up speed (a benchmark, not a test): re-computing a patient, its tracking page's
data, and feeding stored SEGs.

1. recompute: one patient with ``--timepoints`` x ``--lesions`` findings (10 x 20 by
   default) in the follow-up tables (SQLite in a temporary folder): read the findings and
   corrections, track, write the result (FollowupService.recompute); median of ``--repeat``.
2. page data: GET /api/followup/patients/{id} through the application (in process, auth off),
   what the tracking page loads; median of ``--repeat``.
3. feed: ``--segs`` SEGs (3 lesion segments each, on a 24-slice CT series, 10 patients)
   stored in the archive as a server stores them (10 STOW requests of 10): each request
   queues a ``followup.study`` job, and the server's embedded job worker
   (``ai_worker_processes`` at a time, each attempt in its own process) reads them into
   the follow-up (extract in patient space, record,
   re-compute the patient); from the store to the last job done, SEGs per second. Also
   ``direct``: the same work without the queue (FollowupService.ingest in this process).

Run: ``.venv/bin/python bench/followup_bench.py`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _synthetic_findings(patient: str, timepoints: int, lesions: int) -> list[dict[str, object]]:
    from radpacs.followup.model import Finding

    rng = random.Random(1)
    centres = [
        (rng.uniform(-80, 80), rng.uniform(-80, 80), rng.uniform(-80, 80)) for _ in range(lesions)
    ]
    out = []
    for t in range(timepoints):
        study = generate_uid()
        sop = generate_uid()
        for n, (x, y, z) in enumerate(centres):
            d = max(4.0, 20 + rng.uniform(-8, 8))
            out.append(
                Finding(
                    key=f"{sop}/{n + 1}",
                    kind="SEG",
                    study_uid=study,
                    series_uid=generate_uid(),
                    sop_uid=sop,
                    label=f"metastasis {n + 1}",
                    study_date=f"2026{t + 1:02d}01",
                    frame_of_reference=f"1.2.3.{t}",
                    centroid=(x + rng.uniform(-2, 2), y, z),
                    anchor=(0.0, 0.0, 0.0),
                    volume_mm3=d**3 * 0.52,
                    long_axis_mm=d,
                    short_axis_mm=d * 0.8,
                    first_slice_mm=z - d / 2,
                    last_slice_mm=z + d / 2,
                    source="bench 1.0",
                ).to_json()
            )
    return out


def _median_ms(call: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timepoints", type=int, default=10)
    parser.add_argument("--lesions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--segs", type=int, default=100)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from radpacs.app import create_app
    from radpacs.archive import Archive
    from radpacs.followup.feed import FollowupService
    from radpacs.settings import load_settings

    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(data_dir=Path(folder) / "data", auth_enabled=False)
        archive = Archive.from_settings(settings)
        service = FollowupService(archive)
        patient = "BENCH-1"
        findings = _synthetic_findings(patient, args.timepoints, args.lesions)
        by_sop: dict[str, list[dict[str, object]]] = {}
        for f in findings:
            by_sop.setdefault(str(f["sop_uid"]), []).append(f)
        for sop, items in by_sop.items():
            service.store.record_source(
                sop, patient, "Bench^Patient", str(items[0]["study_uid"]), "", "SEG", items
            )
        result = service.recompute(patient)
        figures["recompute"] = {
            "timepoints": len(result.timepoints),
            "lesions": len(result.lesions),
            "median_ms": _median_ms(lambda: service.recompute(patient), args.repeat),
        }
        archive.close()
        with TestClient(create_app(settings)) as client:
            url = f"/api/followup/patients/{patient}"
            assert client.get(url).status_code == 200
            figures["page_data"] = {
                "bytes": len(client.get(url).content),
                "median_ms": _median_ms(lambda: client.get(url), args.repeat),
            }
    with tempfile.TemporaryDirectory() as folder:
        from _ai_support import ball, make_series
        from radpacs.ai.geometry import volume_from_datasets
        from radpacs.ai.provenance import Provenance
        from radpacs.ai.results.labels import Label
        from radpacs.ai.results.seg import build_seg

        settings = load_settings(data_dir=Path(folder) / "data", auth_enabled=False)
        archive = Archive.from_settings(settings)
        from radpacs.followup.jobs import jobs_submitter
        from radpacs.jobs import Jobs

        service = _Feed(Jobs(settings, archive))
        FollowupService(archive, submit=jobs_submitter(service.jobs)).attach()
        jobs = service.jobs.store
        shape = (24, 96, 96)
        body = np.full(shape, -1000, dtype=np.int16)
        body[:, 8:88, 8:88] = 40
        labels = np.zeros(shape, dtype=np.int16)
        for n, centre in enumerate([(8, 30, 30), (12, 60, 40), (16, 40, 70)], start=1):
            labels[ball(shape, centre, 10, (0.8, 0.8, 2.5))] = n
        datasets = make_series(body, spacing=(0.8, 0.8, 2.5), shuffle=False)
        for ds in datasets:
            ds.PatientID = "FEED-1"
        archive.store_many([_bytes(ds) for ds in datasets])
        volume = volume_from_datasets(datasets)
        template = build_seg(
            volume,
            labels,
            {n: Label(f"metastasis {n}") for n in (1, 2, 3)},
            Provenance("bench", "1"),
        )
        payloads, sops = [], []
        for index in range(args.segs):
            seg = copy.deepcopy(template)
            seg.SOPInstanceUID = generate_uid()
            seg.file_meta.MediaStorageSOPInstanceUID = seg.SOPInstanceUID
            seg.SeriesInstanceUID = generate_uid()
            seg.PatientID = f"FEED-{index % 10}"
            payloads.append(_bytes(seg))
            sops.append(str(seg.SOPInstanceUID))
        start = time.perf_counter()
        for batch in range(0, len(payloads), 10):
            archive.store_many(payloads[batch : batch + 10])
        stored = time.perf_counter()
        while True:
            pending = [
                job
                for state in ("queued", "running")
                for job in jobs.find(kind="followup.study", state=state, limit=1000)
            ]
            if not pending:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - start
        done = jobs.find(kind="followup.study", state="succeeded", limit=1000)
        read = sum(len(job.result.get("sources", [])) for job in done)
        failed = jobs.find(kind="followup.study", state="failed", limit=1000)
        figures["feed_queue"] = {
            "segs": args.segs,
            "worker_processes": settings.ai_worker_processes,
            "jobs": len(done),
            "segs_read": read,
            "failed_jobs": [job.error[:200] for job in failed],
            "store_seconds": round(stored - start, 2),
            "seconds": round(elapsed, 2),
            "segs_per_second": round(args.segs / elapsed, 1),
        }
        service.jobs.close()
        direct = FollowupService(archive)
        start = time.perf_counter()
        for sop in sops:
            assert direct.ingest(sop)["state"] == "ok"
        elapsed = time.perf_counter() - start
        figures["feed_direct"] = {
            "segs": args.segs,
            "seconds": round(elapsed, 2),
            "segs_per_second": round(args.segs / elapsed, 1),
        }
        archive.close()
    print(json.dumps(figures))


class _Feed:
    def __init__(self, jobs: object) -> None:
        self.jobs: Any = jobs


def _bytes(ds: object) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)  # type: ignore[attr-defined]
    return buffer.getvalue()


if __name__ == "__main__":
    main()
