"""``radpacs qc``: quality-control status of instances, through a running server.

- ``radpacs qc set SOP_UID passed|failed|pending [--comment TEXT]``;
- ``radpacs qc get SOP_UID``;
- ``radpacs qc list [--status failed] [--study UID]``.

``--json`` prints the server's JSON instead of one line per instance. The main CLI calls
:func:`register`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from radpacs.cli._console import client as _client
from radpacs.cli._console import emit_json as _emit_json
from radpacs.cli._console import request_errors
from radpacs.cli.options import JsonOption, TokenOption, UrlOption

__all__ = ["register"]

qc_app = typer.Typer(help="Quality-control status of stored instances (passed, failed, pending).")
SopArg = Annotated[str, typer.Argument(help="The SOP Instance UID.")]


def _line(record: Any) -> str:
    comment = f"\t{record.comment}" if record.comment else ""
    return f"{record.sop_uid}\t{record.status.value}\t{record.set_by or '-'}{comment}"


def _show(records: list[Any], as_json: bool) -> None:
    if as_json:
        _emit_json([record.model_dump(mode="json") for record in records])
        return
    for record in records:
        typer.echo(_line(record))


@qc_app.command("set")
def set_status(
    sop: SopArg,
    status: Annotated[str, typer.Argument(help="passed, failed or pending.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (free text).")] = "",
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set an instance's quality-control status."""
    with request_errors(), _client(url, token) as client:
        record = client.set_quality_control(sop, status, comment)
    if as_json:
        _emit_json(record.model_dump(mode="json"))
    else:
        typer.echo(_line(record))


@qc_app.command("get")
def get_status(
    sop: SopArg, url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """An instance's quality-control status (pending when never set)."""
    with request_errors(), _client(url, token) as client:
        record = client.quality_control(sop)
    if as_json:
        _emit_json(record.model_dump(mode="json"))
    else:
        typer.echo(_line(record))


@qc_app.command("list")
def list_statuses(
    status: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Only this study.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """The statuses that were set, newest first."""
    with request_errors(), _client(url, token) as client:
        records = client.quality_controls(status, study)
    _show(records, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(qc_app, name="qc")
