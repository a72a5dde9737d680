"""The app SDK (radpacs.client.app_kit) and the example app (examples/threshold_app).

The example app runs as a real process (``python -m threshold_app``) against a live
``radpacs serve`` (auth off) holding a CT series: it answers 202, fetches the series over
WADO-RS, stores a SEG over STOW-RS and posts a running and a completed result. Where the
result goes, a small HTTP server records the posts (the radpacs result endpoint is tested in
tests/test_apps_e2e.py). The kit's own answers (400, cancel) are checked in process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pydicom
import pytest
from starlette.testclient import TestClient

from _apps_support import BLOB_SLICES, ExampleApp, ResultSink, blob_series
from _dciodvfy import dciodvfy_errors
from conftest import LiveServer, multipart, to_bytes
from radpacs.apps.to_dicom import result_datasets
from radpacs.client import RadpacsClient
from radpacs.client.app_kit import Inputs, create_app, server_root
from radpacs.client.apps import AnalysisRequest, AnalysisResult, ResultStatus

WORKITEM = "2.25.424242"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data").start()
    yield live
    live.stop()


@pytest.fixture
def sink() -> Iterator[ResultSink]:
    with ResultSink() as running:
        yield running


def _request(server_url: str, study: str, result_url: str, **extra: object) -> AnalysisRequest:
    fields: dict[str, object] = {
        "workitem_uid": WORKITEM,
        "app": "threshold",
        "study_uid": study,
        "dicomweb_url": f"{server_url}/dicom-web",
        "stow_url": f"{server_url}/dicom-web/studies/{study}",
        "result_url": result_url,
        "token": "not-checked-with-auth-off",
        "token_expires": datetime.now(UTC) + timedelta(hours=1),
        **extra,
    }
    return AnalysisRequest.model_validate(fields)


def test_server_root_drops_the_dicomweb_suffix() -> None:
    assert server_root("https://pacs/x/dicom-web/") == "https://pacs/x"
    assert server_root("https://pacs") == "https://pacs"


def test_the_example_app_analyses_a_series_stores_a_seg_and_posts_its_result(
    server: LiveServer, sink: ResultSink, tmp_path: Path
) -> None:
    series = blob_series()
    study = str(series[0].StudyInstanceUID)
    body, content_type = multipart([to_bytes(ds) for ds in series])
    stored = httpx.post(
        f"{server.url}/dicom-web/studies", content=body, headers={"Content-Type": content_type}
    )
    assert stored.status_code == 200, stored.text
    app = ExampleApp(tmp_path).start()
    try:
        request = _request(
            server.url,
            study,
            f"{sink.url}/api/apps/analyses/{WORKITEM}/result",
            series_uids=[str(series[0].SeriesInstanceUID)],
            parameters={"seg": True, "threshold": 300},
        )
        answer = httpx.post(app.url + "/", content=request.model_dump_json())
        assert answer.status_code == 202, answer.text
        assert answer.json()["workitem_uid"] == WORKITEM
        result = AnalysisResult.model_validate(sink.wait_for("completed"))
    finally:
        app.stop()
    statuses = [body["status"] for _, body, _ in sink.posts]
    assert statuses[0] == "running" and statuses[-1] == "completed", statuses
    assert all(auth == f"Bearer {request.token}" for _, _, auth in sink.posts)

    blob_images = {str(series[k].SOPInstanceUID) for k in BLOB_SLICES}
    outlines = [r for r in result.regions if r.graphic_type == "POLYGON"]
    assert {r.image.sop_instance_uid for r in outlines} == blob_images
    areas = [m.value for m in result.measurements if m.label == "blob area"]
    assert len(areas) == 2 and all(100 < a < 170 for a in areas), areas  # pi 6.5² = 133
    verdicts = {q.image.sop_instance_uid: q.status.value for q in result.quality}
    assert sorted(verdicts.values()) == ["pass", "pass", "warn", "warn"]
    assert [c.label for c in result.classifications] == ["bright blob"]
    assert result.display_text and result.display_text.startswith("2 bright blob(s)")
    # the outline hugs the ball: its points lie within the ball's bounding box
    for region in outlines:
        assert all(10 <= c <= 30 and 14 <= r <= 34 for c, r in region.points), region.points
    sr_documents = result_datasets(result, series, app_name="threshold", workitem_uid=WORKITEM)
    assert len(sr_documents) == 2
    assert [dciodvfy_errors(ds) for ds in sr_documents] == [[], []]

    segs = httpx.get(
        f"{server.url}/dicom-web/studies/{study}/series", params={"Modality": "SEG"}
    ).json()
    assert len(segs) == 1
    seg_series = segs[0]["0020000E"]["Value"][0]
    with RadpacsClient(server.url) as radpacs:
        [path] = radpacs.retrieve(study, tmp_path / "seg", seg_series)
    seg = pydicom.dcmread(path)
    assert dciodvfy_errors(seg) == []
    assert seg.SegmentSequence[0].SegmentLabel == "bright blob"
    referenced = {
        item.ReferencedSOPInstanceUID
        for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert blob_images <= referenced


def test_the_kit_refuses_bad_requests_and_cancels_a_running_analysis(
    sink: ResultSink,
) -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def analyze(request: AnalysisRequest, inputs: Inputs) -> AnalysisResult:
        started.set()
        release.wait(30)
        seen.append(inputs.cancelled)
        inputs.check_cancelled()
        return AnalysisResult(status=ResultStatus.COMPLETED, display_text="not sent")

    app = create_app(analyze, name="waiter")
    with TestClient(app) as client:
        assert client.post("/", content=b"{not json").status_code == 400
        wrong = client.post("/", json={"workitem_uid": "x"})
        assert wrong.status_code == 400
        assert "not an AnalysisRequest" in wrong.json()["detail"]
        assert client.post("/cancel", json={}).status_code == 400
        assert client.post("/cancel", json={"workitem_uid": "1.2"}).json()["was_running"] is False

        request = _request("http://127.0.0.1:9", "1.2.3", f"{sink.url}/result")
        assert client.post("/", content=request.model_dump_json()).status_code == 202
        assert started.wait(30)
        again = client.post("/", content=request.model_dump_json())
        assert again.status_code == 202 and again.json()["already_running"] is True
        assert client.get("/health").json() == {"app": "waiter", "running": [WORKITEM]}
        cancelled = client.post("/cancel", json={"workitem_uid": WORKITEM})
        assert cancelled.status_code == 202 and cancelled.json()["was_running"] is True
        release.set()
        pause = threading.Event()
        for _ in range(300):
            if not client.get("/health").json()["running"]:
                break
            pause.wait(0.1)
        assert client.get("/health").json()["running"] == []
    assert seen == [True]
    assert [body["status"] for _, body, _ in sink.posts] == ["running"]  # no result after


def test_an_exception_in_analyze_is_posted_as_a_failed_result(sink: ResultSink) -> None:
    def analyze(request: AnalysisRequest, inputs: Inputs) -> AnalysisResult:
        raise ValueError("the series has no CT")

    with TestClient(create_app(analyze)) as client:
        request = _request("http://127.0.0.1:9", "1.2.3", f"{sink.url}/result")
        assert client.post("/", content=request.model_dump_json()).status_code == 202
        failed = sink.wait_for("failed", timeout=30)
    assert failed["reason"] == "ValueError: the series has no CT"
