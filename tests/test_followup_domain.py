"""Follow-up domain: extraction in patient space, matching, RECIST 1.1 / volumetric / RANO-BM.

The phantom (tests/_followup_support.py) has four visits with different slice spacings,
frames of reference and table positions, one sagittal, and lesions that shrink, grow,
disappear and appear; the RECIST cases are the published criteria's rules, one per case.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from pydicom import Dataset

from _followup_support import (
    LESION_OFFSETS,
    VISITS,
    ball_volume,
    ohif_length_sr,
    ohif_sr,
    visit_seg,
)
from radpacs.ai.geometry import volume_from_datasets
from radpacs.errors import InvalidInput
from radpacs.followup import Correction, Finding, LesionRole, track
from radpacs.followup.extract import (
    ImageGeometry,
    findings_from_rtstruct,
    findings_from_seg,
    findings_from_sr,
)
from radpacs.followup.geometry import body_anchor
from radpacs.followup.matching import Point, match
from radpacs.followup.response import Criteria, LesionState, recist, select_targets, volumetric


@pytest.fixture(scope="module")
def phantom() -> list[tuple[list[Dataset], Dataset, dict[str, float]]]:
    return [visit_seg(index) for index in range(len(VISITS))]


def _findings(phantom: Any) -> list[Finding]:
    findings: list[Finding] = []
    for datasets, seg, _radii in phantom:
        volume = volume_from_datasets(datasets)
        anchor = body_anchor(volume.array, volume.affine, "CT")
        found, notes = findings_from_seg(seg, anchor)
        assert notes == []
        findings.extend(found)
    return findings


def test_seg_volumes_and_diameters_in_patient_space(phantom: Any) -> None:
    for index, (datasets, seg, radii) in enumerate(phantom):
        found, _ = findings_from_seg(seg)
        by_label = {f.label[-1]: f for f in found}
        assert sorted(by_label) == sorted(radii)
        for name, radius in radii.items():
            finding = by_label[name]
            assert finding.volume_mm3 == pytest.approx(ball_volume(radius), rel=0.05)
            assert finding.long_axis_mm == pytest.approx(2 * radius, abs=1.5)
            expected = np.add(VISITS[index].head_centre, LESION_OFFSETS[name])
            assert np.linalg.norm(np.subtract(finding.centroid, expected)) < 1.0
            assert finding.frame_of_reference == datasets[0].FrameOfReferenceUID


def test_tracks_across_visits_frames_and_orientations(phantom: Any) -> None:
    result = track("FU-PHANTOM-1", _findings(phantom))
    assert [t["date"] for t in result.timepoints] == [v.date for v in VISITS]
    lesions = {lesion["label"][-1]: lesion for lesion in result.lesions}
    assert sorted(lesions) == ["A", "B", "C", "D"]
    assert {n: lesions[n]["role"] for n in "ABCD"} == {
        "A": "target",
        "B": "target",
        "C": "target",
        "D": "new",
    }
    # different frames of reference: matched relative to the body, flagged lower confidence
    assert all(lesions[n]["confidence"] == "low" for n in "ABC")
    statuses = [m["status"] for m in lesions["C"]["measurements"]]
    assert statuses == ["present", "present", "disappeared", "disappeared"]
    assert lesions["C"]["measurements"][2]["volume_mm3"] == 0
    assert [m["status"] for m in lesions["D"]["measurements"]] == [
        "absent",
        "absent",
        "absent",
        "new",
    ]
    b = lesions["B"]["measurements"]
    assert b[3]["volume_mm3"] == pytest.approx(ball_volume(11), rel=0.05)
    assert b[3]["volume_change_pct"] == pytest.approx(100 * (11**3 / 9**3 - 1), abs=6)
    recist_categories = [r.category for r in result.responses["recist"]]
    assert recist_categories == ["baseline", "PR", "PR", "PD"]
    assert "new lesion" in result.responses["recist"][3].reason
    assert [r.category for r in result.responses["volumetric"]] == ["baseline", "PR", "PR", "PD"]
    assert result.responses["recist"][0].total == pytest.approx(24 + 18 + 14, abs=2.5)


def test_corrections_survive_recomputation(phantom: Any) -> None:
    findings = _findings(phantom)
    auto = track("p", findings)
    by = {lesion["label"][-1]: lesion for lesion in auto.lesions}
    a_key, b_key = by["A"]["anchor_key"], by["B"]["anchor_key"]
    d_key = by["D"]["anchor_key"]
    corrections = [
        Correction("merge", {"lesion": a_key, "other": b_key}, 1),
        Correction("rename", {"lesion": a_key, "label": "liver segment 7"}, 2),
        Correction("exclude", {"finding": d_key}, 3),
        Correction("role", {"lesion": by["C"]["anchor_key"], "role": "non-target"}, 4),
    ]
    corrected = track("p", findings, corrections)
    labels = sorted(lesion["label"] for lesion in corrected.lesions)
    assert labels == ["liver segment 7", "metastasis C"]
    merged = next(les for les in corrected.lesions if les["label"] == "liver segment 7")
    assert merged["uid"] == by["A"]["uid"]
    base = merged["measurements"][0]
    assert base["volume_mm3"] == pytest.approx(ball_volume(12) + ball_volume(9), rel=0.05)
    assert len(base["findings"]) == 2
    # D excluded: no new lesion, so the last visit is no longer PD by a new lesion
    assert "new lesion" not in corrected.responses["recist"][3].reason
    # recomputing from the same findings and corrections gives the same result
    assert track("p", findings, corrections).to_json() == corrected.to_json()
    # split the merged track again at B's baseline finding
    split = track("p", findings, [*corrections, Correction("split", {"at": b_key}, 5)])
    assert len(split.lesions) == 3


def test_reassign_moves_one_measurement(phantom: Any) -> None:
    findings = _findings(phantom)
    by = {lesion["label"][-1]: lesion for lesion in track("p", findings).lesions}
    b_last = by["B"]["measurements"][3]["findings"][0]["key"]
    moved = track(
        "p",
        findings,
        [Correction("reassign", {"finding": b_last, "lesion": by["A"]["anchor_key"]})],
    )
    lesions = {lesion["label"][-1]: lesion for lesion in moved.lesions}
    assert lesions["B"]["measurements"][3]["status"] == "disappeared"
    assert len(lesions["A"]["measurements"][3]["findings"]) == 2


def test_matching_gate_and_hungarian() -> None:
    frame = "1.2.3"
    previous = [Point((0, 0, 0), frame, None, 10), Point((40, 0, 0), frame, None, 10)]
    # the optimal assignment pairs 0->1 and 1->0 although greedy nearest would not
    current = [Point((38, 0, 0), frame, None, 10), Point((3, 0, 0), frame, None, 10)]
    links = match(previous, current)
    assert {(link.a, link.b) for link in links} == {(0, 1), (1, 0)}
    assert all(link.confidence == "high" for link in links)
    # beyond the 15 mm gate: no link
    assert match([Point((0, 0, 0), frame, None, 8)], [Point((20, 0, 0), frame, None, 8)]) == []
    # other frame of reference: relative to the anchors, flagged low
    far = match([Point((0, 0, 0), "a", (0, 0, 0), 8)], [Point((100, 0, 5), "b", (100, 0, 0), 8)])
    assert [(link.a, link.b, link.confidence) for link in far] == [(0, 0, "low")]


# ---------------------------------------------------------------- RECIST 1.1 cases

T, NT, NEW = LesionRole.TARGET, LesionRole.NON_TARGET, LesionRole.NEW


def _visits(*sums: list[float], node: bool = False) -> list[list[LesionState]]:
    return [
        [LesionState(f"L{i}", T, node, d, d if node else None, None) for i, d in enumerate(s)]
        for s in sums
    ]


@pytest.mark.parametrize(
    ("case", "visits", "expected"),
    [
        ("30 % decrease from baseline is PR", [[60, 40], [42, 28]], "PR"),
        ("29 % decrease is SD", [[60, 40], [43, 28]], "SD"),
        ("20 % and 10 mm above the nadir is PD", [[60, 40], [30, 20], [36, 24]], "PD"),
        ("20 % but under 5 mm above the nadir is SD", [[12, 8], [9, 6], [10.8, 7.2]], "SD"),
        ("19 % above the nadir is no PD: still PR", [[60, 40], [30, 20], [35.7, 23.8]], "PR"),
        ("every target gone is CR", [[30, 20], [0, 0]], "CR"),
    ],
)
def test_recist_published_rules(case: str, visits: list[list[float]], expected: str) -> None:
    responses = recist(_visits(*visits))
    assert responses[0].category == "baseline"
    assert responses[-1].category == expected, (case, responses[-1].reason)


def test_recist_new_lesion_is_pd_whatever_the_sum() -> None:
    visits = _visits([30, 20], [10, 5])
    visits[1].append(LesionState("L9", NEW, False, 4.0, None, None))
    response = recist(visits)[1]
    assert response.category == "PD"
    assert "L9" in response.reason


def test_recist_lymph_node_below_10_mm_counts_as_gone() -> None:
    visits = [
        [LesionState("L0", T, False, 25, None), LesionState("N1", T, True, 30, 18)],
        [LesionState("L0", T, False, 0, None), LesionState("N1", T, True, 14, 8)],
    ]
    response = recist(visits)[1]
    assert response.category == "CR"
    assert response.total == 8  # the node's short axis stays in the sum (RECIST 1.1 4.3.1)


def test_recist_target_cr_with_non_target_left_is_pr() -> None:
    visits = [
        [LesionState("L0", T, False, 25, None), LesionState("L1", NT, False, 8, None)],
        [LesionState("L0", T, False, 0, None), LesionState("L1", NT, False, 7, None)],
    ]
    assert recist(visits)[1].category == "PR"


def test_recist_target_selection() -> None:
    baseline = [
        LesionState("liver1", T, False, 50, None, organ="liver"),
        LesionState("liver2", T, False, 40, None, organ="liver"),
        LesionState("liver3", T, False, 30, None, organ="liver"),
        LesionState("lung1", T, False, 25, None, organ="lung"),
        LesionState("small", T, False, 9, None, organ="bone"),
        LesionState("node12", T, True, 20, 12, organ="node"),
        LesionState("node16", T, True, 25, 16, organ="node"),
        LesionState("adrenal", T, False, 12, None, organ="adrenal"),
        LesionState("kidney", T, False, 11, None, organ="kidney"),
    ]
    chosen = select_targets(baseline)
    # 5 at most, 2 per organ, measurable only (9 mm and a 12 mm node short axis are not)
    assert chosen == ["liver1", "liver2", "lung1", "node16", "adrenal"]


def test_volumetric_thresholds_are_configurable() -> None:
    visits = [
        [LesionState("L0", T, False, 20, None, 1000.0)],
        [LesionState("L0", T, False, 15, None, 500.0)],
    ]
    assert volumetric(visits)[1].category == "SD"  # -50 % > -65 %
    assert volumetric(visits, Criteria(volume_pr_percent=-40))[1].category == "PR"


def test_rano_bm_needs_one_lesion_grown_5_mm() -> None:
    from radpacs.followup.response import rano_bm

    visits = [
        [
            LesionState("a", T, False, 10, None),
            LesionState("b", T, False, 10, None),
            LesionState("c", T, False, 10, None),
        ],
        [
            LesionState("a", T, False, 14, None),
            LesionState("b", T, False, 14, None),
            LesionState("c", T, False, 10, None),
        ],
    ]
    assert recist(visits)[1].category == "PD"  # +40 %, +8 mm
    assert rano_bm(visits)[1].category == "SD"  # no single lesion grew by 5 mm
    visits[1][0] = LesionState("a", T, False, 16, None)
    assert rano_bm(visits)[1].category == "PD"


# ---------------------------------------------------------------- other sources


def test_ohif_length_sr_feeds_lengths_with_positions(phantom: Any) -> None:
    datasets, _seg, _radii = phantom[1]
    image = datasets[0]
    geometry = ImageGeometry.from_dataset(image)
    sr = ohif_length_sr(
        image,
        [
            ("lesion A", (20.0, 30.0, 40.0, 30.0), 16.0),
            ("lesion B", (60.0, 60.0, 60.0, 80.0), 16.5),
        ],
    )
    found, notes = findings_from_sr(
        sr, lambda uid: geometry if uid == image.SOPInstanceUID else None
    )
    assert notes == []
    assert [f.long_axis_mm for f in found] == [16.0, 16.5]
    assert [f.kind.value for f in found] == ["SR", "SR"]
    expected = geometry.to_patient(np.array([[30.0, 30.0]]))[0]
    assert np.allclose(found[0].centroid, expected)
    assert found[0].frame_of_reference == image.FrameOfReferenceUID


def test_sr_with_unknown_codes_is_refused_in_words(phantom: Any) -> None:
    image = phantom[0][0][0]
    sr = ohif_length_sr(image, [("x", (1, 1, 5, 5), 4.0)], concept=("X-1", "99FOO", "Wobble"))
    with pytest.raises(InvalidInput, match="99FOO X-1 'Wobble'"):
        findings_from_sr(sr)


def test_seg_without_frame_of_reference_is_refused(phantom: Any) -> None:
    seg = copy.deepcopy(phantom[0][1])
    del seg.FrameOfReferenceUID
    with pytest.raises(InvalidInput, match="no FrameOfReferenceUID"):
        findings_from_seg(seg)


def test_rtstruct_rois_measured_from_contours(phantom: Any) -> None:
    from radpacs.ai.provenance import Provenance
    from radpacs.ai.results.labels import Label
    from radpacs.ai.results.rtstruct import build_rtstruct
    from radpacs.ai.results.seg import seg_to_label_map

    datasets, seg, radii = phantom[0]
    volume = volume_from_datasets(datasets)
    labels = seg_to_label_map(seg, volume)
    rtstruct = build_rtstruct(
        volume,
        labels,
        {n: Label(f"GTV {name}", rt_type="GTV") for n, name in enumerate(sorted(radii), 1)},
        Provenance("phantom-segmenter", "1.0"),
    )
    found, _ = findings_from_rtstruct(rtstruct)
    for finding, name in zip(found, sorted(radii), strict=True):
        assert finding.volume_mm3 == pytest.approx(ball_volume(radii[name]), rel=0.08)
        assert finding.long_axis_mm == pytest.approx(2 * radii[name], abs=2.0)


def test_ohif_bidirectional_and_ellipse(phantom: Any) -> None:
    image = phantom[0][0][0]
    geometry = ImageGeometry.from_dataset(image)
    sr = ohif_sr(
        image,
        [
            (
                "Bidirectional",
                [
                    (("G-A185", "SRT", "Long Axis"), 22.0, "mm", "POLYLINE", [10, 10, 37.5, 10]),
                    (("G-A186", "SRT", "Short Axis"), 12.0, "mm", "POLYLINE", [24, 3, 24, 18]),
                ],
            ),
            (
                "EllipticalROI",
                [
                    (
                        ("G-A166", "SRT", "Area"),
                        1.2,
                        "cm2",
                        "ELLIPSE",
                        [50, 50, 75, 50, 62.5, 44, 62.5, 56],
                    ),
                ],
            ),
        ],
    )
    found, _ = findings_from_sr(sr, lambda uid: geometry)
    bidirectional, ellipse = found
    assert (bidirectional.long_axis_mm, bidirectional.short_axis_mm) == (22.0, 12.0)
    assert ellipse.extra["area_mm2"] == pytest.approx(120.0)
    # axes of the ellipse from its points: 25 and 12 pixels of 0.8 mm
    assert ellipse.long_axis_mm == pytest.approx(20.0)
    assert ellipse.short_axis_mm == pytest.approx(9.6)
