"""`radpacs followup list|show|export` and the client methods against a live server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from _client_support import isolate_user_config
from _followup_support import PATIENT_ID, visit_seg, wait_for_patient
from conftest import LiveServer, multipart, to_bytes
from radpacs.cli.followup import register
from radpacs.client import RadpacsClient


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of the test's own; no server or token from the environment."""
    return isolate_user_config(tmp_path, monkeypatch)


def test_followup_commands(live_server: LiveServer, tmp_path: Path) -> None:
    for index in (0, 1):
        datasets, seg, _ = visit_seg(index)
        body, content_type = multipart([to_bytes(ds) for ds in [*datasets, seg]])
        response = httpx.post(
            f"{live_server.url}/dicom-web/studies",
            content=body,
            headers={"Content-Type": content_type},
            timeout=60,
        )
        assert response.status_code == 200
    wait_for_patient(live_server.url, PATIENT_ID, timepoints=2, sources=2)
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """radpacs (test)"""

    register(app)
    runner = CliRunner()
    listed = runner.invoke(app, ["followup", "list", "--url", live_server.url, "--json"])
    assert listed.exit_code == 0, listed.output
    page = json.loads(listed.stdout)
    assert page["total"] == 1 and page["patients"][0]["latest_response"] == "PR"
    shown = runner.invoke(app, ["followup", "show", PATIENT_ID, "--url", live_server.url])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["responses"]["recist"][1]["category"] == "PR"
    out = tmp_path / "fu.csv"
    exported = runner.invoke(
        app, ["followup", "export", PATIENT_ID, "--url", live_server.url, "-o", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 6 and {r["tracking_id"] for r in rows} == {"L1", "L2", "L3"}
    missing = runner.invoke(app, ["followup", "show", "NOBODY", "--url", live_server.url])
    assert missing.exit_code == 2
    with RadpacsClient(live_server.url) as client:
        assert client.followup_patients("phantom")["total"] == 1
        lesions = client.followup_patient(PATIENT_ID)["lesions"]
        merged = client.followup_correct(
            PATIENT_ID, "merge", lesion=lesions[0]["uid"], other=lesions[1]["uid"]
        )
        assert len(merged["result"]["lesions"]) == 2
        assert json.loads(client.followup_export(PATIENT_ID, "json"))["rows"][0]["visit"] == 0
