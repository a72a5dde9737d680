"""``radpacs viewer install|status``: fetch the prebuilt OHIF viewer with npm, or say where it is.

The viewer is installed in the ``viewer_dir`` setting (default ``src/radpacs/web/ohif``,
git-ignored) and served by ``radpacs serve`` at /viewer/. The main CLI calls :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radpacs.errors import RadpacsError
from radpacs.settings import load_settings
from radpacs.web.ohif import OHIF_VERSION, install_viewer, installed_version, viewer_dir

__all__ = ["register"]

viewer_app = typer.Typer(
    help="The OHIF viewer served at /viewer/.", no_args_is_help=True, rich_markup_mode=None
)

Folder = Annotated[
    Path | None, typer.Option("--viewer-dir", help="Where to put OHIF (setting viewer_dir).")
]


@viewer_app.command("install")
def install_command(
    version: Annotated[str, typer.Option(help="The @ohif/app version.")] = OHIF_VERSION,
    folder: Folder = None,
    force: Annotated[bool, typer.Option(help="Reinstall even if this version is there.")] = False,
) -> None:
    """Fetch @ohif/app with `npm pack` and install its dist/ folder (needs Node.js and npm)."""
    target = folder or viewer_dir(load_settings())
    if not force and installed_version(target) == version:
        typer.echo(f"OHIF {version} is already installed in {target}")
        return
    typer.echo(f"fetching @ohif/app@{version} with npm ...")
    try:
        install_viewer(target, version)
    except RadpacsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"OHIF {version} installed in {target}; radpacs serve shows it at /viewer/")


@viewer_app.command("status")
def status_command(folder: Folder = None) -> None:
    """Print the installed OHIF version and folder; exit 1 when it is not installed."""
    target = folder or viewer_dir(load_settings())
    version = installed_version(target)
    if version is None:
        typer.echo(f"OHIF is not installed in {target}: run radpacs viewer install")
        raise typer.Exit(code=1)
    typer.echo(f"OHIF {version} in {target}")


def register(app: typer.Typer) -> None:
    """Add the ``viewer`` command group to the radpacs command line."""
    app.add_typer(viewer_app, name="viewer")
