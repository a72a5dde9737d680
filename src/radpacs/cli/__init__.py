"""The ``radpacs`` command: one module per command group.

- :mod:`.serve`: ``serve``, ``check`` (the server and its storage)
- :mod:`.storage`: ``storage migrate`` (files between the folder and S3)
- :mod:`.ai`: ``worker`` (runs AI jobs) and ``ai`` (models and jobs on a server)
- :mod:`.users`: ``user add|list|remove``, ``load-demo``
- :mod:`.client`: ``login``, ``upload``, ``query``, ``retrieve``/``download``, ``delete``,
  ``status`` (talk to a server)
- :mod:`.dvh`: ``dvh`` (by a server or ``--local``)
- :mod:`.deid`: ``anonymize``
- :mod:`.followup`: ``followup list|show|export|sr`` (a server's follow-up)
- :mod:`.viewer`: ``viewer install|status``
- :mod:`.demo`: ``demo`` (a sample DICOM file for the README's first steps)
- :mod:`.dimse`: ``dimse`` (the DICOM node alone) and ``dimse echo|query|send|retrieve|job``
- :mod:`.apps`: ``apps register|list|enable|disable|remove|run|analyses|show|cancel``

Options shared by several commands are declared once in :mod:`.options`. Every group adds
itself with ``register(app)``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from radpacs import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="radpacs",
    help="radpacs: a DICOMweb archive for radiology, radiotherapy and AI research.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: rich panels print flags as "--help <bool>"
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"radpacs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """radpacs command line."""


def _register_groups() -> None:
    from radpacs.cli import (
        ai,
        apps,
        client,
        deid,
        demo,
        dimse,
        dvh,
        followup,
        qc,
        serve,
        storage,
        users,
        viewer,
    )

    serve.register(app)
    ai.register_worker(app)
    users.register(app)
    client.register(app)
    dvh.register(app)
    ai.register(app)
    deid.register(app)
    followup.register(app)
    viewer.register(app)
    demo.register(app)
    dimse.register(app)
    storage.register(app)
    qc.register(app)
    apps.register(app)


_register_groups()


def main() -> None:
    """Entry point of the ``radpacs`` console script; a setting that cannot work (an S3
    bucket that cannot be reached, say) is one line on stderr and exit status 2, not a
    traceback."""
    from radpacs.errors import ConfigurationError

    try:
        app()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
