"""Callback apps, server side (docs/ai-apps.md, "Callback apps"), against a real
``radpacs serve --auth`` and a tiny app served by uvicorn in a thread of this process.

The app records every request it gets. In ``auto`` mode it then does what an app does, in
a thread of its own: reads the inputs with the request's token over WADO-RS and posts a
JSON result. Other modes answer 202 and wait (the test plays the app with the token), answer
garbage, or hang. Faults: app down, garbage, hang, expired token, host not allowed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from _dciodvfy import dciodvfy_errors
from conftest import LiveServer, free_port, make_ct, multipart, split_multipart, to_bytes
from radpacs.apps.registry import AppSpec, AppUpdate, check_url, host_allowed
from radpacs.apps.service import AppService
from radpacs.apps.tokens import issue_app_token
from radpacs.archive import Archive
from radpacs.archive.apps import AppRun, AppStore
from radpacs.auth.tokens import TokenIssuer, signing_secret
from radpacs.cli import app as cli
from radpacs.client import AsyncRadpacsClient, RadpacsClient
from radpacs.client.apps import AnalysisRequest, AnalysisResult, Classification, ResultStatus
from radpacs.errors import AuthenticationError, Conflict, InvalidInput, StorageError
from radpacs.jobs import Jobs
from radpacs.settings import load_settings

PASSWORD = "apps-admin-pw-1"
# free ports, not fixed ones: two runs of this file at once (a developer and CI) must not clash
APP_PORT = free_port()
DOWN_PORT = free_port()  # nothing listens here
WAIT = 90.0  # a loaded machine starts the job worker slowly


# ----------------------------------------------------------------------- the test app


class TinyApp:
    """What an external app does, as small as it can be (see the module)."""

    def __init__(self) -> None:
        self.requests: list[AnalysisRequest] = []
        self.cancels: list[str] = []
        self.reads: list[int] = []
        self.posted: list[int] = []
        routes = [
            Route("/{mode}", self.analyze, methods=["POST"]),
            Route("/{mode}/cancel", self.cancel, methods=["POST"]),
        ]
        self.app = Starlette(routes=routes)

    async def analyze(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        if mode == "garbage":
            return PlainTextResponse("\x00\x01 not an answer", status_code=418)
        if mode == "redirect":  # to an address the allowed hosts would refuse
            return Response(status_code=307, headers={"Location": "http://10.1.2.3/steal"})
        if mode == "hang":
            await _sleep(5)
            return Response(status_code=202)
        body = AnalysisRequest.model_validate_json(await request.body())
        self.requests.append(body)
        if mode == "auto":
            threading.Thread(target=self.work, args=(body,), daemon=True).start()
        return JSONResponse({"accepted": body.workitem_uid}, status_code=202)

    async def cancel(self, request: Request) -> Response:
        self.cancels.append(str((await request.json())["workitem_uid"]))
        return Response(status_code=204)

    def work(self, job: AnalysisRequest) -> None:
        """Read every input series' metadata with the token, post a result with a point."""
        headers = {"Authorization": f"Bearer {job.token}"}
        with httpx.Client(headers=headers, timeout=30) as client:
            sop = ""
            for series in job.series_uids:
                read = client.get(
                    f"{job.dicomweb_url}/studies/{job.study_uid}/series/{series}/metadata"
                )
                self.reads.append(read.status_code)
                if read.status_code == 200:
                    sop = read.json()[0]["00080018"]["Value"][0]
            result = {
                "status": "completed",
                "display_text": "1 finding",
                "classifications": [{"label": "nodule", "probability": 0.9}],
                "regions": [
                    {
                        "label": "nodule",
                        "graphic_type": "POINT",
                        "image": {"sop_instance_uid": sop, "frame": 1},
                        "points": [[10, 12]],
                    }
                ],
            }
            self.posted.append(client.post(job.result_url, json=result).status_code)

    def wait_request(self, study_uid: str, timeout: float = WAIT) -> AnalysisRequest:
        return wait_for(
            lambda: next((r for r in self.requests if r.study_uid == study_uid), None), timeout
        )


async def _sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


def wait_for(probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"nothing after {timeout:g} s")


