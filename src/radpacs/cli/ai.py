"""``radpacs worker`` runs AI jobs from the queue in this process (plus one process per
job); ``radpacs ai models|run|jobs|show|cancel`` talks to a server's /api/ai.

``ai run --wait`` exits 1 when the job failed, was cancelled or is still pending at
``--timeout``. The main CLI calls :func:`register_worker` and :func:`register`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from radpacs.cli import _console as console
from radpacs.cli.options import DatabaseUrl, DataDir, JsonOption, TokenOption, UrlOption
from radpacs.settings import AiQueue, load_settings

if TYPE_CHECKING:
    from radpacs.client import AiJob

__all__ = ["ai_app", "register", "register_worker"]


def worker_command(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    queue: Annotated[AiQueue | None, typer.Option(help="sqlite (default) or redis.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL for the redis queue.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Jobs run at the same time.")] = None,
) -> None:
    """Take jobs of every kind (AI, de-identification) from the queue and run them until
    stopped (Ctrl-C)."""
    from radpacs.archive import Archive
    from radpacs.jobs.worker import run_worker

    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        ai_queue=queue,
        ai_redis_url=redis_url,
        ai_worker_processes=jobs,
    )
    Archive.from_settings(settings).close()  # create and migrate before taking jobs
    typer.echo(f"radpacs job worker: {settings.ai_queue} queue, data in {settings.data_dir}")
    run_worker(settings)


ai_app = typer.Typer(
    help="AI models and jobs on the server (/api/ai).", no_args_is_help=True, rich_markup_mode=None
)

_JOB_COLUMNS = ["id", "model", "state", "progress", "study", "series", "created_at", "error"]


def _job_table(jobs: list[AiJob], title: str) -> Table:
    table = console.table(*_JOB_COLUMNS, title=title)
    for job in jobs:
        row = job.model_dump(mode="json")
        row["progress"] = f"{job.progress:.0%}"
        table.add_row(*(console.text(row.get(column)) for column in _JOB_COLUMNS))
    return table


def _show_job(job: AiJob, as_json: bool) -> None:
    if as_json or not console.interactive():
        console.emit_json(job.model_dump(mode="json"))
        return
    console.out().print(_job_table([job], title=f"AI job {job.id}"))
    if job.result_series:
        table = console.table("modality", "series", title="result series")
        for entry in job.result_series:
            table.add_row(console.text(entry.get("modality")), console.text(entry.get("series")))
        console.print_table(table)


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
    with console.request_errors(), console.client(url, token) as client:
        catalog = client.ai_models()
    if as_json or not console.interactive():
        console.emit_json(catalog.model_dump(mode="json"))
        return
    table = console.table("name", "version", "task", "accepts", "description", title="AI models")
    for model in catalog.models:
        accepts = ", ".join(f"{key}={console.text(value)}" for key, value in model.accepts.items())
        table.add_row(model.name, model.version, model.task, accepts, model.description)
    console.print_table(table)
    for source, reason in catalog.errors.items():
        console.err.print(f"[yellow]not loaded:[/yellow] {source}: {reason}", highlight=False)


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
    with console.request_errors(), console.client(url, token) as client:
        job = client.ai_submit(
            model, study, series, parameters=parameters, max_attempts=max_attempts
        )
        if wait:
            console.err.print(f"AI job {job.id} {job.state}; waiting", highlight=False)
            try:
                job = client.ai_wait(job, timeout=timeout)
            except AiJobError as exc:  # failed, cancelled or timed out: show the job, exit 1
                failure, job = exc, exc.job
    _show_job(job, as_json)
    if failure is not None:
        console.err.print(f"[red]error:[/red] {failure}", markup=True, highlight=False)
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
    with console.request_errors(), console.client(url, token) as client:
        jobs = client.ai_jobs(state=state, study=study, model=model, limit=limit)
    if as_json or not console.interactive():
        console.emit_json([job.model_dump(mode="json") for job in jobs])
    else:
        console.out().print(_job_table(jobs, title=f"{len(jobs)} AI jobs"))


@ai_app.command("show")
def ai_show(
    job_id: Annotated[str, typer.Argument(help="Job id")],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One AI job: state, progress, error, result series."""
    with console.request_errors(), console.client(url, token) as client:
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
    with console.request_errors(), console.client(url, token) as client:
        job = client.ai_cancel(job_id)
    _show_job(job, as_json)


def register_worker(app: typer.Typer) -> None:
    """Add ``worker`` to the radpacs command line."""
    app.command("worker")(worker_command)


def register(app: typer.Typer) -> None:
    """Add the ``ai`` command group to the radpacs command line."""
    app.add_typer(ai_app, name="ai")
