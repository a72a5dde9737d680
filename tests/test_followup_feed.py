"""The follow-up fed by the archive: stored SEGs, an OHIF length SR, refusals, deletes.

Real archive (SQLite and PostgreSQL), real files; the feed runs as the archive's listener.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from _followup_support import PATIENT_ID, VISITS, ball_volume, ohif_length_sr, visit_seg
from conftest import to_bytes
from radpacs.archive import Archive
from radpacs.archive.jobs import JobState
from radpacs.followup.extract import ImageGeometry
from radpacs.followup.feed import FollowupService


@pytest.fixture(scope="module")
def phantom() -> list[tuple[list[Dataset], Dataset, dict[str, float]]]:
    return [visit_seg(index) for index in range(len(VISITS))]


@pytest.fixture
def service(archive: Archive) -> Iterator[FollowupService]:
    yield FollowupService(archive).attach()


def _store(archive: Archive, datasets: list[Dataset]) -> None:
    results = archive.store_many([to_bytes(ds) for ds in datasets])
    assert all(r.outcome.value == "stored" for r in results), results


def test_stored_segs_build_the_patient_and_deletes_remove_them(
    archive: Archive, service: FollowupService, phantom: Any
) -> None:
    for datasets, seg, _ in phantom:
        _store(archive, [*datasets, seg])
    result = service.store.result(PATIENT_ID)
    assert len(result["timepoints"]) == 4
    assert [r["category"] for r in result["responses"]["recist"]] == ["baseline", "PR", "PR", "PD"]
    lesions = {lesion["label"][-1]: lesion for lesion in result["lesions"]}
    assert lesions["A"]["measurements"][0]["volume_mm3"] == pytest.approx(ball_volume(12), rel=0.05)
    patients, total = service.store.patients(search="phantom")
    assert total == 1 and patients[0]["latest_response"] == "PD"
    assert patients[0]["timepoints"] == 4 and patients[0]["lesions"] == 4
    studies = service.store.studies(PATIENT_ID)
    assert [s["study_uid"] for s in studies] == [p[0][0].StudyInstanceUID for p in phantom]
    of_last = service.store.lesions_of_study(phantom[3][0][0].StudyInstanceUID)
    assert sorted((row["tracking_id"], row["status"]) for row in of_last) == [
        ("L1", "present"),
        ("L2", "present"),
        ("L3", "disappeared"),
        ("L4", "new"),
    ]
    # deleting the last visit's SEG removes its measurements: D is gone, no PD any more
    seg = phantom[3][1]
    archive.delete(seg.StudyInstanceUID, seg.SeriesInstanceUID)
    result = service.store.result(PATIENT_ID)
    assert len(result["lesions"]) == 3
    assert [r["category"] for r in result["responses"]["recist"]] == ["baseline", "PR", "PR"]
    assert service.store.source(seg.SOPInstanceUID) is None


def test_ohif_length_sr_feeds_the_same_patient(
    archive: Archive, service: FollowupService, phantom: Any
) -> None:
    datasets, seg, _ = phantom[0]
    _store(archive, [*datasets, seg])
    image = sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))[29]
    geometry = ImageGeometry.from_dataset(image)
    # a reader's length across lesion A (centre at x=-12, y=-10, z=8 -> slice 29 of 50)
    centre = geometry.to_patient([[0.5, 0.5]])[0]
    col = (-12 - centre[0]) / 0.8 + 0.5
    row = (-10 - centre[1]) / 0.8 + 0.5
    sr = ohif_length_sr(image, [("A", (col - 14.5, row, col + 14.5, row), 23.2)])
    _store(archive, [sr])
    source = service.store.source(sr.SOPInstanceUID)
    assert source is not None and source["state"] == "ok"
    result = service.store.result(PATIENT_ID)
    a = next(lesion for lesion in result["lesions"] if lesion["label"].endswith("A"))
    used = [f for f in a["measurements"][0]["findings"] if f["used"]]
    # the reader's measurement and the SEG are one lesion; the reader's value is used
    assert used[0]["kind"] == "SR"
    assert a["measurements"][0]["long_axis_mm"] == 23.2
    assert len(result["lesions"]) == 3


def test_bad_sources_are_refused_with_a_note_and_nothing_written(
    archive: Archive, service: FollowupService, phantom: Any
) -> None:
    from radpacs.ai.geometry import volume_from_datasets
    from radpacs.ai.provenance import Provenance
    from radpacs.ai.results.labels import Label
    from radpacs.ai.results.rtstruct import build_rtstruct
    from radpacs.ai.results.seg import seg_to_label_map

    datasets, seg, _radii = phantom[0]
    # an RTSTRUCT whose image series was never stored
    volume = volume_from_datasets(datasets)
    rtstruct = build_rtstruct(
        volume,
        seg_to_label_map(seg, volume),
        {1: Label("GTV A", rt_type="GTV")},
        Provenance("phantom", "1"),
    )
    _store(archive, [rtstruct])
    source = service.store.source(rtstruct.SOPInstanceUID)
    assert source is not None and source["state"] == "refused"
    assert "does not hold" in source["note"] and datasets[0].SeriesInstanceUID in source["note"]
    # a SEG without a frame of reference
    broken = copy.deepcopy(seg)
    del broken.FrameOfReferenceUID
    broken.SOPInstanceUID = generate_uid()
    broken.file_meta.MediaStorageSOPInstanceUID = broken.SOPInstanceUID
    _store(archive, [broken])
    source = service.store.source(broken.SOPInstanceUID)
    assert source is not None and source["state"] == "refused"
    assert "FrameOfReferenceUID" in source["note"]
    # an SR with unknown codes
    sr = ohif_length_sr(datasets[0], [("x", (1, 1, 5, 5), 4.0)], ("X-1", "99FOO", "Wobble"))
    _store(archive, [sr])
    source = service.store.source(sr.SOPInstanceUID)
    assert source is not None and "99FOO X-1 'Wobble'" in source["note"]
    assert service.store.findings(PATIENT_ID) == []
    assert service.store.patients()[1] == 0


def test_ai_pipeline_results_feed_the_follow_up(
    archive: Archive, settings: Any, phantom: Any
) -> None:
    """The classical segmenter run as AI jobs on two visits by a job worker: its SEG,
    RTSTRUCT and SR, stored in the worker's own archive, queue follow-up jobs, which the
    worker runs too."""
    from radpacs.archive.followup_store import FollowupStore
    from radpacs.archive.jobs import JobStore
    from radpacs.jobs.queue import open_queue
    from radpacs.jobs.worker import run_attempt

    jobs, queue = JobStore(archive.engine), open_queue(settings)
    for datasets, _seg, _radii in phantom[:2]:
        _store(archive, datasets)
        study = datasets[0].StudyInstanceUID
        job, _ = jobs.submit(
            "ai",
            {
                "model": "classical-segmenter",
                "study": study,
                "series": datasets[0].SeriesInstanceUID,
                "parameters": {
                    "lower": 55,
                    "upper": 100,
                    "label": "metastasis",
                    "min_size_mm3": 100,
                },
            },
            study_uid=study,
        )
        assert run_attempt(settings, queue, jobs, job.id) is JobState.SUCCEEDED, jobs.get(job.id)
    followup_jobs = jobs.find(kind="followup.study")
    assert len(followup_jobs) == 2  # one per study: its SEG, RTSTRUCT and SR together
    for queued in reversed(followup_jobs):
        assert run_attempt(settings, queue, jobs, queued.id) is JobState.SUCCEEDED
    store = FollowupStore(archive.engine)
    result = store.result(PATIENT_ID)
    assert [r["category"] for r in result["responses"]["recist"]] == ["baseline", "PR"]
    assert len(result["lesions"]) == 3
    kinds = {s["kind"]: s for s in store.sources(PATIENT_ID)}
    assert set(kinds) == {"SEG", "RTSTRUCT", "SR"}
    # the SR's groups measure the SEG's segments: noted, not counted twice
    assert kinds["SR"]["state"] == "refused" and "the SEG feeds" in kinds["SR"]["note"]
    used = {
        f["kind"] for lesion in result["lesions"] for f in lesion["measurements"][0]["findings"]
    }
    assert used == {"SEG", "RTSTRUCT"}  # one lesion seen by both, the SEG's values used


def test_concurrent_sources_of_one_patient(
    archive: Archive, service: FollowupService, phantom: Any
) -> None:
    import threading

    for datasets, _seg, _ in phantom[:3]:
        _store(archive, datasets)
    threads = [threading.Thread(target=_store, args=(archive, [seg])) for _, seg, _ in phantom[:3]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = service.store.result(PATIENT_ID)
    assert len(result["timepoints"]) == 3
    assert [r["category"] for r in result["responses"]["recist"]] == ["baseline", "PR", "PR"]
