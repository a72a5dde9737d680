"""Each Option keeps what its column of PS3.15 Table E.1-1 says, and nothing more.

One dataset holds every exact tag of the table with a value of its VR; it is
anonymized by the Basic Profile alone and with each Option. Where the column says K the
original value must survive with the Option and not without it; every other attribute
must come out exactly as it does under the Basic Profile.
"""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from _deid_support import SECRET
from radpacs.deid import Anonymizer, Option
from radpacs.deid.profile import Action, table_row, table_tags

_TEXT = {
    "AE": "STATION_AE",
    "AS": "045Y",
    "CS": "SECRET",
    "DA": "20200102",
    "DT": "20200102030405",
    "TM": "030405",
    "DS": "1.5",
    "IS": "7",
    "LO": "Secret Value",
    "LT": "Secret Value",
    "SH": "Secret Value",
    "ST": "Secret Value",
    "UT": "Secret Value",
    "UC": "Secret Value",
    "PN": "DOE^JOHN",
    "UR": "http://example.org/secret",
}


def _value(tag: int, vr: str) -> object:
    if vr in _TEXT:
        return _TEXT[vr]
    if vr == "UI":
        return f"1.2.3.4.{tag}"
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return 1
    if vr in ("FL", "FD"):
        return 1.5
    if vr == "AT":
        return 0x00100010
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "C1"
        return Sequence([item])
    return b"\x01\x02"


def _full_dataset() -> Dataset:
    ds = Dataset()
    for tag in sorted(table_tags()):
        if tag >> 16 in (0x0000, 0x0002, 0x0004):  # command, file meta, directory groups
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        vr = vr.split(" or ")[0]
        ds.add_new(tag, vr, _value(tag, vr))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    return ds


FULL = _full_dataset()
BASIC = Anonymizer(SECRET).anonymize(FULL)


def _same(a: Dataset, b: Dataset, tag: int) -> bool:
    if (tag in a) != (tag in b):
        return False
    return tag not in a or a[tag].value == b[tag].value


@pytest.mark.parametrize("option", list(Option), ids=[o.value for o in Option])
def test_option_keeps_its_column_and_nothing_more(option: Option) -> None:
    result = Anonymizer(SECRET, [option]).anonymize(FULL)
    kept, changed = 0, []
    for elem in FULL:
        tag = int(elem.tag)
        row = table_row(tag)
        if row is None:  # SOP Class UID
            continue
        column = row.options.get(option)
        if column is Action.KEEP:
            kept += 1
            assert tag in result, row.name
            if elem.VR != "SQ":
                assert result[tag].value == elem.value, row.name
        elif column is None and not _same(result, BASIC, tag) and tag not in (0x00280303,):
            changed.append(row.name)
    assert not changed, f"{option.value} changed attributes outside its column: {changed}"
    if option not in (
        Option.RETAIN_SAFE_PRIVATE,
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        Option.CLEAN_DESCRIPTORS,
    ):
        assert kept > 0


def test_basic_profile_keeps_no_listed_value_unchanged() -> None:
    for elem in FULL:
        row = table_row(int(elem.tag))
        if row is None:
            continue
        if elem.tag in BASIC and row.basic is not Action.KEEP and elem.VR != "SQ":
            assert BASIC[elem.tag].value != elem.value or elem.tag == 0x00080016, row.name


def test_modified_dates_shift_every_listed_date() -> None:
    result = Anonymizer(SECRET, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES]).anonymize(FULL)
    for elem in FULL:
        row = table_row(int(elem.tag))
        if row is None:
            continue
        if row.options.get(
            Option.RETAIN_LONGITUDINAL_MODIFIED_DATES
        ) is Action.CLEAN and elem.VR in ("DA", "DT"):
            value = result[elem.tag].value
            assert value and value != elem.value and len(value) == len(elem.value), row.name


def test_clean_descriptors_and_patient_characteristics_clean_the_text() -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = "MRN123456"
    ds.StudyDescription = "Follow-up of DOE John MRN123456"
    ds.Allergies = "penicillin (reported by John)"
    ds.PatientAge = "045Y"
    out = Anonymizer(
        SECRET, [Option.CLEAN_DESCRIPTORS, Option.RETAIN_PATIENT_CHARACTERISTICS]
    ).anonymize(ds)
    assert out.StudyDescription == "Follow-up of * * *"
    assert out.Allergies == "penicillin (reported by *)"
    assert out.PatientAge == "045Y"
    basic = Anonymizer(SECRET).anonymize(ds)
    assert (
        "StudyDescription" not in basic and "Allergies" not in basic and "PatientAge" not in basic
    )
