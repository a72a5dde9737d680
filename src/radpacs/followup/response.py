"""Response criteria per follow-up timepoint: RECIST 1.1, volumetric, RANO-BM.

RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247):

- measurable at baseline: longest diameter >= 10 mm; a lymph node by its short axis
  >= 15 mm (10-15 mm: pathological, non-target; < 10 mm: normal);
- targets: at most 5, at most 2 per organ when organs are known, the largest first
  (:func:`select_targets`); the others are non-targets;
- sum of diameters: longest diameters of non-nodal targets + short axes of nodal targets;
- CR: every non-nodal target gone (0 mm) and every nodal target < 10 mm short axis, and the
  same for non-targets (with non-targets still present a target CR is an overall PR,
  RECIST Table 1);
- PD: the sum is >= 20 % above the nadir (smallest sum so far, baseline included) AND
  >= 5 mm above it in absolute terms, or any new lesion;
- PR: the sum is >= 30 % below the baseline sum;
- SD: neither; NE: a target is not measured at that timepoint.

Volumetric (thresholds configurable in :class:`Criteria`; defaults are the volumes of a
sphere whose diameter changes by RECIST's -30 % and +20 %: 0.7^3 - 1 = -65.7 %,
1.2^3 - 1 = +72.8 %): the sum of target volumes against the baseline (response) and the
nadir (progression); CR when every target has no volume left; a new lesion is PD.

RANO-BM (Lin et al., Lancet Oncol 2015;16:e270-e278), for brain metastases: targets are
measurable lesions >= 10 mm longest diameter, at most 5 (no per-organ limit, no nodes);
CR: all targets gone; PR: sum -30 % from baseline; PD: sum +20 % from nadir with at least
one lesion grown by >= 5 mm, or a new lesion. Corticosteroid use and clinical status, part
of RANO-BM, are not known to the archive: the category is the imaging part only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from radpacs.followup.model import LesionRole

__all__ = [
    "Criteria",
    "LesionState",
    "Response",
    "is_measurable",
    "rano_bm",
    "recist",
    "select_targets",
    "volumetric",
]


class Category(StrEnum):
    BASELINE = "baseline"
    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"


@dataclass(frozen=True)
class Criteria:
    """Thresholds of the criteria; the defaults are the published ones (see the module)."""

    measurable_mm: float = 10.0
    node_measurable_mm: float = 15.0
    node_normal_mm: float = 10.0
    max_targets: int = 5
    max_targets_per_organ: int = 2
    pr_percent: float = -30.0
    pd_percent: float = 20.0
    pd_absolute_mm: float = 5.0
    volume_pr_percent: float = -65.0
    volume_pd_percent: float = 73.0


@dataclass(frozen=True)
class LesionState:
    """One lesion at one timepoint; sizes None when not measured, 0 when gone."""

    lesion: str
    role: LesionRole
    lymph_node: bool = False
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    volume_mm3: float | None = None
    organ: str = ""

    @property
    def diameter(self) -> float | None:
        """The RECIST diameter: short axis for a lymph node, else the longest diameter."""
        return self.short_axis_mm if self.lymph_node else self.long_axis_mm

    @property
    def present(self) -> bool:
        return bool(self.long_axis_mm or self.volume_mm3)


@dataclass(frozen=True)
class Response:
    """The category of one timepoint under one criterion, with the figures and the reason."""

    criterion: str
    category: str
    total: float | None
    baseline: float | None
    nadir: float | None
    change_from_baseline_pct: float | None
    change_from_nadir_pct: float | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def is_measurable(state: LesionState, criteria: Criteria = Criteria()) -> bool:
    """RECIST 1.1 measurability at baseline (nodes by short axis)."""
    if state.lymph_node:
        return (state.short_axis_mm or 0.0) >= criteria.node_measurable_mm
    return (state.long_axis_mm or 0.0) >= criteria.measurable_mm


def select_targets(
    baseline: Sequence[LesionState], criteria: Criteria = Criteria(), per_organ: bool = True
) -> list[str]:
    """Lesion ids of the targets: measurable, largest first, 5 at most, 2 per known organ."""
    chosen: list[str] = []
    per: dict[str, int] = {}
    for state in sorted(baseline, key=lambda s: -(s.diameter or 0.0)):
        if not is_measurable(state, criteria) or len(chosen) >= criteria.max_targets:
            continue
        if per_organ and state.organ:
            if per.get(state.organ, 0) >= criteria.max_targets_per_organ:
                continue
            per[state.organ] = per.get(state.organ, 0) + 1
        chosen.append(state.lesion)
    return chosen


def _pct(value: float, reference: float | None) -> float | None:
    if reference is None or reference == 0:
        return None
    return round(100.0 * (value - reference) / reference, 1)


def _sum(states: Sequence[LesionState], attribute: str) -> float | None:
    values = [getattr(s, attribute) for s in states]
    if any(v is None for v in values):
        return None
    return float(sum(values))


def _new_lesions(states: Sequence[LesionState]) -> list[str]:
    return [s.lesion for s in states if s.role is LesionRole.NEW and s.present]


def _gone(state: LesionState, criteria: Criteria) -> bool:
    if state.lymph_node:
        return (state.short_axis_mm or 0.0) < criteria.node_normal_mm
    return not state.present


@dataclass(frozen=True)
class _Point:
    """A measured timepoint after the baseline, as a criterion's classification sees it."""

    index: int
    states: Sequence[LesionState]
    targets: list[LesionState]
    total: float
    baseline: float | None
    nadir: float | None

    @property
    def from_base(self) -> float | None:
        return _pct(self.total, self.baseline)

    @property
    def from_nadir(self) -> float | None:
        return _pct(self.total, self.nadir)


