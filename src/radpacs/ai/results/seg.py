"""Label map -> DICOM Segmentation (PS3.3 A.51, binary SEG) with highdicom, and back.

Segment numbers are 1..n in the order of the label values; each segment carries its
label's coded property and the model's AlgorithmIdentificationSequence (SegmentAlgorithmType
AUTOMATIC). Frames reference their source images one to one (the volume's slice order), so
the SEG shares the series' frame of reference and geometry; empty frames are omitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom import Dataset

from radpacs.ai.geometry import Volume
from radpacs.ai.provenance import MANUFACTURER, Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.uids import new_uid
from radpacs.errors import InvalidInput

__all__ = ["build_seg", "seg_to_label_map"]


def _code(code: tuple[str, str, str]) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept(*code)


def build_seg(
    volume: Volume,
    label_map: npt.NDArray[np.integer],
    labels: Mapping[int, Label],
    provenance: Provenance,
    series_number: int = 9001,
) -> Dataset:
    """A binary SEG with one segment per entry of ``labels`` (label value -> :class:`Label`)."""
    import highdicom as hd

    if label_map.shape != volume.array.shape:
        raise InvalidInput(
            f"label map shape {label_map.shape} does not match the volume {volume.array.shape}"
        )
    if not labels:
        raise InvalidInput("a segmentation needs at least one label")
    ordered = sorted(labels.items())
    segment_map = np.zeros(label_map.shape, dtype=np.uint8)
    descriptions = []
    algorithm = provenance.algorithm_identification()
    for number, (value, label) in enumerate(ordered, start=1):
        segment_map[label_map == value] = number
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=label.name[:64],
                segmented_property_category=_code(label.category_code),
                segmented_property_type=_code(label.type_code),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                display_color=hd.color.CIELabColor.from_rgb(*label.color),
            )
        )
    seg = hd.seg.Segmentation(
        source_images=volume.datasets,
        pixel_array=segment_map,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=new_uid(),
        series_number=series_number,
        sop_instance_uid=new_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=provenance.name[:64],
        software_versions=provenance.version[:64],
        device_serial_number=(provenance.weights_sha256 or "none")[:64],
        series_description=f"{provenance.name} segmentation"[:64],
        omit_empty_frames=bool(segment_map.any()),
    )
    return provenance.stamp(seg)


def seg_to_label_map(seg: Dataset, volume: Volume) -> npt.NDArray[np.uint8]:
    """The SEG's segments on ``volume``'s grid as a label map of segment numbers (0 = none)."""
    import highdicom as hd

    parsed = hd.seg.Segmentation.from_dataset(seg, copy=False)
    numbers = list(parsed.segment_numbers)
    array = parsed.get_pixels_by_source_instance(
        source_sop_instance_uids=volume.sop_uids,
        segment_numbers=numbers,
        combine_segments=True,
        relabel=False,
        skip_overlap_checks=True,
        ignore_spatial_locations=True,
        assert_missing_frames_are_empty=True,
    )
    return np.asarray(array, dtype=np.uint8)
