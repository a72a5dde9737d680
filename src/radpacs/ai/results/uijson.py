"""The result as JSON for viewers: polygons per slice in pixel and patient coordinates.

Shape::

    {"model": {...provenance}, "series": {"study": ..., "series": ...},
     "labels": [{"value": 1, "name": "lesion", "color": "#e6194b",
                 "style": {"stroke": "#e6194b", "fill": "#e6194b", "fillOpacity": 0.25,
                           "lineWidth": 2},
                 "measurements": {...}}],
     "slices": [{"index": 0, "sop_uid": ..., "polygons": [
                 {"label": 1, "points": [[column, row], ...],
                  "patient": [[x, y, z], ...], "hole": false}]}]}

Polygons follow the RTSTRUCT convention (even-odd): ``hole`` is true for a boundary lying
inside an odd number of the label's other polygons on that slice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from radpacs.ai.geometry import Volume
from radpacs.ai.provenance import Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.measure import RegionMeasurement
from radpacs.ai.results.rtstruct import mask_contours

__all__ = ["build_ui_json"]


def _is_hole(contour: npt.NDArray[np.float64], others: list[npt.NDArray[np.float64]]) -> bool:
    from skimage.measure import points_in_poly

    probe = contour[:1]
    depth = sum(bool(points_in_poly(probe, other)[0]) for other in others)
    return depth % 2 == 1


def build_ui_json(
    volume: Volume,
    label_map: npt.NDArray[np.integer],
    labels: Mapping[int, Label],
    provenance: Provenance,
    measurements: Mapping[int, RegionMeasurement] | None = None,
) -> dict[str, Any]:
    """Polygons of every label on every slice, with label styles and measurements."""
    first = volume.datasets[0]
    label_entries = []
    for value, label in sorted(labels.items()):
        entry: dict[str, Any] = {
            "value": int(value),
            "name": label.name,
            "color": label.hex_color,
            "style": {
                "stroke": label.hex_color,
                "fill": label.hex_color,
                "fillOpacity": 0.25,
                "lineWidth": 2,
            },
        }
        if measurements and value in measurements:
            entry["measurements"] = measurements[value].to_json()
        label_entries.append(entry)
    slices = []
    for k in np.flatnonzero(label_map.any(axis=(1, 2))):
        affine = volume.slice_affine(int(k))
        polygons = []
        for value in sorted(labels):
            contours = mask_contours(label_map[k] == value)
            for index, contour in enumerate(contours):
                others = contours[:index] + contours[index + 1 :]
                ijk = np.c_[
                    contour[:, 1], contour[:, 0], np.zeros(len(contour)), np.ones(len(contour))
                ]
                xyz = (ijk @ affine.T)[:, :3]
                polygons.append(
                    {
                        "label": int(value),
                        "points": np.round(contour[:, ::-1], 2).tolist(),
                        "patient": np.round(xyz, 3).tolist(),
                        "hole": _is_hole(contour, others),
                    }
                )
        slices.append({"index": int(k), "sop_uid": volume.sop_uids[int(k)], "polygons": polygons})
    return {
        "model": provenance.to_json(),
        "series": {
            "study": str(first.StudyInstanceUID),
            "series": str(first.SeriesInstanceUID),
        },
        "labels": label_entries,
        "slices": slices,
    }
