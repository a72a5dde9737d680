"""``radpacs dimse``: the DICOM node on its own, and the SCU commands through a running server.

- ``radpacs dimse [--data-dir D] [--port P]`` serves DIMSE alone over the archive (the same
  node ``radpacs serve`` starts beside HTTP);
- ``radpacs dimse echo|query|send|retrieve|job NODE ...`` ask a running server to talk to
  one of its configured nodes (``dimse_nodes``); send and retrieve are jobs, ``--wait``
  follows their progress.

The main CLI calls :func:`register`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from radpacs.cli._console import client as _client
from radpacs.cli._console import emit_json as _emit_json
from radpacs.cli._console import request_errors
from radpacs.cli.options import DatabaseUrl, DataDir, JsonOption, TokenOption, UrlOption
from radpacs.settings import load_settings

__all__ = ["register"]

dimse_app = typer.Typer(
    help="The DICOM node: serve DIMSE alone, or echo, query, send to and retrieve from "
    "configured nodes through a running server.",
    invoke_without_command=True,
)
NodeArg = Annotated[str, typer.Argument(help="A node name (or AE title) of dimse_nodes.")]
SeriesOption = Annotated[str | None, typer.Option("--series", help="Only this series.")]
WaitOption = Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")]


@dimse_app.callback()
def serve_node(
    context: typer.Context,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    port: Annotated[int | None, typer.Option(help="DICOM port (default 11112).")] = None,
    ae_title: Annotated[str | None, typer.Option(help="Our AE title (default RADPACS).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
) -> None:
    """Without a command: serve DIMSE on the archive until interrupted."""
    if context.invoked_subcommand is not None:
        return
    from radpacs.dimse.service import run_node
    from radpacs.errors import RadpacsError

    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        dimse_port=port,
        dimse_ae_title=ae_title,
        dimse_host=host,
    )
    typer.echo(
        f"DICOM node {settings.dimse_ae_title} on "
        f"{settings.dimse_listen_host}:{settings.dimse_port}, data in {settings.data_dir}"
    )
    try:
        run_node(settings)
    except RadpacsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


@dimse_app.command("echo")
def echo(node: NodeArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """C-ECHO a configured node."""
    with request_errors(), _client(url, token) as client:
        client.dimse_echo(node)
    typer.echo(f"{node}: echo succeeded")


@dimse_app.command("query")
def query(
    node: NodeArg,
    keys: Annotated[
        list[str] | None,
        typer.Option("-k", "--key", help="KEYWORD=VALUE to match, or KEYWORD to return."),
    ] = None,
    level: Annotated[str, typer.Option(help="STUDY, SERIES or IMAGE.")] = "STUDY",
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """C-FIND a configured node (study root); one line per match."""
    wanted: dict[str, str] = {}
    for item in keys or []:
        keyword, _, value = item.partition("=")
        wanted[keyword.strip()] = value
    wanted.setdefault("StudyInstanceUID", "")
    with request_errors(), _client(url, token) as client:
        found = client.dimse_query(node, wanted, level=level.upper())
    if as_json:
        _emit_json(found)
        return
    for match in found:
        typer.echo(
            "  ".join(
                str((element.get("Value") or [""])[0])
                for element in match.values()
                if isinstance(element, dict) and element.get("vr") != "SQ"
            )
        )
    typer.echo(f"{len(found)} matches", err=True)


def _follow(client: Any, job: dict[str, Any], wait: bool, as_json: bool) -> None:
    if wait:

        def show(current: dict[str, Any]) -> None:
            if not as_json:
                typer.echo(f"{current['state']}: {current['done']}/{current['total']}", err=True)

        job = client.dimse_wait(job["id"], progress=show)
    if as_json:
        _emit_json(job)
    else:
        typer.echo(
            f"job {job['id']} {job['kind']} {job['state']}: {job['completed']} completed, "
            f"{job['failed']} failed" + (f" ({job['error']})" if job["error"] else "")
        )
    if wait and job["state"] != "succeeded":
        raise typer.Exit(code=1)


@dimse_app.command("send")
def send(
    node: NodeArg,
    study: Annotated[str, typer.Argument(help="StudyInstanceUID.")],
    series: SeriesOption = None,
    wait: WaitOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """C-STORE a study (or series) of the archive to a node, as a job."""
    with request_errors(), _client(url, token) as client:
        _follow(client, client.dimse_send(node, study, series), wait, as_json)


@dimse_app.command("retrieve")
def retrieve(
    node: NodeArg,
    study: Annotated[str, typer.Argument(help="StudyInstanceUID.")],
    series: SeriesOption = None,
    method: Annotated[str, typer.Option(help="move (to radpacs) or get.")] = "move",
    destination: Annotated[
        str | None, typer.Option(help="C-MOVE destination AE title (default: radpacs).")
    ] = None,
    wait: WaitOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retrieve a study (or series) from a node by C-MOVE or C-GET, as a job."""
    with request_errors(), _client(url, token) as client:
        job = client.dimse_retrieve(node, study, series, method=method, destination=destination)
        _follow(client, job, wait, as_json)


@dimse_app.command("job")
def job(
    job_id: Annotated[str, typer.Argument(help="A job id from send or retrieve.")],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """A transfer job's state and progress."""
    with request_errors(), _client(url, token) as client:
        _follow(client, client.dimse_job(job_id), False, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(dimse_app, name="dimse")
