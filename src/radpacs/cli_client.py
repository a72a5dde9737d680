"""The client commands of ``radpacs``: login, upload, query, retrieve/download, delete, dvh,
status, and ``ai`` (models, run, jobs, show, cancel).

Each talks to a server through :class:`radpacs.client.RadpacsClient`. The server URL and the
token come from ``--url``/``--token``, else ``RADPACS_URL``/``RADPACS_TOKEN``, else the user
config file that ``radpacs login`` writes (see :mod:`radpacs.client.config`).

On a terminal the commands show progress bars and tables. When stdout is not a terminal (a
pipe, a file, a script) they show no progress and print JSON on stdout; ``--json`` asks for
JSON on a terminal too. Messages and errors go to stderr. Exit codes: 0 done, 1 some inputs
failed (upload) or the server is not healthy (status), 2 a request failed or the usage is
wrong; ``ai run --wait`` exits 1 when the job failed, was cancelled or is still pending at
``--timeout``.

The main CLI calls :func:`register` to add the commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from radpacs.client import AiJob, RadpacsClient, SearchMatch

__all__ = ["register"]

Level = Literal["studies", "series", "instances"]

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Server root URL [env RADPACS_URL, else the config file]."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token [env RADPACS_TOKEN, else the config file]."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (the default when stdout is not a terminal).")
]

_COLUMNS: dict[str, list[str]] = {
    "studies": [
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "StudyDate",
        "ModalitiesInStudy",
        "StudyDescription",
        "NumberOfStudyRelatedInstances",
    ],
    "series": [
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
    ],
    "instances": ["SOPInstanceUID", "SOPClassUID", "InstanceNumber", "SeriesInstanceUID"],
}

_err = Console(stderr=True, soft_wrap=True)


def _interactive() -> bool:
    return sys.stdout.isatty()


def _out() -> Console:
    return Console()


def _emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2 if _interactive() else None, default=str))


def _client(url: str | None, token: str | None, **options: Any) -> RadpacsClient:
    from radpacs.client import RadpacsClient

    return RadpacsClient.from_config(url, token, **options)


@contextmanager
def _request_errors() -> Iterator[None]:
    """Turn a failed request into a one-line message on stderr and exit code 2."""
    from radpacs.errors import RadpacsError

    try:
        yield
    except RadpacsError as exc:
        _err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(code=2) from exc


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when on a terminal; else a silent counter."""
    if not (_interactive() and _err.is_terminal):
        yield lambda step: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda step: bar.advance(task, step)


def _keyword_view(match: SearchMatch) -> dict[str, Any]:
    """A match as {keyword: value}: one value as itself, several as a list."""
    from radpacs.dicom.tags import keyword_of

    view: dict[str, Any] = {}
    for tag in match.dataset:
        keyword = keyword_of(int(tag, 16))
        values = match.values(tag)
        view[keyword] = values[0] if len(values) == 1 else values or None
    return view


def _table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells fold rather than cut: UIDs are shown whole."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\\".join(str(item) for item in value)
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------- commands


def login(
    url: Annotated[str, typer.Option("--url", prompt="Server URL", help="Server root URL.")],
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Account name (prompted).")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="Password (prompted, hidden; or env RADPACS_PASSWORD).",
            envvar="RADPACS_PASSWORD",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Save this token instead of logging in.")
    ] = None,
) -> None:
    """Log in (POST /api/auth) and save the URL and token in the user config file (mode 0600)."""
    from radpacs.client.config import write_config

    with _request_errors():
        with _client(url, token) as client:
            if token is None:
                username = username or typer.prompt("Username")
                password = password or typer.prompt("Password", hide_input=True)
                token = client.login(username, password)
            client.status()  # the server answers at that URL
        path = write_config(url.rstrip("/"), token)
    _err.print(f"logged in to {url}; saved in {path}", highlight=False)


