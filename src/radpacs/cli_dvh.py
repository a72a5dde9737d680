"""The ``radpacs dvh`` command: DVH statistics of an RTSTRUCT and an RTDOSE file.

The main CLI adds it with :func:`register`::

    app = typer.Typer()
    register(app)        # radpacs dvh STRUCT DOSE [--roi R] [--plot out.png] [--json]

It prints one table row per ROI (volume, min, mean, max and the default D metrics, plus
V95%/V100% with ``--prescription``), or the JSON of ``POST /api/dvh`` with ``--json``,
and writes a PNG or SVG plot (by the file's suffix) with ``--plot``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from radpacs.errors import InvalidInput
from radpacs.rt import PlotFormat, dvhs_from_datasets, plot_dvhs, read_dataset

__all__ = ["dvh_command", "register"]


def dvh_command(
    struct: Path,
    dose: Path,
    roi: str | None = None,
    plot: Path | None = None,
    prescription: float | None = None,
    json_output: bool = False,
) -> None:
    """Compute and print the DVHs of ``struct`` (RTSTRUCT) in ``dose`` (RTDOSE)."""
    dvhs = dvhs_from_datasets(read_dataset(struct, str(struct)), read_dataset(dose, str(dose)), roi)
    if json_output:
        typer.echo(json.dumps([dvh.to_dict(prescription=prescription) for dvh in dvhs]))
    else:
        rows = [dvh.statistics(prescription=prescription) for dvh in dvhs]
        names = list(rows[0])
        header = ["ROI", *[f"{name} [{rows[0][name].unit}]" for name in names]]
        table = [header]
        for dvh, stats in zip(dvhs, rows, strict=True):
            cells = [dvh.name]
            for name in names:
                value = stats[name].value
                cells.append("-" if value is None else f"{value:.4g}")
            table.append(cells)
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            padded = (cell.rjust(width) for cell, width in zip(row, widths, strict=True))
            typer.echo("  ".join(padded))
        for dvh in dvhs:
            for warning in dvh.warnings:
                typer.echo(f"warning: {warning}", err=True)
    if plot is not None:
        fmt = PlotFormat.SVG if plot.suffix.lower() == ".svg" else PlotFormat.PNG
        plot.write_bytes(plot_dvhs([dvh.curve(prescription=prescription) for dvh in dvhs], fmt=fmt))
        typer.echo(f"plot written to {plot}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``dvh`` command to ``app``."""

    @app.command("dvh")
    def dvh(
        struct: Annotated[Path, typer.Argument(help="RTSTRUCT file", exists=True)],
        dose: Annotated[Path, typer.Argument(help="RTDOSE file", exists=True)],
        roi: Annotated[str | None, typer.Option(help="ROI number or name (default: all)")] = None,
        plot: Annotated[Path | None, typer.Option(help="write a plot (.png or .svg)")] = None,
        prescription: Annotated[
            float | None, typer.Option(help="prescription dose in Gy", min=0.0)
        ] = None,
        json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    ) -> None:
        """Dose-volume histograms and statistics of an RTSTRUCT in an RTDOSE."""
        try:
            dvh_command(struct, dose, roi, plot, prescription, json_output)
        except InvalidInput as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from exc