@pytest.fixture(scope="module")
def tiny_app() -> Iterator[TinyApp]:
    app = TinyApp()
    server = uvicorn.Server(
        uvicorn.Config(app.app, host="127.0.0.1", port=APP_PORT, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30)
    yield app
    server.should_exit = True
    thread.join(10)


# ----------------------------------------------------------------------- the archive


class Pacs:
    def __init__(self, live: LiveServer, token: str) -> None:
        self.live, self.token = live, token
        self.http = httpx.Client(
            base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def store_ct(self, study: str | None = None, **attributes: object) -> tuple[str, str]:
        first = make_ct(study, **attributes)
        second = make_ct(first.StudyInstanceUID, first.SeriesInstanceUID, **attributes)
        body, content_type = multipart([to_bytes(first), to_bytes(second)])
        stored = self.http.post(
            "/dicom-web/studies", content=body, headers={"Content-Type": content_type}
        )
        assert stored.status_code == 200, stored.text
        return str(first.StudyInstanceUID), str(first.SeriesInstanceUID)

    def register(self, name: str, url: str, **fields: Any) -> httpx.Response:
        return self.http.post("/api/apps", json={"name": name, "url": url, **fields})

    def trigger(self, name: str, study: str, series: str | None = None) -> str:
        answer = self.http.post(
            f"/api/apps/{name}/analyses", json={"study": study, "series": series}
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["workitem"])

    def analysis(self, uid: str) -> dict[str, Any]:
        answer = self.http.get(f"/api/apps/analyses/{uid}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait_state(self, uid: str, state: str) -> dict[str, Any]:
        return dict(wait_for(lambda: (a := self.analysis(uid))["state"] == state and a))


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    data = tmp_path_factory.mktemp("apps") / "data"
    env = {
        "RADPACS_ADMIN_USER": "root",
        "RADPACS_ADMIN_PASSWORD": PASSWORD,
        "RADPACS_AI_MAX_ATTEMPTS": "2",
        "RADPACS_AI_RETRY_DELAY": "0.2",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        live = LiveServer(data, ["--auth"]).start()
    try:
        login = httpx.post(f"{live.url}/api/auth", data={"username": "root", "password": PASSWORD})
        yield Pacs(live, str(login.json()["token"]))
    finally:
        live.stop()


def url(mode: str, port: int = APP_PORT) -> str:
    return f"http://127.0.0.1:{port}/{mode}"


# ----------------------------------------------------------------------- tests


def test_allowed_hosts_rules() -> None:
    assert host_allowed("127.0.0.1", []) and host_allowed("localhost", [])
    assert host_allowed("::1", [])
    assert not host_allowed("10.0.0.5", []) and not host_allowed("gpu1.lab", [])
    assert host_allowed("gpu1.lab", ["gpu1.lab"]) and host_allowed("10.0.0.5", ["10.0.0.0/24"])
    assert not host_allowed("127.0.0.1", ["10.0.0.0/24"])
    for bad in ("ftp://127.0.0.1/x", "file:///etc/passwd", "http://user:pw@127.0.0.1/x"):
        with pytest.raises(InvalidInput):
            check_url(bad, [])
    assert load_settings(apps_allowed_hosts=[" GPU1.lab"]).apps_allowed_hosts == ["gpu1.lab"]
    for wildcard in ("*", "http://gpu1.lab/"):
        with pytest.raises(ValueError, match="apps_allowed_hosts"):
            load_settings(apps_allowed_hosts=[wildcard])


def test_registration_refuses_hosts_not_allowed(pacs: Pacs) -> None:
    for bad in ("http://10.1.2.3/analyze", "http://169.254.169.254/latest", "gopher://127.0.0.1/"):
        answer = pacs.register("evil", bad)
        assert answer.status_code == 400, answer.text
        assert "allowed" in answer.json()["detail"] or "http" in answer.json()["detail"]
    assert pacs.http.get("/api/apps/evil").status_code == 404
    wrong = pacs.register("Bad Name!", url("auto"))
    assert wrong.status_code == 422


def test_on_demand_app_reads_with_its_token_and_completes(pacs: Pacs, tiny_app: TinyApp) -> None:
    registered = pacs.register("nodules", url("auto"), modalities=["CT"])
    assert registered.status_code == 201, registered.text
    assert pacs.register("nodules", url("auto")).status_code == 409
    listed = pacs.http.get("/api/apps").json()["apps"]
    assert [a["name"] for a in listed] == ["nodules"] and listed[0]["created_by"] == "root"
    study, series = pacs.store_ct()

    uid = pacs.trigger("nodules", study)
    request = tiny_app.wait_request(study)
    assert request.workitem_uid == uid and request.series_uids == [series]
    assert request.result_url.endswith(f"/api/apps/analyses/{uid}/result")
    done = pacs.wait_state(uid, "COMPLETED")
    assert tiny_app.reads == [200] and tiny_app.posted == [200]
    assert done["result"]["display_text"] == "1 finding"
    # the result is in the study as DICOM SR (radpacs.apps.to_dicom), valid by dciodvfy
    assert len(done["result_series"]) == 2  # the regions SR and the findings SR
    for sr_series in done["result_series"]:
        found = pacs.http.get(f"/dicom-web/studies/{study}/series/{sr_series}/instances").json()
        assert [m["00080060"]["Value"][0] for m in found] == ["SR"]
        sop = found[0]["00080018"]["Value"][0]
        part = pacs.http.get(
            f"/dicom-web/studies/{study}/series/{sr_series}/instances/{sop}",
            headers={"Accept": 'multipart/related; type="application/dicom"'},
        )
        assert part.status_code == 200
        [payload] = [body for _, body in split_multipart(part)]
        assert dciodvfy_errors(payload) == []
    assert done["delivery"]["state"] == "succeeded"
    item = pacs.http.get(f"/dicom-web/workitems/{uid}")
    assert item.status_code == 200 and item.json()[0]["00741000"]["Value"] == ["COMPLETED"]

    # the same result again is answered, not stored twice; another one is refused
    with httpx.Client(headers={"Authorization": f"Bearer {request.token}"}) as app:
        stored = pacs.analysis(uid)["result"]
        again = app.post(request.result_url, json=stored)
        assert again.status_code == 200 and again.json()["stored"] is False
        other = app.post(request.result_url, json={**stored, "display_text": "2 findings"})
        assert other.status_code == 409 and "COMPLETED" in other.json()["detail"]
    assert pacs.analysis(uid)["result"]["display_text"] == "1 finding"

    # the audit names who triggered, the delivery, and what the app read and wrote
    audit = pacs.http.get("/api/audit", params={"study": study, "limit": 200}).json()["events"]
    seen = {(e["action"], e["username"]) for e in audit}
    assert ("app-trigger", "root") in seen
    assert ("app-delivery", "radpacs") in seen
    assert ("retrieve-metadata", "app:nodules") in seen
    posts = [e for e in audit if e["action"] == "app-result"]
    assert posts and all(e["username"] == "app:nodules" for e in posts)


def test_the_token_reaches_only_its_study_and_workitem(pacs: Pacs, tiny_app: TinyApp) -> None:
    pacs.register("scope", url("wait"))
    study, series = pacs.store_ct()
    other_study, other_series = pacs.store_ct()
    uid = pacs.trigger("scope", study)
    token = tiny_app.wait_request(study).token
    app = httpx.Client(
        base_url=pacs.live.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    own = f"/dicom-web/studies/{study}"
    assert app.get(f"{own}/series").status_code == 200
    assert app.get(f"{own}/series/{series}/metadata").status_code == 200
    assert app.get(f"/dicom-web/workitems/{uid}").status_code == 200
    refused = {
        "other study": app.get(f"/dicom-web/studies/{other_study}/series/{other_series}/metadata"),
        "other study QIDO": app.get(f"/dicom-web/studies/{other_study}/series"),
        "study list": app.get("/dicom-web/studies"),
        "by series UID": app.get(f"/dicom-web/series/{series}/metadata"),
        "delete": app.delete(own),
        "api": app.get("/api/apps"),
        "ai jobs": app.get("/api/ai/jobs"),
        "audit": app.get("/api/audit"),
        "workitems": app.get("/dicom-web/workitems"),
        "store elsewhere": app.post(
            f"/dicom-web/studies/{other_study}",
            content=b"",
            headers={"Content-Type": "multipart/related; type=application/dicom"},
        ),
    }
    for what, answer in refused.items():
        assert answer.status_code == 403, (what, answer.status_code, answer.text)
    assert pacs.analysis(uid)["state"] == "IN PROGRESS"

    # garbage results: 400 or 422 in words, nothing stored, the analysis goes on
    result_url = f"/api/apps/analyses/{uid}/result"
    not_json = app.post(result_url, content=b"\x00garbage")
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
    wrong = app.post(result_url, json={"status": "done", "regions": [{"label": ""}]})
    assert wrong.status_code == 422
    assert "status" in wrong.json()["detail"] and wrong.json()["errors"]
    assert pacs.analysis(uid)["result"] is None and pacs.analysis(uid)["state"] == "IN PROGRESS"
    # a region on an image outside the inputs: 400, nothing stored
    outside = {
        "status": "completed",
        "regions": [
            {
                "label": "x",
                "graphic_type": "POINT",
                "image": {"sop_instance_uid": "1.2.3.4.5"},
                "points": [[1, 1]],
            }
        ],
    }
    foreign = app.post(result_url, json=outside)
    assert foreign.status_code == 400 and "1.2.3.4.5" in foreign.json()["detail"]
    assert pacs.analysis(uid)["result"] is None and pacs.analysis(uid)["result_series"] == []
    # progress, then a failure with the app's reason
    running = app.post(result_url, json={"status": "running", "progress": 40})
    assert running.status_code == 200 and running.json()["state"] == "IN PROGRESS"
    assert float(pacs.analysis(uid)["progress"]) == 40
    failed = app.post(result_url, json={"status": "failed", "reason": "too few slices"})
    assert failed.status_code == 200
    assert pacs.analysis(uid)["state"] == "CANCELED"
    assert pacs.analysis(uid)["reason"] == "too few slices"
    late = app.post(result_url, json={"status": "completed"})
    assert late.status_code == 409 and "CANCELED" in late.json()["detail"]
    # another workitem's result route is refused too
    assert app.post("/api/apps/analyses/2.25.1/result", json={}).status_code == 403


def test_an_expired_token_is_refused(pacs: Pacs) -> None:
    study, _ = pacs.store_ct()
    settings = load_settings(data_dir=pacs.live.data_dir)
    old = issue_app_token(settings, "scope", study, "2.25.7", now=time.time() - 7200)
    answer = httpx.get(
        f"{pacs.live.url}/dicom-web/studies/{study}/series",
        headers={"Authorization": f"Bearer {old.token}"},
    )
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    fresh = issue_app_token(settings, "scope", study, "2.25.7")
    answer = httpx.get(
        f"{pacs.live.url}/dicom-web/studies/{study}/series",
        headers={"Authorization": f"Bearer {fresh.token}"},
    )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("mode", "port", "timeout", "words"),
    [
        ("down", DOWN_PORT, 5.0, "unreachable"),
        ("garbage", APP_PORT, 5.0, "HTTP 418"),
        ("hang", APP_PORT, 1.0, "did not answer within 1 s"),
        ("redirect", APP_PORT, 5.0, "answered a redirect (307), not followed"),
    ],
)
def test_delivery_faults_end_canceled_with_the_reason(
    pacs: Pacs, tiny_app: TinyApp, mode: str, port: int, timeout: float, words: str
) -> None:
    pacs.register(f"fault-{mode}", url(mode, port), timeout=timeout)
    study, _ = pacs.store_ct()
    uid = pacs.trigger(f"fault-{mode}", study)
    ended = pacs.wait_state(uid, "CANCELED")
    delivery = wait_for(lambda: (d := pacs.analysis(uid)["delivery"])["state"] == "failed" and d)
    assert delivery["attempts"] == 2, delivery
    assert words in delivery["error"], delivery["error"]
    assert words in pacs.analysis(uid)["reason"]
    assert ended["result"] is None


def test_cancel_is_sent_to_the_app(pacs: Pacs, tiny_app: TinyApp) -> None:
    pacs.register("cancellable", url("wait"))
    study, _ = pacs.store_ct()
    uid = pacs.trigger("cancellable", study)
    token = tiny_app.wait_request(study).token
    cancelled = pacs.http.delete(f"/api/apps/analyses/{uid}")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "CANCELED"
    wait_for(lambda: uid in tiny_app.cancels)
    assert pacs.http.delete(f"/api/apps/analyses/{uid}").status_code == 409
    late = httpx.post(
        f"{pacs.live.url}/api/apps/analyses/{uid}/result",
        json={"status": "completed"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert late.status_code == 409

    # the UPS way: a cancel request on the workitem does the same
    second = pacs.trigger("cancellable", study)
    tiny_app.wait_request(study)
    wait_for(lambda: len([r for r in tiny_app.requests if r.workitem_uid == second]) == 1)
    body = {"00741238": {"vr": "LT", "Value": ["no longer needed"]}}
    asked = pacs.http.post(
        f"/dicom-web/workitems/{second}/cancelrequest",
        content=json.dumps(body),
        headers={"Content-Type": "application/dicom+json"},
    )
    assert asked.status_code == 202, asked.text
    assert pacs.analysis(second)["state"] == "CANCELED"
    assert pacs.analysis(second)["reason"] == "no longer needed"
    wait_for(lambda: second in tiny_app.cancels)


def test_on_arrival_app_runs_on_a_stored_ct_series(pacs: Pacs, tiny_app: TinyApp) -> None:
    answer = pacs.register(
        "arrivals", url("auto"), modalities=["CT"], trigger="on-arrival", stable_seconds=0.5
    )
    assert answer.status_code == 201, answer.text
    skipped, _ = pacs.store_ct(Modality="MR")
    study, series = pacs.store_ct()
    request = tiny_app.wait_request(study)
    assert request.app == "arrivals" and request.series_uids == [series]
    pacs.wait_state(request.workitem_uid, "COMPLETED")
    analyses = pacs.http.get("/api/apps/analyses", params={"app": "arrivals"}).json()
    assert {a["study"] for a in analyses["analyses"]} == {study}
    assert analyses["analyses"][0]["trigger"] == "on-arrival"
    assert not [r for r in tiny_app.requests if r.study_uid == skipped]
    # disabled: no more runs, and no on-demand trigger either
    assert pacs.http.patch("/api/apps/arrivals", json={"enabled": False}).status_code == 200
    refused = pacs.http.post("/api/apps/arrivals/analyses", json={"study": study})
    assert refused.status_code == 409
    assert pacs.http.delete("/api/apps/arrivals").status_code == 204
    assert pacs.http.get("/api/apps/arrivals").status_code == 404


def test_a_token_of_another_installation_does_not_verify(tmp_path: Path) -> None:
    """The token is signed with the installation's secret: another data folder's does not
    verify (a token of one radpacs is nothing to another)."""
    here = issue_app_token(load_settings(data_dir=tmp_path / "a"), "x", "1.2", "2.25.1")
    other = load_settings(data_dir=tmp_path / "b")
    with pytest.raises(AuthenticationError):
        TokenIssuer(signing_secret(None, other.data_dir)).decode(here.token)


def test_client_and_command_line(pacs: Pacs, tiny_app: TinyApp) -> None:
    study, series = pacs.store_ct()
    with RadpacsClient(pacs.live.url, pacs.token) as client:
        registered = client.register_app("by-client", url("wait"), modalities=["ct"])
        assert registered.modalities == ["CT"] and registered.created_by == "root"
        assert "by-client" in [a.name for a in client.apps()]
        analysis = client.trigger_app("by-client", study, series)
        assert analysis.state == "IN PROGRESS" and analysis.series == [series]
        assert client.app_analysis(analysis.workitem).app == "by-client"
    tiny_app.wait_request(study)

    async def cancel_async() -> str:
        async with AsyncRadpacsClient(pacs.live.url, pacs.token) as client:
            listed = await client.app_analyses(app="by-client")
            assert [a.workitem for a in listed] == [analysis.workitem]
            return (await client.cancel_app_analysis(analysis.workitem)).state

    assert asyncio.run(cancel_async()) == "CANCELED"

    common = ["--url", pacs.live.url, "--token", pacs.token]
    runner = CliRunner()
    done = runner.invoke(
        cli, ["apps", "register", "by-cli", url("wait"), "--modality", "CT", *common]
    )
    assert done.exit_code == 0, done.output
    assert done.output.startswith("by-cli\t")
    done = runner.invoke(cli, ["apps", "run", "by-cli", study, *common])
    assert done.exit_code == 0 and "IN PROGRESS" in done.output, done.output
    workitem = done.output.split("\t")[0]
    done = runner.invoke(cli, ["apps", "cancel", workitem, *common])
    assert done.exit_code == 0 and "CANCELED" in done.output, done.output
    done = runner.invoke(cli, ["apps", "disable", "by-cli", *common])
    assert done.exit_code == 0 and "disabled" in done.output
    done = runner.invoke(cli, ["apps", "list", "--json", *common])
    assert {a["name"] for a in json.loads(done.output)} >= {"by-cli", "by-client"}
    refused = runner.invoke(cli, ["apps", "register", "x", "http://10.9.9.9/", *common])
    assert refused.exit_code != 0 and "not allowed" in refused.output


def test_registry_and_results_on_each_database(archive: Archive) -> None:
    """The app and app_run tables (migration 0011) on SQLite and PostgreSQL: names unique,
    changes kept, the first completed result kept once."""
    store = AppStore(archive.engine)
    spec = AppSpec(name="ct-lungs", url="http://127.0.0.1:9/x", modalities=["ct"])
    added = store.add(spec.record("ana"))
    assert added.modalities == ["CT"] and added.created_by == "ana" and added.created_at
    with pytest.raises(Conflict):
        store.add(spec.record("bob"))
    changed = store.update(AppUpdate(enabled=False, body_parts=["chest"]).apply(added))
    assert not changed.enabled and changed.body_parts == ["CHEST"] and changed.url == spec.url
    run = store.add_run(
        AppRun(
            "2.25.9", "2.25.10", "ct-lungs", "1.2", ["1.2.3"], "on-demand", "", "ana", "", "", []
        )
    )
    kept, recorded = store.keep_result(run.workitem_uid, '{"a": 1}', "d1", [])
    again, second = store.keep_result(run.workitem_uid, '{"a": 2}', "d2", [])
    assert recorded and not second and again.result_json == '{"a": 1}' == kept.result_json
    assert [r.workitem_uid for r in store.runs(app="ct-lungs", study_uid="1.2")] == ["2.25.9"]
    store.remove("ct-lungs")
    assert store.find("ct-lungs") is None and store.find_run("2.25.9") is not None


def test_one_arrival_makes_one_analysis_whatever_sees_it(tmp_path: Path) -> None:
    """Two server processes hear the same arrival: the workitem UID is derived from (app,
    study, series), so the second trigger is a Conflict, not a second analysis."""
    settings = load_settings(data_dir=tmp_path / "data", ai_embedded_worker=False)
    with Archive.from_settings(settings) as archive:
        jobs = Jobs(settings, archive)
        try:
            study, series = "1.2.826.0.1.3680043.8.498.71", "1.2.826.0.1.3680043.8.498.72"
            archive.store_many([to_bytes(make_ct(study, series))])
            apps = AppService(settings, archive, jobs)
            apps.register(AppSpec(name="once", url=url("auto"), trigger="on-arrival"), "root")
            first = apps.submit("once", study, series)
            with pytest.raises(Conflict):
                AppService(settings, archive, jobs).submit("once", study, series)
            assert [r.workitem_uid for r in apps.store.runs("once")] == [first.workitem_uid]
            assert first.trigger == "on-arrival" and first.series_uids == [series]
        finally:
            jobs.close()


def test_a_completed_result_whose_storing_failed_completes_when_posted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result was recorded but storing its SR failed (a database busy, a full disk): the
    app's retry of the same body stores it and completes the workitem, once."""
    settings = load_settings(data_dir=tmp_path / "data", ai_embedded_worker=False)
    with Archive.from_settings(settings) as archive:
        jobs = Jobs(settings, archive)
        try:
            study, series = "1.2.826.0.1.3680043.8.498.81", "1.2.826.0.1.3680043.8.498.82"
            archive.store_many([to_bytes(make_ct(study, series))])
            apps = AppService(settings, archive, jobs)
            apps.register(AppSpec(name="retry", url=url("retry")), "root")
            run = apps.submit("retry", study, series)
            result = AnalysisResult(
                status=ResultStatus.COMPLETED,
                classifications=[Classification(label="normal", probability=0.9)],
            )
            real_store_many = archive.store_many

            def failing_store_many(*args: Any, **kwargs: Any) -> Any:  # fault injection
                raise StorageError("disk full (injected)")

            monkeypatch.setattr(archive, "store_many", failing_store_many)
            with pytest.raises(StorageError):
                apps.post_result(run.workitem_uid, result)
            monkeypatch.setattr(archive, "store_many", real_store_many)
            outcome = apps.post_result(run.workitem_uid, result)
            assert outcome.stored and outcome.state == "COMPLETED"
            again = apps.post_result(run.workitem_uid, result)
            assert not again.stored and again.series == outcome.series
            assert len(archive.instance_files(study, outcome.series[0])) == 1
        finally:
            jobs.close()
