"""Radiotherapy analysis on pydicom datasets: ROIs, dose grids, DVHs and their plots.

Pure numpy; no HTTP, no storage. The HTTP routes live in :mod:`radpacs.api.rt`.

Example::

    from radpacs.rt import dvhs_from_datasets, plot_dvhs
    dvhs = dvhs_from_datasets(pydicom.dcmread("rtstruct.dcm"), pydicom.dcmread("rtdose.dcm"))
    dvhs[0].statistic("D95").value
    png = plot_dvhs([dvh.curve() for dvh in dvhs])
"""

from radpacs.rt._read import read_dataset
from radpacs.rt.dose import DoseGrid
from radpacs.rt.dvh import (
    DEFAULT_METRICS,
    DVH,
    CurveKind,
    DVHCurve,
    DVHOptions,
    Metric,
    compute_dvh,
    compute_dvhs,
    dvhs_from_datasets,
)
from radpacs.rt.plansum import sum_grids
from radpacs.rt.plot import PlotFormat, VolumeScale, curves_from_json, plot_dvhs
from radpacs.rt.rtstruct import ROI, StructureSet

__all__ = [
    "DEFAULT_METRICS",
    "DVH",
    "ROI",
    "CurveKind",
    "DVHCurve",
    "DVHOptions",
    "DoseGrid",
    "Metric",
    "PlotFormat",
    "StructureSet",
    "VolumeScale",
    "compute_dvh",
    "compute_dvhs",
    "curves_from_json",
    "dvhs_from_datasets",
    "plot_dvhs",
    "read_dataset",
    "sum_grids",
]
