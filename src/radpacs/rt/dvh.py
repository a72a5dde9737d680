"""Dose-volume histograms of RTSTRUCT ROIs in an RTDOSE grid, and their statistics.

:func:`compute_dvhs` samples each ROI finer than the dose grid into its cumulative DVH on
a fine dose axis (see :mod:`radpacs.rt._sampling` for the end-cap convention, the sampling
and the histogram), and returns one :class:`DVH` per ROI. Statistics are read off that
curve by linear interpolation, never off the nearest bin:

- ``D95``/``D95%``: the minimum dose received by the hottest 95 % of the volume;
  ``D2cc``, ``D0.03cc``: by the hottest 2 cm3 or 0.03 cm3;
- ``V20Gy``: the volume (cm3) receiving at least 20 Gy; ``V95%``: at least 95 % of the
  prescription dose;
- ``min``, ``max``, ``mean``, ``volume``.

The ROI and the dose must share a Frame of Reference (PS3.3 C.7.4.1); the grid must cover
the ROI, up to ``max_outside_fraction`` of its volume.

Example::

    dvh = dvhs_from_datasets(rtstruct, rtdose, roi="Sphere_02_0")[0]
    dvh.statistic("D95").value        # Gy
    dvh.curve(relative_volume=True)    # doses (Gy) and volumes (%) every 0.01 Gy
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import BytesLengthException

from radpacs.errors import InvalidInput
from radpacs.rt._sampling import PLANE_TOLERANCE_MM, sample_roi
from radpacs.rt.dose import DoseGrid
from radpacs.rt.plansum import align_grid, sum_grids
from radpacs.rt.rtstruct import ROI, StructureSet

_T = TypeVar("_T")

__all__ = [
    "DEFAULT_METRICS",
    "DVH",
    "CurveKind",
    "DVHCurve",
    "DVHOptions",
    "Metric",
    "compute_dvh",
    "compute_dvhs",
    "dvhs_from_datasets",
]

FloatArray = npt.NDArray[np.float64]

#: Statistics reported when none are asked for; V95%/V100% are added with a prescription.
DEFAULT_METRICS: tuple[str, ...] = (
    "D99",
    "D98",
    "D95",
    "D50",
    "D5",
    "D2",
    "D1",
    "D2cc",
    "D0.03cc",
)

_DOSE_METRIC = re.compile(r"^D(\d+(?:\.\d+)?)(%|cc|cm3)?$")
_VOLUME_METRIC = re.compile(r"^V(\d+(?:\.\d+)?)(Gy|cGy|%)?$")


class CurveKind(StrEnum):
    """Cumulative: volume receiving at least each dose; differential: volume per bin."""

    CUMULATIVE = "cumulative"
    DIFFERENTIAL = "differential"


@dataclass(frozen=True)
class DVHOptions:
    """How finely to sample and how much of an ROI may lie outside the dose grid.

    ``samples_per_voxel`` (in-plane samples per dose voxel along each axis) is chosen per
    ROI when None; ``max_outside_fraction`` is the share of the ROI volume that may lie
    beyond the grid before InvalidInput.
    """

    samples_per_voxel: int | None = None
    max_outside_fraction: float = 0.001

    def __post_init__(self) -> None:
        if self.samples_per_voxel is not None and not 1 <= self.samples_per_voxel <= 64:
            raise ValueError(
                f"samples_per_voxel must be between 1 and 64, not {self.samples_per_voxel}"
            )
        if not 0.0 <= self.max_outside_fraction <= 1.0:
            raise ValueError(
                f"max_outside_fraction must be in [0, 1], not {self.max_outside_fraction}"
            )


@dataclass(frozen=True)
class Metric:
    """One statistic: ``value`` in ``unit`` (None when undefined, e.g. D2cc of a 1 cm3 ROI),
    and ``relative``: % of the ROI volume for V metrics, % of the prescription for doses."""

    name: str
    value: float | None
    unit: str
    relative: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "unit", "relative"}`` for JSON."""
        return {"value": self.value, "unit": self.unit, "relative": self.relative}


