"""DVH plots as PNG or SVG bytes, drawn with matplotlib's Agg canvas.

Figures are built with :class:`matplotlib.figure.Figure`, never pyplot, so no global
state is touched and plots can be drawn from several threads at once.

Example::

    png = plot_dvhs([dvh.curve() for dvh in dvhs], volume=VolumeScale.RELATIVE)
    svg = plot_dvhs(curves, fmt=PlotFormat.SVG)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from matplotlib.figure import Figure

from radpacs.errors import InvalidInput
from radpacs.rt.dvh import DVHCurve

__all__ = ["PlotFormat", "VolumeScale", "curves_from_json", "plot_dvhs"]


class PlotFormat(StrEnum):
    """Image formats a plot can be rendered to."""

    PNG = "png"
    SVG = "svg"

    @property
    def media_type(self) -> str:
        """The IANA media type of the format."""
        return "image/png" if self is PlotFormat.PNG else "image/svg+xml"


class VolumeScale(StrEnum):
    """Relative: % of each ROI's volume (its curve's largest value); absolute: as given."""

    RELATIVE = "relative"
    ABSOLUTE = "absolute"


def curves_from_json(items: Any) -> list[DVHCurve]:
    """DVH curves from a JSON list (the ``dvhs`` of a plot request); InvalidInput says
    which item is wrong and why."""
    if not isinstance(items, list) or not items:
        raise InvalidInput("'dvhs' must be a non-empty list of DVH objects")
    curves = []
    for position, item in enumerate(items):
        try:
            curves.append(DVHCurve.from_mapping(item))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"dvhs[{position}]: {exc}") from exc
    return curves


def plot_dvhs(
    curves: Sequence[DVHCurve],
    volume: VolumeScale | str = VolumeScale.RELATIVE,
    fmt: PlotFormat | str = PlotFormat.PNG,
    title: str | None = None,
) -> bytes:
    """Draw ``curves`` on one set of labelled axes with a legend; PNG or SVG bytes.

    All curves must share dose units, and, for an absolute volume axis, volume units;
    InvalidInput otherwise.
    """
    try:
        volume = VolumeScale(volume)
        fmt = PlotFormat(fmt)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if not curves:
        raise InvalidInput("no DVH to plot")
    dose_units = {curve.dose_units for curve in curves}
    if len(dose_units) > 1:
        raise InvalidInput(f"the DVHs mix dose units ({', '.join(sorted(dose_units))})")
    volume_units = {curve.volume_units for curve in curves}
    if volume is VolumeScale.ABSOLUTE and len(volume_units) > 1:
        raise InvalidInput(
            f"the DVHs mix volume units ({', '.join(sorted(volume_units))}); "
            "plot them with a relative volume axis"
        )
    kinds = {str(curve.kind) for curve in curves}

    figure = Figure(figsize=(8, 5), dpi=100)
    axes = figure.add_subplot()
    for curve in curves:
        volumes = curve.volumes
        if volume is VolumeScale.RELATIVE and curve.volume_units != "%":
            top = float(volumes.max()) if volumes.size else 0.0
            volumes = 100.0 * volumes / top if top > 0 else volumes * 0.0
        axes.plot(curve.doses, volumes, label=curve.name, linewidth=1.5)
    unit = "%" if volume is VolumeScale.RELATIVE else next(iter(volume_units))
    axes.set_xlabel(f"Dose [{next(iter(dose_units))}]")
    kind = "Volume" if kinds == {"cumulative"} else "Volume per bin"
    axes.set_ylabel(f"{kind} [{unit}]")
    axes.set_title(title or ("Cumulative DVH" if kinds == {"cumulative"} else "DVH"))
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt.value, bbox_inches="tight")
    return buffer.getvalue()
