"""The AI calls of RadpacsClient and AsyncRadpacsClient, and `radpacs ai`, against one live
`radpacs serve` (its embedded worker runs the built-in classical segmenter for real)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from _ai_support import ball, make_series
from conftest import LiveServer, to_bytes
from radpacs.client import (
    AiJob,
    AiJobError,
    AiJobState,
    AiJobTimeout,
    AsyncRadpacsClient,
    RadpacsClient,
    RadpacsRequestError,
    RetryPolicy,
)

FAST = RetryPolicy(attempts=2, timeout=20, initial_wait=0.01, max_wait=0.05)
RADPACS = Path(sys.executable).with_name("radpacs")
SEGMENTER = "classical-segmenter"
PARAMETERS = {"lower": 90, "min_size_mm3": 50}  # as tests/test_ai_jobs.py: the bright ball


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module, auth off like conftest's function-scoped default;
    failed attempts are retried after 0.2 s, not 5 s."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RADPACS_AUTH_ENABLED", "false")
        patch.setenv("RADPACS_AI_RETRY_DELAY", "0.2")
        patch.setenv("RADPACS_AI_JOB_TIMEOUT", "60")
        live = LiveServer(tmp_path_factory.mktemp("ai") / "live").start()
    yield live
    live.stop()


def _ct_series(folder: Path) -> tuple[str, str]:
    """A 12-slice synthetic CT with a bright ball, written to ``folder``; (study, series)."""
    shape = (12, 48, 48)
    lesion = ball(shape, (6, 22, 26), 8.0, (1.0, 1.0, 2.0))
    noise = np.random.default_rng(1).normal(0, 10, shape)
    array = (np.where(lesion, 180, 0) + noise).astype(np.int16)
    datasets = make_series(array, "axial", (1.0, 1.0, 2.0))
    folder.mkdir(parents=True)
    for number, dataset in enumerate(datasets):
        (folder / f"{number:02d}.dcm").write_bytes(to_bytes(dataset))
    return datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID


def _stored_series(client: RadpacsClient, folder: Path) -> tuple[str, str]:
    study, series = _ct_series(folder)
    assert client.store([folder]).counts()["stored"] == 12
    return study, series


def test_models_submit_wait_result_and_result_series(server: LiveServer, tmp_path: Path) -> None:
    with RadpacsClient(server.url, retry=FAST) as client:
        catalog = client.ai_models()
        assert SEGMENTER in catalog.names
        segmenter = catalog.get(SEGMENTER)
        assert segmenter is not None and "CT" in segmenter.accepts["modalities"]

        study, series = _stored_series(client, tmp_path / "ct")
        job = client.ai_submit(SEGMENTER, study, series, parameters=PARAMETERS)
        assert job.state in (AiJobState.QUEUED, AiJobState.RUNNING) and not job.done
        assert job.model == SEGMENTER and job.study == study and job.series == series
        assert client.ai_submit(SEGMENTER, study, series, parameters=PARAMETERS).id == job.id

        done = client.ai_wait(job, timeout=120, interval=0.5)
        assert done.state is AiJobState.SUCCEEDED, done.error
        assert done.done and done.finished_at is not None and set(done.timings) >= {"infer"}
        assert {entry["modality"] for entry in done.result_series} == {"SEG", "RTSTRUCT", "SR"}
        assert client.ai_job(job.id) == done
        assert job.id in [listed.id for listed in client.ai_jobs(study=study)]
        assert job.id in [listed.id for listed in client.ai_jobs(state="succeeded")]

        [seg_series] = done.result_series_uids("SEG")
        files = client.retrieve(study, tmp_path / "out", seg_series)
        [seg] = [pydicom.dcmread(path) for path in files]
        assert seg.Modality == "SEG" and seg.SeriesInstanceUID == seg_series
        found = {
            match.series_uid: match.get("Modality")
            for match in client.search("series", study=study)
        }
        for entry in done.result_series:
            assert found[entry["series"]] == entry["modality"]

        [result] = client.ai_result(job.id)["results"]
        assert result["labels"][0]["measurements"]["volume_mm3"] > 0

        assert client.ai_cancel(job.id).state is AiJobState.SUCCEEDED  # finished jobs are kept
        with pytest.raises(RadpacsRequestError) as caught:
            client.ai_job("no-such-job")
        assert caught.value.status_code == 404


def test_wait_raises_for_a_failed_job_and_on_timeout_and_cancel(
    server: LiveServer, tmp_path: Path
) -> None:
    with RadpacsClient(server.url, retry=FAST) as client:
        study, series = _stored_series(client, tmp_path / "ct")
        with pytest.raises(RadpacsRequestError) as refused:
            client.ai_submit("no-such-model", study)
        assert refused.value.status_code == 404

        # upper below lower: the model refuses its parameters, the one attempt fails
        bad = client.ai_submit(
            SEGMENTER, study, series, parameters={"lower": 500, "upper": 100}, max_attempts=1
        )
        with pytest.raises(AiJobError) as failed:
            client.ai_wait(bad.id, timeout=120, interval=0.5)
        assert failed.value.state == "failed" and "upper" in failed.value.reason
        assert isinstance(failed.value.job, AiJob) and failed.value.job.id == bad.id
        kept = client.ai_wait(bad.id, timeout=1, raise_on_failure=False)
        assert kept.state is AiJobState.FAILED
        with pytest.raises(RadpacsRequestError) as no_result:
            client.ai_result(bad.id)
        assert no_result.value.status_code == 404

        pending = client.ai_submit(SEGMENTER, study, series, parameters={"lower": 91})
        with pytest.raises(AiJobTimeout) as late:
            client.ai_wait(pending, timeout=0)
        assert isinstance(late.value, TimeoutError) and not late.value.job.done
        client.ai_cancel(pending.id)
        cancelled = client.ai_wait(pending.id, timeout=120, interval=0.5, raise_on_failure=False)
        # cancelled, unless the worker finished it before it saw the request
        assert cancelled.state in (AiJobState.CANCELLED, AiJobState.SUCCEEDED)
        assert cancelled.cancel_requested


def test_async_client_batch_and_wait(server: LiveServer, tmp_path: Path) -> None:
    study, series = _ct_series(tmp_path / "ct")

    async def flow() -> None:
        async with AsyncRadpacsClient(server.url, retry=FAST) as client:
            assert SEGMENTER in (await client.ai_models()).names
            assert (await client.store([tmp_path / "ct"])).counts()["stored"] == 12
            batch = await client.ai_batch(SEGMENTER, {"SeriesInstanceUID": series})
            [job] = batch.jobs
            assert job.series == series and not batch.skipped
            done = await client.ai_wait(job, timeout=120, interval=0.5)
            assert done.state is AiJobState.SUCCEEDED, done.error
            assert [j.id for j in await client.ai_jobs(study=study)] == [job.id]
            assert (await client.ai_result(job.id))["results"]
            assert (await client.ai_job(job.id)).result_series_uids("SR")

    asyncio.run(flow())


def _radpacs(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RADPACS_CONFIG_DIR": str(config)}
    for name in ("RADPACS_URL", "RADPACS_TOKEN"):
        env.pop(name, None)
    return subprocess.run(
        [str(RADPACS), *args], capture_output=True, text=True, env=env, timeout=180
    )


def test_cli_ai_run_wait_models_jobs_cancel(server: LiveServer, tmp_path: Path) -> None:
    """`radpacs ai ...` as the installed script; stdout is a pipe, so it prints JSON."""
    study, series = _ct_series(tmp_path / "ct")
    with RadpacsClient(server.url, retry=FAST) as client:
        assert client.store([tmp_path / "ct"]).counts()["stored"] == 12
    url = ["--url", server.url]
    config = tmp_path / "config"

    models = _radpacs("ai", "models", *url, config=config)
    assert models.returncode == 0, models.stderr
    assert SEGMENTER in [model["name"] for model in json.loads(models.stdout)["models"]]

    run = _radpacs(
        "ai", "run", SEGMENTER, study, "--series", series,
        "--param", "lower=90", "--param", "min_size_mm3=50", "--wait", "--timeout", "120",
        *url, config=config,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    assert job["state"] == "succeeded" and job["parameters"] == PARAMETERS
    assert {entry["modality"] for entry in job["result_series"]} == {"SEG", "RTSTRUCT", "SR"}

    jobs = _radpacs("ai", "jobs", "--study", study, *url, config=config)
    assert jobs.returncode == 0 and [j["id"] for j in json.loads(jobs.stdout)] == [job["id"]]

    failing = _radpacs(
        "ai", "run", SEGMENTER, study, "--series", series, "--param", "lower=500",
        "--param", "upper=100", "--max-attempts", "1", "--wait", *url, config=config,
    )  # fmt: skip
    assert failing.returncode == 1 and json.loads(failing.stdout)["state"] == "failed"
    assert "failed" in failing.stderr

    queued = _radpacs("ai", "run", SEGMENTER, study, "--param", "lower=92", *url, config=config)
    assert queued.returncode == 0, queued.stderr
    pending = json.loads(queued.stdout)
    cancel = _radpacs("ai", "cancel", pending["id"], *url, config=config)
    assert cancel.returncode == 0, cancel.stderr
    answer = json.loads(cancel.stdout)
    # the job may have finished in the second between the two commands: then it is kept
    assert answer["id"] == pending["id"]
    assert answer["cancel_requested"] or answer["state"] == "succeeded"

    unknown = _radpacs("ai", "cancel", "no-such-job", *url, config=config)
    assert unknown.returncode == 2 and "404" in unknown.stderr


def test_cli_tables_on_a_terminal(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table views (stdout a terminal), through typer's CliRunner."""
    import typer
    from typer.testing import CliRunner

    from radpacs.cli import _console
    from radpacs.cli import ai as ai_cli

    monkeypatch.setattr(_console, "interactive", lambda: True)
    monkeypatch.setenv("RADPACS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "400")  # rich's width: wide enough for UIDs on one line
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """radpacs (test)"""

    ai_cli.register(app)
    study, series = _ct_series(tmp_path / "ct")
    with RadpacsClient(server.url, retry=FAST) as client:
        client.store([tmp_path / "ct"])
        job = client.ai_wait(
            client.ai_submit(SEGMENTER, study, series, parameters=PARAMETERS), timeout=120
        )
    runner = CliRunner()
    url = ["--url", server.url]
    models = runner.invoke(app, ["ai", "models", *url])
    assert models.exit_code == 0 and SEGMENTER in models.stdout and "AI models" in models.stdout
    shown = runner.invoke(app, ["ai", "show", job.id, *url])
    assert shown.exit_code == 0 and "succeeded" in shown.stdout and "result series" in shown.stdout
    assert all(uid in shown.stdout for uid in job.result_series_uids())
    listed = runner.invoke(app, ["ai", "jobs", "--study", study, *url])
    assert listed.exit_code == 0 and "1 AI jobs" in listed.stdout and job.id in listed.stdout


def test_wait_polls_faster_first_and_stops_at_the_deadline() -> None:
    """JobWait, the polling both clients share, on jobs made up here (no server needed)."""
    from radpacs.client._core import JobWait

    def job(state: str) -> AiJob:
        return AiJob(id="j1", model=SEGMENTER, study="1.2", state=AiJobState(state))

    waiting = JobWait("j1", timeout=10, interval=1.0, raise_on_failure=True, now=0.0)
    assert waiting.call.path == "/api/ai/jobs/j1"
    pauses = [waiting.settle(job("running"), now) for now in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)]
    assert pauses[0] == 0.1 and pauses == sorted(pauses) and pauses[-1] == 1.0
    assert waiting.settle(job("queued"), 9.5) == 0.5  # never sleeps past the deadline
    with pytest.raises(AiJobTimeout):
        waiting.settle(job("running"), 10.0)
    assert waiting.settle(job("succeeded"), 11.0) is None  # a final job is the answer
    with pytest.raises(AiJobError) as cancelled:
        waiting.settle(job("cancelled"), 1.0)
    assert cancelled.value.state == "cancelled"
    lenient = JobWait("j1", timeout=0, interval=1.0, raise_on_failure=False, now=0.0)
    assert lenient.settle(job("failed"), 5.0) is None
    with pytest.raises(ValueError):
        JobWait("a/b", timeout=1, interval=1.0, raise_on_failure=True, now=0.0)