def upload(
    paths: Annotated[
        list[Path], typer.Argument(exists=True, help="DICOM files, folders (recursive), .zip files")
    ],
    url: UrlOption = None,
    token: TokenOption = None,
    skip_existing: Annotated[
        bool,
        typer.Option(help="Ask the server which instances it has and send only the others."),
    ] = True,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    batch_size: Annotated[int, typer.Option(min=1, help="Instances per STOW-RS request.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Store files, folders and zips (STOW-RS, in parallel batches); exit 1 if any failed."""
    from radpacs.client.sources import collect

    with _request_errors():
        sources = collect(paths)
        with (
            _client(url, token, concurrency=concurrency, batch_instances=batch_size) as client,
            _progress("uploading", len(sources)) as advance,
        ):
            summary = client.store(
                sources, skip_existing=skip_existing, progress=lambda done: advance(len(done))
            )
    counts = summary.counts()
    if as_json or not _interactive():
        _emit_json({"counts": counts, "items": summary.model_dump(mode="json")["items"]})
    else:
        _out().print(", ".join(f"{name} {count}" for name, count in counts.items()))
        if summary.failed:
            table = _table("file", "SOP Instance UID", "reason", title="failed")
            for item in summary.failed:
                table.add_row(item.source, item.sop_instance_uid, item.reason)
            _out().print(table)
    if not summary.ok:
        raise typer.Exit(code=1)


def query(
    level: Annotated[str, typer.Argument(help="studies, series or instances")] = "studies",
    filters: Annotated[
        list[str] | None, typer.Argument(help="KEY=VALUE matching keys (keyword or tag)")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Search within this study.")] = None,
    series: Annotated[str | None, typer.Option(help="Search within this series.")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", "-i", help="An extra attribute to return.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many matches.")] = None,
    fuzzy: Annotated[bool, typer.Option(help="Fuzzy matching of person names.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search studies, series or instances (QIDO-RS, every page); a table or JSON."""
    if level not in _COLUMNS:
        raise typer.BadParameter(f"{level!r}: choose studies, series or instances")
    pairs = []
    for item in filters or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE")
        pairs.append((name, value))
    with _request_errors(), _client(url, token) as client:
        matches = client.search(
            level,
            pairs,
            study=study,
            series=series,
            include=include or [],
            fuzzy=fuzzy,
            limit=limit,
        )
    if as_json or not _interactive():
        _emit_json([_keyword_view(match) for match in matches])
        return
    columns = _COLUMNS[level] + [name for name in include or [] if name not in _COLUMNS[level]]
    table = _table(*columns, title=f"{len(matches)} {level}")
    for match in matches:
        table.add_row(*(_text(match.values(column) or None) for column in columns))
    _out().print(table)


def _expected_instances(client: RadpacsClient, study: str, series: str | None) -> int | None:
    if series:
        found = client.search("series", {"SeriesInstanceUID": series}, study=study, limit=1)
        keyword = "NumberOfSeriesRelatedInstances"
    else:
        found = client.search("studies", {"StudyInstanceUID": study}, limit=1)
        keyword = "NumberOfStudyRelatedInstances"
    if not found:
        return None
    value = found[0].get(keyword)
    return int(value) if value is not None else None


def retrieve(
    study: Annotated[str, typer.Argument(help="Study Instance UID")],
    series: Annotated[str | None, typer.Option(help="Only this series.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path("."),
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a study or series (WADO-RS) to OUT/<study>/<series>/<sop>.dcm."""
    with _request_errors(), _client(url, token) as client:
        total = _expected_instances(client, study, series)
        with _progress("downloading", total) as advance:
            files = client.retrieve(study, out, series, progress=lambda path: advance(1))
    if as_json or not _interactive():
        _emit_json({"files": [str(path) for path in files]})
    else:
        _out().print(f"{len(files)} instances written under {out}", highlight=False)


def delete(
    study: Annotated[str, typer.Argument(help="Study Instance UID")],
    series: Annotated[str | None, typer.Option(help="Only this series.")] = None,
    instance: Annotated[
        str | None, typer.Option(help="Only this instance (needs --series).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a study, a series or an instance from the archive."""
    if instance and not series:
        raise typer.BadParameter("--instance needs --series")
    what = (
        f"instance {instance}" if instance else f"series {series}" if series else f"study {study}"
    )
    if not yes:
        if not sys.stdin.isatty():
            _err.print("refusing to delete without --yes when not on a terminal")
            raise typer.Exit(code=2)
        typer.confirm(f"Delete {what}?", abort=True)
    with _request_errors(), _client(url, token) as client:
        client.delete(study, series, instance)
    _err.print(f"deleted {what}", highlight=False)


def dvh(
    structures: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="RTSTRUCT file")],
    dose: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="RTDOSE file")],
    plot: Annotated[Path | None, typer.Option(help="Where to save the plot (PNG).")] = Path(
        "dvh.png"
    ),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not fetch a plot.")] = False,
    roi: Annotated[str | None, typer.Option(help="ROI number or name (default: all).")] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Compute here with radpacs.rt, without a server.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dose-volume histograms: a statistics table and a saved plot, by the server or --local."""
    if local:
        from radpacs.cli_dvh import dvh_command

        dvh_command(structures, dose, roi=roi, plot=None if no_plot else plot, json_output=as_json)
        return
    with _request_errors(), _client(url, token) as client:
        result = client.dvh(structures, dose, **({"roi": roi} if roi else {}))
        saved = None
        if not no_plot and plot is not None:
            plot.write_bytes(client.dvh_plot(result))
            saved = str(plot)
    rows = [{"name": curve.name, **curve.statistics()} for curve in result.dvhs]
    if as_json or not _interactive():
        _emit_json({"statistics": rows, "plot": saved})
        return
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    table = _table(*columns, title="DVH statistics")
    for row in rows:
        table.add_row(*(_format_number(row.get(column)) for column in columns))
    _out().print(table)
    if saved:
        _out().print(f"plot saved to {saved}", highlight=False)


def _format_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _text(value)


def status(url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Server health and how many patients, studies, series and instances it holds."""
    with _request_errors(), _client(url, token) as client:
        report = client.status()
    if as_json or not _interactive():
        _emit_json(report.model_dump())
    else:
        table = _table("server", "status", "version", *report.counts)
        table.add_row(report.url, report.status, report.version, *map(str, report.counts.values()))
        _out().print(table)
    if report.status != "ok":
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------- ai


ai_app = typer.Typer(help="AI models and jobs on the server (/api/ai).", no_args_is_help=True)

_JOB_COLUMNS = ["id", "model", "state", "progress", "study", "series", "created_at", "error"]


def _job_table(jobs: list[AiJob], title: str) -> Table:
    table = _table(*_JOB_COLUMNS, title=title)
    for job in jobs:
        row = job.model_dump(mode="json")
        row["progress"] = f"{job.progress:.0%}"
        table.add_row(*(_text(row.get(column)) for column in _JOB_COLUMNS))
    return table


def _show_job(job: AiJob, as_json: bool) -> None:
    if as_json or not _interactive():
        _emit_json(job.model_dump(mode="json"))
        return
    _out().print(_job_table([job], title=f"AI job {job.id}"))
    if job.result_series:
        table = _table("modality", "series", title="result series")
        for entry in job.result_series:
            table.add_row(_text(entry.get("modality")), _text(entry.get("series")))
        _out().print(table)


def _parameters(items: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE pairs; a value that reads as JSON (a number, true, a list) is taken as such."""
    parameters: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE")
        try:
            parameters[name] = json.loads(value)
        except ValueError:
            parameters[name] = value
    return parameters


@ai_app.command("models")
def ai_models(
    url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """The models the server can run, and plugins that failed to load."""
    with _request_errors(), _client(url, token) as client:
        catalog = client.ai_models()
    if as_json or not _interactive():
        _emit_json(catalog.model_dump(mode="json"))
        return
    table = _table("name", "version", "task", "accepts", "description", title="AI models")
    for model in catalog.models:
        accepts = ", ".join(f"{key}={_text(value)}" for key, value in model.accepts.items())
        table.add_row(model.name, model.version, model.task, accepts, model.description)
    _out().print(table)
    for source, reason in catalog.errors.items():
        _err.print(f"[yellow]not loaded:[/yellow] {source}: {reason}", highlight=False)


@ai_app.command("run")
def ai_run(
    model: Annotated[str, typer.Argument(help="Model name (see `radpacs ai models`).")],
    study: Annotated[str, typer.Argument(help="Study Instance UID")],
    series: Annotated[
        str | None, typer.Option(help="Only this series (default: every series it accepts).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE model parameter (JSON values), repeatable."),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(min=1, max=20, help="Attempts before the job fails.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end.")] = False,
    timeout: Annotated[
        float, typer.Option(min=0, help="With --wait: seconds to wait at most.")
    ] = 1800.0,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a job; with --wait, show the final job and exit 1 unless it succeeded."""
    from radpacs.errors import AiJobError

    parameters = _parameters(param)
    failure: AiJobError | None = None
    with _request_errors(), _client(url, token) as client:
        job = client.ai_submit(
            model, study, series, parameters=parameters, max_attempts=max_attempts
        )
        if wait:
            _err.print(f"AI job {job.id} {job.state}; waiting", highlight=False)
            try:
                job = client.ai_wait(job, timeout=timeout)
            except AiJobError as exc:  # failed, cancelled or timed out: show the job, exit 1
                failure, job = exc, exc.job
    _show_job(job, as_json)
    if failure is not None:
        _err.print(f"[red]error:[/red] {failure}", markup=True, highlight=False)
        raise typer.Exit(code=1)


@ai_app.command("jobs")
def ai_jobs(
    state: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Only jobs on this study.")] = None,
    model: Annotated[str | None, typer.Option(help="Only jobs of this model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many jobs.")] = 100,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """AI jobs, newest first; a table or JSON."""
    with _request_errors(), _client(url, token) as client:
        jobs = client.ai_jobs(state=state, study=study, model=model, limit=limit)
    if as_json or not _interactive():
        _emit_json([job.model_dump(mode="json") for job in jobs])
    else:
        _out().print(_job_table(jobs, title=f"{len(jobs)} AI jobs"))


@ai_app.command("show")
def ai_show(
    job_id: Annotated[str, typer.Argument(help="Job id")],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One AI job: state, progress, error, result series."""
    with _request_errors(), _client(url, token) as client:
        job = client.ai_job(job_id)
    _show_job(job, as_json)


@ai_app.command("cancel")
def ai_cancel(
    job_id: Annotated[str, typer.Argument(help="Job id")],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job: a queued one at once, a running one when its worker notices."""
    with _request_errors(), _client(url, token) as client:
        job = client.ai_cancel(job_id)
    _show_job(job, as_json)


def register(app: typer.Typer) -> None:
    """Add the client commands to the radpacs command line."""
    app.command("login")(login)
    app.command("upload")(upload)
    app.command("query")(query)
    app.command("retrieve")(retrieve)
    app.command("download", help="Same as retrieve.")(retrieve)
    app.command("delete")(delete)
    app.command("dvh")(dvh)
    app.command("status")(status)
    app.add_typer(ai_app, name="ai")
