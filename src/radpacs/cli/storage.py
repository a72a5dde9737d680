"""``radpacs storage migrate --to s3|folder``: move the stored files between blob stores.

The index stays where it is; the files are copied from the other store: ``--to s3`` copies
the folder ``data_dir/files`` into the bucket of the ``s3_*`` settings, ``--to folder``
copies back. See
:mod:`radpacs.archive.blob_migration`.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from radpacs.cli.options import DatabaseUrl, DataDir
from radpacs.settings import BlobBackend, load_settings

__all__ = ["migrate", "register"]

storage_app = typer.Typer(help="The blob store: where the DICOM files live.", no_args_is_help=True)


def migrate(
    to: Annotated[BlobBackend, typer.Option("--to", help="The store to copy the files into.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Copy every indexed file into the other blob store, verifying each digest; resumable
    (files already there with the right digest are skipped). The source is left intact:
    set blob_backend to the new store afterwards."""
    from radpacs.archive.backends import open_blob_store
    from radpacs.archive.blob_migration import MigrationReport, migrate_blobs
    from radpacs.archive.database import create_index_engine
    from radpacs.archive.database import migrate as migrate_index
    from radpacs.errors import RadpacsError

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    origin = BlobBackend.FOLDER if to is BlobBackend.S3 else BlobBackend.S3
    last = [0.0]

    def progress(report: MigrationReport) -> None:
        now = time.monotonic()
        if report.done == report.total or now - last[0] >= 2.0:
            last[0] = now
            typer.echo(
                f"{report.done}/{report.total} files: {report.copied} copied "
                f"({report.bytes_copied / 1e6:.1f} MB), {report.skipped} already there, "
                f"{len(report.failures)} failed"
            )

    try:
        source = open_blob_store(settings, origin)
        destination = open_blob_store(settings, to)
        engine = create_index_engine(settings.resolved_database_url)
        try:
            migrate_index(engine)
            report = migrate_blobs(engine, source, destination, progress)
        finally:
            engine.dispose()
    except RadpacsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if report.total == 0:
        typer.echo("the index holds no instances: nothing to copy")
    for sop_uid, reason in list(report.failures.items())[:20]:
        typer.echo(f"  failed {sop_uid}: {reason}", err=True)
    if report.failures:
        typer.echo(
            f"{len(report.failures)} files not copied; fix them and run the command again",
            err=True,
        )
        raise typer.Exit(code=1)
    typer.echo(
        f"all {report.total} files are in the {to.value} store; set blob_backend={to.value} "
        f"(RADPACS_BLOB_BACKEND) and restart; the {origin.value} store was left as it was"
    )


def register(app: typer.Typer) -> None:
    """Add ``storage migrate`` to the radpacs command line."""
    storage_app.command("migrate")(migrate)
    app.add_typer(storage_app, name="storage")