_Classify = Callable[[_Point], tuple[Category, str]]
"""A timepoint without new lesions -> its category and why."""


def _series(
    name: str,
    timepoints: Sequence[Sequence[LesionState]],
    attribute: str,
    baseline_reason: Callable[[list[LesionState], float | None], str],
    not_measured: Callable[[list[LesionState]], str],
    classify: _Classify,
) -> list[Response]:
    """The categories of a series of timepoints by the sum of ``attribute`` of the targets:
    the first is the baseline, a sum that cannot be taken is NE, a new lesion is PD, and
    ``classify`` decides the rest against the baseline and the nadir (the smallest sum before)."""
    results: list[Response] = []
    sums: list[float | None] = []
    baseline: float | None = None
    for index, states in enumerate(timepoints):
        targets = [s for s in states if s.role is LesionRole.TARGET]
        total = _sum(targets, attribute)
        sums.append(total)
        if index == 0:
            baseline = total
            reason = baseline_reason(targets, total)
            results.append(
                Response(name, Category.BASELINE, total, total, total, None, None, reason)
            )
            continue
        previous = [s for s in sums[:-1] if s is not None]
        nadir = min(previous) if previous else None
        if total is None:
            reason = not_measured(targets)
            results.append(Response(name, Category.NE, None, baseline, nadir, None, None, reason))
            continue
        point = _Point(index, states, targets, total, baseline, nadir)
        new = _new_lesions(states)
        if new:
            category, reason = Category.PD, f"new lesion(s): {', '.join(new)}"
        else:
            category, reason = classify(point)
        results.append(
            Response(
                name, category, total, baseline, nadir, point.from_base, point.from_nadir, reason
            )
        )
    return results