@dataclass(frozen=True, eq=False)
class DVHCurve:
    """A DVH as points: the shape the workshop API returned and ``/api/dvh/plot`` takes.

    ``doses`` ascend; ``volumes`` has the same length. Units are free text (``Gy``,
    ``%``, ``cm3``) so that curves from other systems can be plotted.
    """

    name: str
    doses: FloatArray
    volumes: FloatArray
    dose_units: str = "Gy"
    volume_units: str = "cm3"
    kind: CurveKind | str = CurveKind.CUMULATIVE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, not {type(self.name).__name__}")
        object.__setattr__(self, "kind", CurveKind(self.kind))
        doses = np.asarray(self.doses, dtype=np.float64)
        volumes = np.asarray(self.volumes, dtype=np.float64)
        if doses.ndim != 1 or volumes.ndim != 1:
            raise ValueError(f"DVH {self.name!r}: doses and volumes must be flat lists")
        if doses.size != volumes.size:
            raise ValueError(f"DVH {self.name!r}: {doses.size} doses but {volumes.size} volumes")
        if doses.size == 0:
            raise ValueError(f"DVH {self.name!r} has no points")
        if not (np.all(np.isfinite(doses)) and np.all(np.isfinite(volumes))):
            raise ValueError(f"DVH {self.name!r} has non-finite values")
        if not self.dose_units or not self.volume_units:
            raise ValueError(f"DVH {self.name!r}: dose_units and volume_units are required")
        object.__setattr__(self, "doses", doses)
        object.__setattr__(self, "volumes", volumes)

    @classmethod
    def from_mapping(cls, data: Any) -> DVHCurve:
        """Build from a JSON object with name, doses, volumes, dose_units, volume_units
        (and optionally type); TypeError or ValueError say what is wrong."""
        if not isinstance(data, dict):
            raise TypeError(f"a DVH must be a JSON object, not {type(data).__name__}")
        missing = [
            key
            for key in ("name", "doses", "volumes", "dose_units", "volume_units")
            if key not in data
        ]
        if missing:
            raise ValueError(f"a DVH lacks {', '.join(missing)}")
        try:
            doses = np.asarray(data["doses"], dtype=np.float64)
            volumes = np.asarray(data["volumes"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"DVH {data['name']!r}: doses and volumes must be numbers") from exc
        return cls(
            name=str(data["name"]),
            doses=doses,
            volumes=volumes,
            dose_units=str(data["dose_units"]),
            volume_units=str(data["volume_units"]),
            kind=str(data.get("type", CurveKind.CUMULATIVE)),
        )


@dataclass(frozen=True, eq=False)
class DVH:
    """The cumulative DVH of one ROI, on a fine dose axis, and its exact summary values.

    ``dose_axis`` ascends from at most ``dose_min`` to at least ``dose_max``;
    ``cumulative[i]`` is the volume (cm3) receiving at least ``dose_axis[i]``.
    """

    roi_number: int
    name: str
    interpreted_type: str
    volume: float
    dose_min: float
    dose_max: float
    dose_mean: float
    dose_axis: FloatArray
    cumulative: FloatArray
    dose_units: str = "Gy"
    outside_volume: float = 0.0
    samples_per_voxel: int = 0
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.dose_axis.shape != self.cumulative.shape or self.dose_axis.ndim != 1:
            raise ValueError("dose_axis and cumulative must be 1-D arrays of one length")
        if self.volume < 0:
            raise ValueError(f"volume must be >= 0, not {self.volume}")

    # -- statistics -------------------------------------------------------------------

    def dose_at_volume(self, volume: float, unit: str = "%") -> float | None:
        """Dx: the highest dose received by at least ``volume`` (``%`` of the ROI, or
        ``cc``), interpolated linearly between the points of the fine curve.

        None when the asked volume exceeds the ROI's.
        """
        if unit not in ("%", "cc", "cm3"):
            raise ValueError(f"volume unit must be %, cc or cm3, not {unit!r}")
        target = volume / 100.0 * self.volume if unit == "%" else volume
        if target < 0 or target > self.volume * (1 + 1e-9) or self.volume == 0:
            return None
        if target <= 0:
            return self.dose_max
        # The highest dose still received by ``target``: the last point at or above it,
        # then linear interpolation towards the next one (the top of any plateau).
        cumulative, axis = self.cumulative, self.dose_axis
        slack = 1e-9 * self.volume
        index = int(np.searchsorted(-cumulative, -(target - slack), side="right")) - 1
        index = min(max(index, 0), axis.size - 2)
        upper, lower = cumulative[index], cumulative[index + 1]
        fraction = 0.0 if upper - lower <= slack else float((upper - target) / (upper - lower))
        fraction = min(max(fraction, 0.0), 1.0)
        dose = float(axis[index] + fraction * (axis[index + 1] - axis[index]))
        return float(np.clip(dose, self.dose_min, self.dose_max))

    def volume_at_dose(self, dose: float) -> float:
        """Vx: the volume (cm3) receiving at least ``dose`` (in the DVH's dose units)."""
        if dose <= self.dose_axis[0]:
            return self.volume
        return float(np.interp(dose, self.dose_axis, self.cumulative, right=0.0))

    def statistic(self, name: str, prescription: float | None = None) -> Metric:
        """One named statistic: ``volume``, ``min``, ``max``, ``mean``, ``D<x>[%|cc]``,
        ``V<x>[Gy|cGy|%]`` (``%`` needs ``prescription``, in the DVH's dose units)."""

        def relative_dose(dose: float | None) -> float | None:
            if dose is None or not prescription:
                return None
            return 100.0 * dose / prescription

        if name == "volume":
            return Metric(name, self.volume, "cm3", 100.0)
        if name in ("min", "max", "mean"):
            extreme = {"min": self.dose_min, "max": self.dose_max, "mean": self.dose_mean}[name]
            return Metric(name, extreme, self.dose_units, relative_dose(extreme))
        match = _DOSE_METRIC.match(name)
        if match:
            amount, unit = float(match.group(1)), match.group(2) or "%"
            if unit == "%" and amount > 100:
                raise InvalidInput(f"{name}: a volume above 100 % is meaningless")
            value = self.dose_at_volume(amount, "%" if unit == "%" else "cc")
            return Metric(name, value, self.dose_units, relative_dose(value))
        match = _VOLUME_METRIC.match(name)
        if match:
            amount, unit = float(match.group(1)), match.group(2) or self.dose_units
            if unit == "%":
                if not prescription:
                    raise InvalidInput(f"{name} needs a prescription dose")
                dose = amount / 100.0 * prescription
            elif unit == "cGy":
                dose = amount / 100.0
            else:
                dose = amount
            volume = self.volume_at_dose(dose)
            relative = 100.0 * volume / self.volume if self.volume else None
            return Metric(name, volume, "cm3", relative)
        raise InvalidInput(
            f"unknown DVH statistic {name!r}: use volume, min, max, mean, D<x>[%|cc] or V<x>[Gy|%]"
        )

    def statistics(
        self, names: Iterable[str] | None = None, prescription: float | None = None
    ) -> dict[str, Metric]:
        """Volume, min, max, mean and ``names`` (default :data:`DEFAULT_METRICS`, plus
        V95% and V100% when a prescription is given)."""
        wanted = list(names) if names is not None else list(DEFAULT_METRICS)
        if names is None and prescription:
            wanted += ["V95%", "V100%"]
        result = {}
        for name in ["volume", "min", "max", "mean", *wanted]:
            result[name] = self.statistic(name, prescription)
        return result

    # -- curves -----------------------------------------------------------------------

    def curve(
        self,
        bin_width: float = 0.01,
        kind: CurveKind | str = CurveKind.CUMULATIVE,
        relative_volume: bool = False,
        prescription: float | None = None,
    ) -> DVHCurve:
        """The DVH every ``bin_width`` (dose units) from 0 to past ``dose_max``.

        Cumulative: volume receiving at least each dose. Differential: the volume in
        ``[dose, dose + bin_width)`` for each listed dose. Volumes in cm3, or % of the ROI
        with ``relative_volume``; doses in % of ``prescription`` when it is given.
        """
        kind = CurveKind(kind)
        if not (bin_width > 0 and math.isfinite(bin_width)):
            raise InvalidInput(f"bin_width must be a positive finite number, not {bin_width}")
        top = self.dose_max if np.isfinite(self.dose_max) else 0.0
        count = int(np.floor(top / bin_width)) + 2
        if count > 200_000:
            raise InvalidInput(
                f"bin_width {bin_width} gives {count} bins up to {top:.4g}; use a wider bin"
            )
        doses = np.arange(count, dtype=np.float64) * bin_width
        cumulative = np.where(
            doses <= self.dose_axis[0],
            self.volume,
            np.interp(doses, self.dose_axis, self.cumulative, right=0.0),
        )
        if kind is CurveKind.DIFFERENTIAL:
            volumes = cumulative - np.append(cumulative[1:], 0.0)
        else:
            volumes = cumulative
        volume_units = "cm3"
        if relative_volume:
            volumes = 100.0 * volumes / self.volume if self.volume else volumes * 0.0
            volume_units = "%"
        dose_units = self.dose_units
        if prescription:
            doses = 100.0 * doses / prescription
            dose_units = "%"
        return DVHCurve(
            name=self.name,
            doses=doses,
            volumes=volumes,
            dose_units=dose_units,
            volume_units=volume_units,
            kind=kind,
        )

    def to_dict(
        self,
        bin_width: float = 0.01,
        kind: CurveKind | str = CurveKind.CUMULATIVE,
        relative_volume: bool = False,
        prescription: float | None = None,
        metrics: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The workshop's JSON fields (name, type, volume, dose_units, doses,
        volume_units, volumes) plus roi_number, statistics and warnings."""
        curve = self.curve(bin_width, kind, relative_volume, prescription)
        return {
            "name": self.name,
            "roi_number": self.roi_number,
            "roi_type": self.interpreted_type,
            "type": str(curve.kind),
            "volume": self.volume,
            "dose_units": curve.dose_units,
            "doses": curve.doses.tolist(),
            "volume_units": curve.volume_units,
            "volumes": curve.volumes.tolist(),
            "prescription": prescription,
            "statistics": {
                key: metric.to_dict()
                for key, metric in self.statistics(metrics, prescription).items()
            },
            "outside_volume": self.outside_volume / 1000.0,
            "warnings": list(self.warnings),
        }


def compute_dvh(
    structures: StructureSet,
    grid: DoseGrid,
    roi: ROI,
    options: DVHOptions | None = None,
    aligned: dict[tuple[float, ...], DoseGrid] | None = None,
) -> DVH:
    """The DVH of one ROI; InvalidInput when the frames of reference differ, the ROI has
    no contours, or too much of it lies outside the grid. ``aligned`` keeps the grids
    resampled for oblique contours, by normal, for the next ROIs."""
    options = options or DVHOptions()
    roi_frame = roi.frame_of_reference_uid or structures.frame_of_reference_uid
    if roi_frame and grid.frame_of_reference_uid and roi_frame != grid.frame_of_reference_uid:
        raise InvalidInput(
            f"ROI {roi.label} is in Frame of Reference {roi_frame} but the dose is in "
            f"{grid.frame_of_reference_uid}: they cannot be combined"
        )
    warnings: list[str] = []
    normal = _contour_normal(roi, grid)
    if normal is not None:
        grid = _aligned(roi, grid, normal, options, warnings, aligned)
    samples = sample_roi(roi, grid, options.samples_per_voxel)
    total = samples.volume + samples.outside_volume
    warnings = list(samples.warnings) + warnings
    if total <= 0:
        raise InvalidInput(f"ROI {roi.label} encloses no volume")
    outside_fraction = samples.outside_volume / total
    if outside_fraction > options.max_outside_fraction:
        raise InvalidInput(
            f"the dose grid does not cover ROI {roi.label}: "
            f"{samples.outside_volume / 1000:.3f} cm3 of {total / 1000:.3f} cm3 "
            f"({100 * outside_fraction:.2f} %) lies outside it"
        )
    if samples.outside_volume > 0:
        warnings.append(
            f"{samples.outside_volume / 1000:.4f} cm3 of ROI {roi.label} lies outside the "
            "dose grid and is left out"
        )
    volume = samples.volume / 1000.0
    return DVH(
        roi_number=roi.number,
        name=roi.name,
        interpreted_type=roi.interpreted_type,
        volume=volume,
        dose_min=samples.dose_min,
        dose_max=samples.dose_max,
        dose_mean=samples.dose_integral / samples.volume if samples.volume else float("nan"),
        dose_axis=samples.dose_axis,
        cumulative=np.minimum(samples.cumulative / 1000.0, volume),
        dose_units=grid.dose_units,
        outside_volume=samples.outside_volume,
        samples_per_voxel=samples.samples_per_voxel,
        warnings=tuple(warnings),
    )


def _contour_normal(roi: ROI, grid: DoseGrid) -> FloatArray | None:
    """The common normal of the ROI's contour planes when they are not parallel to the dose
    planes (a contour spans more than PLANE_TOLERANCE_MM along the dose normal), else
    None; InvalidInput when the contours do not lie in parallel planes."""
    if not roi.contours:
        return None
    spread = max(float(np.ptp(contour @ grid.normal)) for contour in roi.contours)
    if spread <= PLANE_TOLERANCE_MM:
        return None
    normals = []
    for contour in roi.contours:
        following = np.roll(contour, -1, axis=0)
        newell = np.sum(np.cross(contour, following), axis=0)  # twice the vector area
        size = float(np.linalg.norm(newell))
        if size > 1e-9:
            normals.append(newell / size)
    if not normals:
        return None
    reference = normals[int(np.argmax([abs(n @ grid.normal) for n in normals]))]
    for n in normals:
        if abs(float(n @ reference)) < 1 - 1e-4:
            raise InvalidInput(
                f"ROI {roi.label}: its contours do not lie in parallel planes "
                f"(normals {np.round(reference, 4).tolist()} and {np.round(n, 4).tolist()})"
            )
    heights = [float(np.ptp(contour @ reference)) for contour in roi.contours]
    if max(heights) > PLANE_TOLERANCE_MM:
        raise InvalidInput(f"ROI {roi.label}: a contour is not planar")
    return np.asarray(reference, dtype=np.float64)


def _aligned(
    roi: ROI,
    grid: DoseGrid,
    normal: FloatArray,
    options: DVHOptions,
    warnings: list[str],
    cache: dict[tuple[float, ...], DoseGrid] | None,
) -> DoseGrid:
    """The dose resampled onto planes parallel to the contours (PS3.3 allows any Image
    Orientation for both); the coverage is checked on the original grid, by the share of
    contour vertices beyond its voxels."""
    points = np.concatenate(roi.contours)
    inside = grid.inside(*grid.to_grid(points))
    outside = 1.0 - float(np.count_nonzero(inside)) / inside.size
    if outside > options.max_outside_fraction:
        raise InvalidInput(
            f"the dose grid does not cover ROI {roi.label}: {100 * outside:.2f} % of its "
            "contour points lie outside it"
        )
    key = tuple(float(value) for value in np.round(normal, 6))
    aligned = cache.get(key) if cache is not None else None
    if aligned is None:
        aligned = align_grid(grid, normal)
        if cache is not None:
            cache[key] = aligned
    warnings.append(
        f"the dose planes are not parallel to the contours of ROI {roi.label}: the dose "
        f"was resampled trilinearly onto planes parallel to them, every "
        f"{aligned.column_spacing:g} mm"
    )
    return aligned


def compute_dvhs(
    structures: StructureSet,
    grid: DoseGrid,
    roi: int | str | None = None,
    options: DVHOptions | None = None,
) -> list[DVH]:
    """DVHs of the ROI ``roi`` (number or name) or, by default, of every ROI with contours."""
    if roi is not None and str(roi).strip() != "":
        return [compute_dvh(structures, grid, structures.roi(roi), options)]
    chosen = structures.rois_with_contours()
    if not chosen:
        raise InvalidInput("the RTSTRUCT has no ROI with closed planar contours")
    aligned: dict[tuple[float, ...], DoseGrid] = {}
    return [compute_dvh(structures, grid, item, options, aligned) for item in chosen]


def dvhs_from_datasets(
    rtstruct: pydicom.Dataset,
    rtdose: pydicom.Dataset | Sequence[pydicom.Dataset],
    roi: int | str | None = None,
    options: DVHOptions | None = None,
    weights: Sequence[float] | None = None,
) -> list[DVH]:
    """Read an RTSTRUCT and an RTDOSE dataset and compute their DVHs (see compute_dvhs).

    Several RTDOSE datasets (with optional ``weights``) are summed first, as a plan sum
    (:func:`radpacs.rt.plansum.sum_grids`). A value pydicom cannot convert (a damaged
    number, an unknown VR) is InvalidInput naming the file, as is every other fault of the
    input.
    """
    structures = _from_dataset(StructureSet.from_dataset, rtstruct, "RTSTRUCT")
    doses = [rtdose] if isinstance(rtdose, pydicom.Dataset) else list(rtdose)
    grids = [_from_dataset(DoseGrid.from_dataset, dataset, "RTDOSE") for dataset in doses]
    grid = grids[0] if len(grids) == 1 and weights is None else sum_grids(grids, weights)
    return compute_dvhs(structures, grid, roi, options)


_READ_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    BytesLengthException,
)


def _from_dataset(read: Callable[[pydicom.Dataset], _T], dataset: pydicom.Dataset, what: str) -> _T:
    try:
        return read(dataset)
    except _READ_ERRORS as exc:  # pydicom converts values lazily, on first access
        raise InvalidInput(f"the {what} holds a value that cannot be read: {exc}") from exc
