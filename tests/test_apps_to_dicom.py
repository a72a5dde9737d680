"""An app's JSON result as DICOM (radpacs.apps.to_dicom): TID 1500 SRs that pass dciodvfy,
hold what the JSON said, and refuse references outside the inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.uid import EnhancedCTImageStorage

from _ai_support import make_series
from _dciodvfy import dciodvfy_errors
from conftest import make_ct
from radpacs.apps.to_dicom import result_datasets
from radpacs.client.apps import (
    AnalysisResult,
    Classification,
    GraphicType,
    ImageQuality,
    ImageRef,
    Measurement,
    QualityStatus,
    Region,
    ResultStatus,
)
from radpacs.errors import InvalidInput

WORKITEM = "2.25.1234"


@pytest.fixture
def series() -> list[Dataset]:
    array = np.zeros((3, 32, 40), dtype=np.int16)
    return sorted(make_series(array, shuffle=False), key=lambda ds: int(ds.InstanceNumber))


def _full(series: list[Dataset]) -> AnalysisResult:
    first, second = (ImageRef(sop_instance_uid=str(ds.SOPInstanceUID)) for ds in series[:2])
    return AnalysisResult(
        status=ResultStatus.COMPLETED,
        display_text="1 bright blob",
        regions=[
            Region(
                label="blob",
                graphic_type=GraphicType.POLYGON,
                image=first,
                points=[(10, 10), (20, 10), (20, 20), (10, 20)],  # closed by the writer
            ),
            Region(label="centre", graphic_type=GraphicType.POINT, image=first, points=[(15, 15)]),
            Region(
                label="seeds",
                graphic_type=GraphicType.MULTIPOINT,
                image=second,
                points=[(1, 1), (39.5, 31.5)],
            ),
        ],
        classifications=[Classification(label="bright", probability=0.9)],
        measurements=[
            Measurement(label="blob area", value=100.0, unit="mm2", image=first),
            Measurement(label="total volume", value=2.5, unit="mm3"),
        ],
        quality=[
            ImageQuality(image=first, status=QualityStatus.PASS),
            ImageQuality(image=second, status=QualityStatus.WARN, reason="low contrast"),
        ],
    )


def _items(ds: Dataset) -> list[Dataset]:
    """Every content item of the SR tree, depth first."""
    found: list[Dataset] = []
    stack = list(ds.ContentSequence)
    while stack:
        item = stack.pop(0)
        found.append(item)
        stack[:0] = list(item.get("ContentSequence", []))
    return found


def _meanings(ds: Dataset, value_type: str) -> list[str]:
    return [
        str(item.ConceptNameCodeSequence[0].CodeMeaning)
        for item in _items(ds)
        if item.ValueType == value_type
    ]


def test_a_full_result_becomes_a_regions_sr_and_a_findings_sr_that_pass_dciodvfy(
    series: list[Dataset],
) -> None:
    regions, findings = result_datasets(
        _full(series), series, app_name="threshold", workitem_uid=WORKITEM
    )
    for ds in (regions, findings):
        assert dciodvfy_errors(ds) == []
        assert ds.StudyInstanceUID == series[0].StudyInstanceUID
        assert ds.SeriesNumber == 9020
        assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        equipment = ds.ContributingEquipmentSequence[-1]
        assert equipment.ManufacturerModelName == "threshold"
    assert regions.SeriesInstanceUID != findings.SeriesInstanceUID
    assert (regions.SeriesDescription, findings.SeriesDescription) == (
        "threshold regions",
        "threshold findings",
    )

    outlines = [i for i in _items(regions) if i.ValueType == "SCOORD"]
    scoords = [s for s in outlines if s.RelationshipType == "CONTAINS"]  # the ROIs
    assert [s.GraphicType for s in scoords] == ["POLYLINE", "POINT", "POINT", "POINT"]
    # the polygon's area (pixels 10 x 10 of 0.8 x 0.7 mm), inferred from a copy of it
    [area] = [i for i in _items(regions) if i.ValueType == "NUM"]
    assert area.ConceptNameCodeSequence[0].CodeMeaning == "Area"
    assert float(area.MeasuredValueSequence[0].NumericValue) == pytest.approx(56.0)
    assert area.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "mm2"
    [copy] = area.ContentSequence
    assert (copy.RelationshipType, copy.GraphicType) == ("INFERRED FROM", "POLYLINE")
    assert list(copy.GraphicData) == list(scoords[0].GraphicData)
    polygon = [float(v) for v in scoords[0].GraphicData]
    assert polygon[:2] == polygon[-2:] == [10.0, 10.0]  # a polygon is a closed polyline
    assert len(polygon) == 10
    image_of = scoords[0].ContentSequence[0].ReferencedSOPSequence[0]
    assert image_of.ReferencedSOPInstanceUID == series[0].SOPInstanceUID
    image_of = scoords[3].ContentSequence[0].ReferencedSOPSequence[0]
    assert image_of.ReferencedSOPInstanceUID == series[1].SOPInstanceUID
    trackers = [
        str(item.TextValue)
        for item in _items(regions)
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "112039"
    ]
    tag = "Cornerstone3DTools@^0.1.0"  # OHIF picks its drawing tool by this prefix
    assert trackers == [
        f"{tag}:PlanarFreehandROI blob #1",
        f"{tag}:Probe centre #2",
        f"{tag}:Probe seeds #3",
        f"{tag}:Probe seeds #4",
    ]
    findings_codes = [
        str(item.ConceptCodeSequence[0].CodeMeaning)
        for item in _items(regions)
        if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == "121071"
    ]
    assert findings_codes == ["blob", "centre", "seeds", "seeds"]
    algorithm = [
        str(item.TextValue)
        for item in _items(regions)
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "111001"
    ]
    assert set(algorithm) == {"threshold"}

    numbers = {
        str(item.ConceptNameCodeSequence[0].CodeMeaning): (
            float(item.MeasuredValueSequence[0].NumericValue),
            str(item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue),
        )
        for item in _items(findings)
        if item.ValueType == "NUM"
    }
    assert numbers == {
        "Probability of bright": (0.9, "1"),
        "blob area": (100.0, "mm2"),
        "total volume": (2.5, "mm3"),
    }
    codes = {
        (
            str(item.ConceptNameCodeSequence[0].CodeMeaning),
            str(item.ConceptCodeSequence[0].CodeMeaning),
        )
        for item in _items(findings)
        if item.ValueType == "CODE"
    }
    assert ("Finding", "bright") in codes
    assert ("Image quality control", "Image quality acceptable") in codes
    assert ("Image quality control", "Image quality questionable") in codes
    texts = [str(item.TextValue) for item in _items(findings) if item.ValueType == "TEXT"]
    assert "1 bright blob" in texts
    assert "low contrast" in texts
    assert f"workitem={WORKITEM}" in " ".join(texts)  # AlgorithmParameters


def test_ct_small_circle_and_ellipse_and_only_regions(ct_factory: object) -> None:
    ct = make_ct("2.25.1", "2.25.2")
    ref = ImageRef(sop_instance_uid=str(ct.SOPInstanceUID))
    result = AnalysisResult(
        status=ResultStatus.COMPLETED,
        regions=[
            Region(label="c", graphic_type=GraphicType.CIRCLE, image=ref, points=[(5, 5), (5, 9)]),
            Region(
                label="e",
                graphic_type=GraphicType.ELLIPSE,
                image=ref,
                points=[(2, 10), (20, 10), (11, 5), (11, 15)],
            ),
            Region(
                label="line",
                graphic_type=GraphicType.POLYLINE,
                image=ref,
                points=[(0, 0), (128, 128)],
            ),
        ],
    )
    [sr] = result_datasets(result, [ct], app_name="a", workitem_uid=WORKITEM)
    assert dciodvfy_errors(sr) == []
    rois = [i for i in _items(sr) if i.ValueType == "SCOORD" and i.RelationshipType == "CONTAINS"]
    assert [i.GraphicType for i in rois] == ["CIRCLE", "ELLIPSE", "POLYLINE"]
    sizes = [
        (
            str(i.ConceptNameCodeSequence[0].CodeMeaning),
            float(i.MeasuredValueSequence[0].NumericValue),
        )
        for i in _items(sr)
        if i.ValueType == "NUM"
    ]
    dx, dy = float(ct.PixelSpacing[1]), float(ct.PixelSpacing[0])
    assert sizes == [
        ("Area", pytest.approx(math.pi * 16 * dx * dy, abs=1e-3)),  # radius 4 pixels
        ("Area", pytest.approx(math.pi * 9 * 5 * dx * dy, abs=1e-3)),  # semi-axes 9 and 5
        ("Length", pytest.approx(math.hypot(128 * dx, 128 * dy), abs=1e-3)),
    ]


def test_progress_and_failures_make_no_dicom(series: list[Dataset]) -> None:
    for status in (ResultStatus.RUNNING, ResultStatus.FAILED):
        result = AnalysisResult(status=status, progress=50, reason="x")
        assert result_datasets(result, series, app_name="a", workitem_uid=WORKITEM) == []
    empty = AnalysisResult(status=ResultStatus.COMPLETED)
    assert result_datasets(empty, series, app_name="a", workitem_uid=WORKITEM) == []
    text_only = AnalysisResult(status=ResultStatus.COMPLETED, display_text="nothing found")
    assert result_datasets(text_only, [], app_name="a", workitem_uid=WORKITEM) == []
    [findings] = result_datasets(text_only, series[:1], app_name="a", workitem_uid=WORKITEM)
    assert "nothing found" in [i.TextValue for i in _items(findings) if i.ValueType == "TEXT"]


def test_a_multiframe_source_is_referenced_by_frame() -> None:
    ct = make_ct("2.25.1", "2.25.2", SOPClassUID=EnhancedCTImageStorage, NumberOfFrames=3)
    ref = ImageRef(sop_instance_uid=str(ct.SOPInstanceUID), frame=3)
    result = AnalysisResult(
        status=ResultStatus.COMPLETED,
        regions=[Region(label="p", graphic_type=GraphicType.POINT, image=ref, points=[(1, 1)])],
    )
    [sr] = result_datasets(result, [ct], app_name="a", workitem_uid=WORKITEM)
    [scoord] = [i for i in _items(sr) if i.ValueType == "SCOORD"]
    assert scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber == 3
    too_far = ImageRef(sop_instance_uid=str(ct.SOPInstanceUID), frame=4)
    moved = result.regions[0].model_copy(update={"image": too_far})
    bad = result.model_copy(update={"regions": [moved]})
    with pytest.raises(InvalidInput, match=r"frame 4 .* 3 frame"):
        result_datasets(bad, [ct], app_name="a", workitem_uid=WORKITEM)


@pytest.mark.parametrize(
    ("region", "message"),
    [
        (
            {"graphic_type": "POINT", "points": [(1, 1)], "uid": "1.2.3"},
            "instance 1.2.3, which is not an input",
        ),
        ({"graphic_type": "POINT", "points": [(1, 1)], "frame": 2}, "frame 2 .* 1 frame"),
        ({"graphic_type": "POINT", "points": [(41, 1)]}, r"\(41.0, 1.0\) is outside .* 40 col"),
        ({"graphic_type": "POLYGON", "points": [(1, -0.5), (2, 2), (3, 1)]}, "outside"),
        ({"graphic_type": "POINT", "points": [(1, 1), (2, 2)]}, "POINT needs 1 points, not 2"),
        ({"graphic_type": "CIRCLE", "points": [(1, 1)]}, "CIRCLE needs 2 points"),
        ({"graphic_type": "POLYGON", "points": [(1, 1), (2, 2)]}, "at least 3"),
    ],
)
def test_bad_regions_are_refused_in_words(
    series: list[Dataset], region: dict[str, object], message: str
) -> None:
    uid = str(region.pop("uid", series[0].SOPInstanceUID))
    frame = int(str(region.pop("frame", 1)))
    result = AnalysisResult(
        status=ResultStatus.COMPLETED,
        regions=[
            Region.model_validate(
                {"label": "x", "image": {"sop_instance_uid": uid, "frame": frame}, **region}
            )
        ],
    )
    with pytest.raises(InvalidInput, match=message):
        result_datasets(result, series, app_name="a", workitem_uid=WORKITEM)


def test_measurements_and_verdicts_on_unknown_images_are_refused(series: list[Dataset]) -> None:
    stranger = ImageRef(sop_instance_uid="1.2.3.4")
    for result in (
        AnalysisResult(
            status=ResultStatus.COMPLETED,
            measurements=[Measurement(label="a", value=1, unit="mm", image=stranger)],
        ),
        AnalysisResult(
            status=ResultStatus.COMPLETED,
            quality=[ImageQuality(image=stranger, status=QualityStatus.FAIL)],
        ),
    ):
        with pytest.raises(InvalidInput, match=r"1\.2\.3\.4"):
            result_datasets(result, series, app_name="a", workitem_uid=WORKITEM)
