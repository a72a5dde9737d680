"""``radpacs demo``: write a sample DICOM file to try the server with (README, first steps).

The file is pydicom's ``CT_small.dcm``, one CT slice that every install has::

    radpacs demo            # writes ./CT_small.dcm and prints its patient and UIDs
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["demo", "register"]


def demo(
    folder: Annotated[
        Path, typer.Argument(file_okay=False, help="Where to write CT_small.dcm.")
    ] = Path("."),
) -> None:
    """Write CT_small.dcm (a CT slice shipped with pydicom) to try STOW, QIDO and WADO with."""
    import pydicom

    from radpacs.archive.demo import SAMPLE_CT_NAME, sample_ct
    from radpacs.errors import ConfigurationError

    try:
        source = sample_ct()
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SAMPLE_CT_NAME
    shutil.copyfile(source, target)
    dataset = pydicom.dcmread(target, stop_before_pixels=True)
    typer.echo(f"wrote {target}")
    typer.echo(f"  PatientName        {dataset.PatientName}")
    typer.echo(f"  StudyInstanceUID   {dataset.StudyInstanceUID}")
    typer.echo(f"  SeriesInstanceUID  {dataset.SeriesInstanceUID}")
    typer.echo(f"  SOPInstanceUID     {dataset.SOPInstanceUID}")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the radpacs command line."""
    app.command("demo")(demo)
