"""PS3.15 Table E.1-1 as radpacs reads it, checked against facts of the standard."""

from __future__ import annotations

import pytest

from radpacs.deid.profile import Action, Option, Profile, TableRow, table_row, table_tags


@pytest.mark.parametrize(
    ("tag", "basic"),
    [
        (0x00100010, "Z"),  # Patient's Name
        (0x00100020, "Z"),  # Patient ID
        (0x00100030, "Z"),  # Patient's Birth Date
        (0x0020000D, "U"),  # Study Instance UID
        (0x0020000E, "U"),  # Series Instance UID
        (0x00080018, "U"),  # SOP Instance UID
        (0x00200052, "U"),  # Frame of Reference UID
        (0x00081155, "U"),  # Referenced SOP Instance UID
        (0x00080080, "X/Z/D"),  # Institution Name
        (0x00080050, "Z"),  # Accession Number
        (0x00080020, "Z"),  # Study Date
        (0x00080090, "Z"),  # Referring Physician's Name
        (0x00081140, "X/Z/U*"),  # Referenced Image Sequence
        (0x00101010, "X"),  # Patient's Age
        (0x00081030, "X"),  # Study Description
        (0x00181000, "X/Z/D"),  # Device Serial Number
        (0x0040A730, "D"),  # Content Sequence
    ],
)
def test_basic_profile_codes_match_the_standard(tag: int, basic: str) -> None:
    row = table_row(tag)
    assert row is not None
    assert row.basic == Action(basic)


def test_option_columns_match_the_standard() -> None:
    study_date = table_row(0x00080020)
    assert study_date is not None
    assert study_date.options[Option.RETAIN_LONGITUDINAL_FULL_DATES] is Action.KEEP
    assert study_date.options[Option.RETAIN_LONGITUDINAL_MODIFIED_DATES] is Action.CLEAN
    institution = table_row(0x00080080)
    assert institution is not None
    assert institution.options == {Option.RETAIN_INSTITUTION_IDENTITY: Action.KEEP}
    age = table_row(0x00101010)
    assert age is not None and age.options[Option.RETAIN_PATIENT_CHARACTERISTICS] is Action.KEEP
    serial = table_row(0x00181000)
    assert serial is not None and serial.options[Option.RETAIN_DEVICE_IDENTITY] is Action.KEEP
    description = table_row(0x00081030)
    assert description is not None and description.options[Option.CLEAN_DESCRIPTORS] is Action.CLEAN
    uid = table_row(0x0020000D)
    assert uid is not None and uid.options[Option.RETAIN_UIDS] is Action.KEEP


def test_repeating_groups_and_private_rows() -> None:
    assert table_row(0x50023000) is not None and table_row(0x50023000).basic is Action.REMOVE  # type: ignore[union-attr]
    assert table_row(0x60023000) is not None and table_row(0x60023000).basic is Action.REMOVE  # type: ignore[union-attr]
    assert Profile().private_action is Action.REMOVE
    assert Profile([Option.RETAIN_SAFE_PRIVATE]).private_action is Action.CLEAN


def test_table_has_every_row_of_the_2020_edition() -> None:
    # 433 rows: one duplicate (3008,0105), 3 repeating-group rows, 1 private row
    assert len(table_tags()) == 428


def test_resolution_with_and_without_options() -> None:
    basic = Profile()
    assert basic.action_for(0x00100010) is Action.EMPTY
    assert basic.action_for(0x00080080) is Action.DUMMY  # X/Z/D resolves to D
    assert basic.action_for(0x00081140) is Action.UID  # X/Z/U* keeps references
    assert basic.action_for(0x00080020) is Action.EMPTY
    assert basic.action_for(0x00280010) is None  # Rows: not listed
    assert Profile(["retain_longitudinal_full_dates"]).action_for(0x00080020) is Action.KEEP
    assert Profile(["retain_longitudinal_modified_dates"]).action_for(0x00080020) is Action.CLEAN
    assert Profile([Option.RETAIN_UIDS]).action_for(0x0020000D) is Action.KEEP
    assert Profile([Option.RETAIN_INSTITUTION_IDENTITY]).action_for(0x00080080) is Action.KEEP


def test_the_most_protective_option_wins() -> None:
    # As Calibration DateTime in later editions: K under device identity, C under modified dates.
    row = TableRow(
        "Calibration DateTime",
        "Z",
        {"retain_device_identity": "K", "retain_longitudinal_modified_dates": "C"},
    )
    both = frozenset({Option.RETAIN_DEVICE_IDENTITY, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES})
    assert row.action(both) is Action.CLEAN
    assert row.action(frozenset({Option.RETAIN_DEVICE_IDENTITY})) is Action.KEEP
    assert row.action(frozenset()) is Action.EMPTY


def test_profile_validates_its_options() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        Profile([Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    with pytest.raises(ValueError, match="unknown de-identification option 'retain_all'"):
        Profile(["retain_all"])
    with pytest.raises(TypeError):
        Profile("retain_uids")


def test_codes_start_with_the_basic_profile() -> None:
    codes = Profile([Option.CLEAN_DESCRIPTORS, Option.RETAIN_UIDS]).codes
    assert [value for value, _ in codes] == ["113100", "113110", "113105"]
