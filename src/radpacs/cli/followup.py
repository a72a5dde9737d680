"""`radpacs followup list|show|export|sr`: the follow-up of a running server (/api/followup)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radpacs.cli import _console as console
from radpacs.cli.options import JsonOption, TokenOption, UrlOption

__all__ = ["register"]

followup_app = typer.Typer(
    help="Longitudinal follow-up of lesions (/api/followup).", no_args_is_help=True
)


@followup_app.command("list")
def list_patients(
    search: Annotated[str, typer.Option(help="Patient ID or name contains this.")] = "",
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Patients with a follow-up: timepoints, lesions, latest RECIST category."""
    with console.request_errors(), console.client(url, token) as client:
        page = client.followup_patients(search, offset=offset, limit=limit)
    if as_json or not console.interactive():
        console.emit_json(page)
        return
    columns = ["patient_id", "patient_name", "timepoints", "lesions", "latest_response"]
    table = console.table(*columns, title=f"Follow-up patients ({page['total']})")
    for patient in page["patients"]:
        table.add_row(*(console.text(patient.get(c)) for c in columns))
    console.out().print(table)


@followup_app.command("show")
def show(
    patient_id: Annotated[str, typer.Argument(help="Patient ID")],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Lesions x timepoints (longest diameter mm / volume mm3) and the response per visit."""
    with console.request_errors(), console.client(url, token) as client:
        result = client.followup_patient(patient_id)
    if as_json or not console.interactive():
        console.emit_json(result)
        return
    visits = [f"{tp['visit']} {tp['date']}" for tp in result["timepoints"]]
    table = console.table("lesion", "role", *visits, title=f"Follow-up of {patient_id}")
    for lesion in result["lesions"]:
        cells = []
        for m in lesion["measurements"]:
            if m["status"] == "absent":
                cells.append("")
            else:
                size = console.text(m.get("long_axis_mm"))
                volume = console.text(m.get("volume_mm3"))
                status = "" if m["status"] == "present" else m["status"]
                cells.append(f"{size} mm / {volume} mm3 {status}".strip())
        table.add_row(f"{lesion['tracking_id']} {lesion['label']}", lesion["role"], *cells)
    recist = result["responses"].get("recist", [])
    table.add_row("RECIST 1.1", "", *(r["category"] for r in recist))
    console.out().print(table)


@followup_app.command("export")
def export(
    patient_id: Annotated[str, typer.Argument(help="Patient ID")],
    format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """One row per lesion per timepoint, as CSV or JSON."""
    if format not in ("csv", "json"):
        raise typer.BadParameter("--format is csv or json")
    with console.request_errors(), console.client(url, token) as client:
        text = client.followup_export(patient_id, format)
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@followup_app.command("sr")
def store_sr(
    patient_id: Annotated[str, typer.Argument(help="Patient ID")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Store the follow-up as a DICOM SR (TID 1500) in the patient's latest study."""
    with console.request_errors(), console.client(url, token) as client:
        console.emit_json(client.followup_store_sr(patient_id))


def register(app: typer.Typer) -> None:
    """Add ``radpacs followup`` to the command line."""
    app.add_typer(followup_app, name="followup")