def _diameter_series(
    name: str,
    timepoints: Sequence[Sequence[LesionState]],
    criteria: Criteria,
    rano: bool,
) -> list[Response]:
    def classify(point: _Point) -> tuple[Category, str]:
        total, baseline_sum, nadir = point.total, point.baseline, point.nadir
        from_base, from_nadir, targets = point.from_base, point.from_nadir, point.targets
        if (
            nadir is not None
            and total >= nadir * (1 + criteria.pd_percent / 100)
            and total - nadir >= criteria.pd_absolute_mm
            and total > nadir
            and (not rano or _one_grew(timepoints, point.index, criteria.pd_absolute_mm))
        ):
            return Category.PD, (
                f"sum {total:.1f} mm is {from_nadir:+.1f} % ({total - nadir:+.1f} mm) from the "
                f"nadir {nadir:.1f} mm (PD: >= +{criteria.pd_percent:g} % and "
                f">= +{criteria.pd_absolute_mm:g} mm)"
            )
        if targets and all(_gone(s, criteria) for s in targets):
            others = [s for s in point.states if s.role is LesionRole.NON_TARGET]
            if all(_gone(s, criteria) for s in others):
                reason = "every target and non-target lesion has gone"
                if any(s.lymph_node for s in targets):
                    reason += f" (lymph nodes < {criteria.node_normal_mm:g} mm short axis)"
                return Category.CR, reason
            return Category.PR, (
                "target lesions have gone but non-target lesions remain (RECIST Table 1)"
            )
        if baseline_sum and total <= baseline_sum * (1 + criteria.pr_percent / 100):
            return Category.PR, (
                f"sum {total:.1f} mm is {from_base:+.1f} % from the baseline {baseline_sum:.1f} mm "
                f"(PR: <= {criteria.pr_percent:g} %)"
            )
        return Category.SD, (
            f"sum {total:.1f} mm: {from_base:+.1f} % from baseline, "
            f"{(from_nadir if from_nadir is not None else 0):+.1f} % "
            f"({total - (nadir or 0):+.1f} mm) from the nadir: neither PR nor PD"
        )

    return _series(
        name,
        timepoints,
        "diameter",
        lambda targets, total: (
            f"baseline: {len(targets)} target lesion(s), sum {total or 0:.1f} mm"
        ),
        lambda targets: (
            "target lesion(s) not measured: "
            + ", ".join(s.lesion for s in targets if s.diameter is None)
        ),
        classify,
    )


def _one_grew(timepoints: Sequence[Sequence[LesionState]], index: int, mm: float) -> bool:
    """RANO-BM: at least one target grew by ``mm`` from its smallest size so far."""
    for state in timepoints[index]:
        if state.role is not LesionRole.TARGET or state.long_axis_mm is None:
            continue
        history = [
            s.long_axis_mm
            for tp in timepoints[:index]
            for s in tp
            if s.lesion == state.lesion and s.long_axis_mm is not None
        ]
        if history and state.long_axis_mm - min(history) >= mm:
            return True
    return False


def recist(
    timepoints: Sequence[Sequence[LesionState]], criteria: Criteria = Criteria()
) -> list[Response]:
    """RECIST 1.1 category of each timepoint (the first is the baseline)."""
    return _diameter_series("RECIST 1.1", timepoints, criteria, rano=False)


def rano_bm(
    timepoints: Sequence[Sequence[LesionState]], criteria: Criteria = Criteria()
) -> list[Response]:
    """RANO-BM category (imaging part) of each timepoint."""
    return _diameter_series("RANO-BM", timepoints, criteria, rano=True)


def volumetric(
    timepoints: Sequence[Sequence[LesionState]], criteria: Criteria = Criteria()
) -> list[Response]:
    """Volumetric category of each timepoint from the sum of target volumes."""

    def classify(point: _Point) -> tuple[Category, str]:
        from_base, from_nadir = point.from_base, point.from_nadir
        if from_nadir is not None and from_nadir >= criteria.volume_pd_percent:
            return Category.PD, (
                f"target volume {from_nadir:+.1f} % from the nadir "
                f"(PD: >= +{criteria.volume_pd_percent:g} %)"
            )
        if point.targets and point.total == 0:
            return Category.CR, "no target volume left"
        if from_base is not None and from_base <= criteria.volume_pr_percent:
            return Category.PR, (
                f"target volume {from_base:+.1f} % from baseline "
                f"(PR: <= {criteria.volume_pr_percent:g} %)"
            )
        return (
            Category.SD,
            f"target volume {from_base or 0:+.1f} % from baseline: neither PR nor PD",
        )

    return _series(
        "volumetric",
        timepoints,
        "volume_mm3",
        lambda targets, total: f"baseline: target volume {total or 0:.0f} mm3",
        lambda targets: "a target lesion has no volume at this timepoint",
        classify,
    )
