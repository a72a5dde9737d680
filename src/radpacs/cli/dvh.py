"""The ``radpacs dvh`` command: DVH statistics of an RTSTRUCT and an RTDOSE file.

The main CLI adds it with :func:`register`: ``radpacs dvh STRUCT DOSE`` asks the server
(``POST /api/dvh``) and saves its plot; ``--local`` computes here with :mod:`radpacs.rt`
(:func:`dvh_command`). :func:`register_local` adds a command that only computes here::

    app = typer.Typer()
    register_local(app)  # dvh STRUCT DOSE [--roi R] [--plot out.png] [--prescription G] [--json]

The local computation prints one table row per ROI (volume, min, mean, max and the
default D metrics, plus V95%/V100% with ``--prescription``), or the JSON of
``POST /api/dvh`` with ``--json``, and writes a PNG or SVG plot (by the file's suffix)
with ``--plot``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from radpacs.cli import _console as console
from radpacs.cli.options import JsonOption, TokenOption, UrlOption
from radpacs.errors import InvalidInput
from radpacs.rt import PlotFormat, dvhs_from_datasets, plot_dvhs, read_dataset

__all__ = ["dvh", "dvh_command", "register", "register_local"]


def dvh_command(
    struct: Path,
    dose: Path | Sequence[Path],
    roi: str | None = None,
    plot: Path | None = None,
    prescription: float | None = None,
    json_output: bool = False,
    weights: Sequence[float] | None = None,
) -> None:
    """Compute and print the DVHs of ``struct`` (RTSTRUCT) in ``dose`` (RTDOSE; several
    are summed as a plan sum, with ``weights``)."""
    paths = [dose] if isinstance(dose, Path) else list(dose)
    doses = [read_dataset(path, str(path)) for path in paths]
    dvhs = dvhs_from_datasets(read_dataset(struct, str(struct)), doses, roi, weights=weights)
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


def register_local(app: typer.Typer) -> None:
    """Add a ``dvh`` command that only computes here (no server options) to ``app``."""

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


def dvh(
    structures: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="RTSTRUCT file")],
    dose: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help="RTDOSE file(s); several: a plan sum"),
    ],
    plot: Annotated[Path | None, typer.Option(help="Where to save the plot (PNG).")] = Path(
        "dvh.png"
    ),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not fetch a plot.")] = False,
    roi: Annotated[str | None, typer.Option(help="ROI number or name (default: all).")] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Compute here with radpacs.rt, without a server.")
    ] = False,
    weights: Annotated[
        str | None, typer.Option(help="Plan sum factors, one per RTDOSE, e.g. 1,0.5.")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dose-volume histograms: a statistics table and a saved plot, by the server or --local."""
    factors = _weights(weights) if weights else None
    if local:
        try:
            dvh_command(
                structures,
                dose,
                roi=roi,
                plot=None if no_plot else plot,
                json_output=as_json,
                weights=factors,
            )
        except InvalidInput as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from exc
        return
    if len(dose) > 1 or factors:
        typer.echo(
            "error: plan sums of files are computed with --local (stored RTDOSEs: "
            "POST /api/rt/dvh with a list of rtdose UIDs)",
            err=True,
        )
        raise typer.Exit(code=2)
    with console.request_errors(), console.client(url, token) as client:
        result = client.dvh(structures, dose[0], **({"roi": roi} if roi else {}))
        saved = None
        if not no_plot and plot is not None:
            plot.write_bytes(client.dvh_plot(result))
            saved = str(plot)
    rows = [{"name": curve.name, **curve.statistics()} for curve in result.dvhs]
    if as_json or not console.interactive():
        console.emit_json({"statistics": rows, "plot": saved})
        return
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    table = console.table(*columns, title="DVH statistics")
    for row in rows:
        table.add_row(*(console.format_number(row.get(column)) for column in columns))
    console.print_table(table)
    if saved:
        console.out().print(f"plot saved to {saved}", highlight=False)


def _weights(text: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError as exc:
        typer.echo(f"error: --weights must be comma-separated numbers, not {text!r}", err=True)
        raise typer.Exit(code=2) from exc


def register(app: typer.Typer) -> None:
    """Add ``dvh`` (by the server, or ``--local``) to the radpacs command line."""
    app.command("dvh")(dvh)
