"""On-arrival rules and batch submission, on a real archive (no worker: jobs stay queued)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from _ai_support import make_series
from conftest import to_bytes
from radpacs.ai.service import AiService
from radpacs.ai.triggers import ArrivalRule, ArrivalWatcher
from radpacs.archive import Archive
from radpacs.jobs import Jobs
from radpacs.settings import load_settings


def test_a_stable_matching_series_triggers_one_job_and_batch_covers_a_query(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", ai_embedded_worker=False)
    archive = Archive.from_settings(settings)
    try:
        job_service = Jobs(settings, archive)
        service = AiService(settings, archive, job_service)
        rule = ArrivalRule("classical-segmenter", modality="CT", stable_seconds=5)
        watcher = ArrivalWatcher(service, [rule])
        archive.add_listener(watcher.on_stored)
        ct = make_series(np.zeros((4, 16, 16), dtype=np.int16), description="abdomen")
        mr = make_series(np.zeros((4, 16, 16), dtype=np.int16), modality="MR")
        archive.store_many([to_bytes(ds) for ds in ct + mr])
        watcher.check(time.monotonic())  # not stable yet
        assert service.jobs.find() == []
        watcher.check(time.monotonic() + 6)
        watcher.check(time.monotonic() + 7)  # once only
        [job] = service.jobs.find()
        assert (job.series_uid, job.trigger) == (ct[0].SeriesInstanceUID, "arrival")
        jobs, skipped = service.batch("classical-segmenter", [("Modality", "MR")])
        assert [j.series_uid for j in jobs] == [mr[0].SeriesInstanceUID]
        assert skipped == []
        job_service.close()
    finally:
        archive.close()
