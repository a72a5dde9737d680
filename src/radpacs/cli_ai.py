"""``radpacs worker``: run AI jobs from the queue in this process (plus one process per job).

The main CLI calls :func:`register` to add the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radpacs.settings import AiQueue, load_settings

__all__ = ["register"]


def worker_command(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Folder for the index and the files.")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the index.")] = None,
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


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_command)
