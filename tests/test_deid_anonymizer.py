"""The anonymizer over real files: nothing identifying left, links kept, deterministic."""

from __future__ import annotations

import io
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from _deid_support import RT_WORKSHOP, SECRET, all_values, corpus, identifying_values, read, walk
from radpacs.deid import Anonymizer, MemoryPseudonymStore, Option
from radpacs.deid.files import write_dataset
from radpacs.errors import InvalidInput

CORPUS, SKIPPED = corpus()


def test_corpus_is_large_enough() -> None:
    # pydicom 3.0 ships 193 test files; those it cannot read as an instance are counted.
    print(f"{len(CORPUS)} instances read, {SKIPPED} files skipped")
    assert len(CORPUS) >= 150
    assert SKIPPED < 60


@pytest.mark.parametrize(("name", "original"), CORPUS, ids=[name for name, _ in CORPUS])
def test_no_identifying_value_remains(name: str, original: Dataset) -> None:
    forbidden = identifying_values(original)
    anonymizer = Anonymizer(SECRET)
    result = anonymizer.anonymize(original, pixels_checked=True)
    left = forbidden & all_values(result)
    assert not left, f"{name}: {sorted(left)[:10]}"
    assert result.PatientIdentityRemoved == "YES"
    assert result.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert not any(elem.tag.is_private for elem in walk(result))
    assert not any(elem.tag.group >> 8 in (0x50, 0x60) for elem in walk(result))  # curves, overlays
    if getattr(result, "file_meta", None) is not None and "SOPInstanceUID" in result:
        assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID


@pytest.mark.parametrize(("name", "original"), CORPUS, ids=[name for name, _ in CORPUS])
def test_output_can_be_written_and_read_back(name: str, original: Dataset) -> None:
    result = Anonymizer(SECRET).anonymize(original, pixels_checked=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = pydicom.dcmread(io.BytesIO(write_dataset(result)), force=True)
    assert back.SOPInstanceUID == result.SOPInstanceUID


def _rt() -> dict[str, Dataset]:
    return {p.name: pydicom.dcmread(p) for p in sorted(RT_WORKSHOP.glob("*.dcm"))}


def test_rt_workshop_references_still_resolve() -> None:
    originals = _rt()
    assert len(originals) == 4
    anonymizer = Anonymizer(SECRET)
    out = {name: anonymizer.anonymize(ds) for name, ds in originals.items()}
    dose = out["rtdose.dcm"]
    studies = {ds.StudyInstanceUID for ds in out.values()}
    assert len(studies) == 1 and studies != {originals["rtdose.dcm"].StudyInstanceUID}
    assert len({ds.PatientID for ds in out.values()}) == 1
    for name in ("rtstruct-sphere.dcm", "rtstruct-cylinder.dcm", "rtstruct-cone.dcm"):
        struct, before = out[name], originals[name]
        frame = struct.ReferencedFrameOfReferenceSequence[0]
        assert frame.FrameOfReferenceUID == dose.FrameOfReferenceUID
        assert (
            frame.FrameOfReferenceUID
            != before.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
        )
        for roi in struct.StructureSetROISequence:
            assert roi.ReferencedFrameOfReferenceUID == dose.FrameOfReferenceUID
        study_ref = frame.RTReferencedStudySequence[0]
        assert study_ref.ReferencedSOPInstanceUID == struct.StudyInstanceUID
        series = study_ref.RTReferencedSeriesSequence[0]
        old_series = before.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
        old_images = old_series.RTReferencedSeriesSequence[0].ContourImageSequence
        for new, old in zip(series.ContourImageSequence, old_images, strict=True):
            # the CT images, anonymized apart, get the same UIDs: the references resolve
            assert new.ReferencedSOPInstanceUID == anonymizer.pseudonyms.uid(
                old.ReferencedSOPInstanceUID
            )
            assert new.ReferencedSOPClassUID == old.ReferencedSOPClassUID
        assert not struct.get("ReferencedStudySequence")  # X/Z in Table E.1-1: emptied


def test_pydicom_rt_plan_dose_and_struct_stay_linked() -> None:
    from pydicom.data import get_testdata_file

    plan = pydicom.dcmread(get_testdata_file("rtplan.dcm"), force=True)
    dose = pydicom.dcmread(get_testdata_file("rtdose.dcm"), force=True)
    anonymizer = Anonymizer(SECRET)
    new_plan, new_dose = anonymizer.anonymize(plan), anonymizer.anonymize(dose)
    old_ref = dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID
    new_ref = new_dose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID
    assert new_ref == anonymizer.pseudonyms.uid(old_ref)
    if old_ref == plan.SOPInstanceUID:
        assert new_ref == new_plan.SOPInstanceUID


def test_same_secret_same_output_other_secret_other_uids() -> None:
    original = _rt()["rtstruct-sphere.dcm"]
    first = write_dataset(Anonymizer(SECRET).anonymize(original))
    second = write_dataset(Anonymizer(SECRET).anonymize(original))
    assert first == second
    other = Anonymizer(b"another-secret-0123456789").anonymize(original)
    again = Anonymizer(SECRET).anonymize(original)
    assert other.SOPInstanceUID != again.SOPInstanceUID
    assert other.PatientID != again.PatientID
    assert other.SOPInstanceUID.startswith("2.25.") and len(other.SOPInstanceUID) <= 64


def test_the_input_is_left_alone() -> None:
    original = _rt()["rtdose.dcm"]
    before = original.SOPInstanceUID
    Anonymizer(SECRET).anonymize(original)
    assert original.SOPInstanceUID == before


def _burned(value: str = "YES") -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "ID-42"
    ds.BurnedInAnnotation = value
    return ds


def test_burned_in_annotation_is_refused_unless_checked() -> None:
    anonymizer = Anonymizer(SECRET)
    with pytest.raises(InvalidInput, match="Burned In Annotation"):
        anonymizer.anonymize(_burned())
    assert anonymizer.anonymize(_burned(), pixels_checked=True).PatientName != "DOE^JANE"
    assert anonymizer.anonymize(_burned("NO")).PatientID.startswith("RP")


def test_patient_pseudonyms_are_stored_and_consistent() -> None:
    store = MemoryPseudonymStore()
    anonymizer = Anonymizer(SECRET, store=store)
    one = anonymizer.anonymize(_burned("NO"))
    two = anonymizer.anonymize(_burned("NO"))
    assert one.PatientID == two.PatientID and one.PatientName == two.PatientName
    record = store.lookup(str(one.PatientID))
    assert record is not None
    assert (record.original_patient_id, record.original_patient_name) == ("ID-42", "DOE^JANE")
    assert len(store) == 1


def test_markers_name_the_profile_and_options() -> None:
    options = [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.CLEAN_DESCRIPTORS]
    result = Anonymizer(SECRET, options).anonymize(_burned("NO"))
    codes = [item.CodeValue for item in result.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113105"]
    assert all(
        item.CodingSchemeDesignator == "DCM" for item in result.DeidentificationMethodCodeSequence
    )
    assert result.DeidentificationMethod[0].startswith("radpacs")
    assert result.LongitudinalTemporalInformationModified == "MODIFIED"
    assert (
        Anonymizer(SECRET).anonymize(_burned("NO")).LongitudinalTemporalInformationModified
        == "REMOVED"
    )


def test_private_attributes_and_safe_private_option() -> None:
    ds = _burned("NO")
    block = ds.private_block(0x0009, "ACME", create=True)
    block.add_new(0x01, "LO", "DOE^JANE's note")
    block.add_new(0x02, "US", 7)
    nested = Dataset()
    nested.add_new(0x00110010, "LO", "ACME")
    nested.add_new(0x00111001, "LO", "secret")
    ds.ReferencedImageSequence = Sequence([nested])
    plain = Anonymizer(SECRET).anonymize(ds)
    assert not any(elem.tag.is_private for elem in walk(plain))
    safe = Anonymizer(SECRET, [Option.RETAIN_SAFE_PRIVATE]).anonymize(ds)
    kept = {elem.tag: elem.value for elem in walk(safe) if elem.tag.is_private}
    assert kept.get(0x00091002) == 7
    assert 0x00091001 not in kept and 0x00111001 not in kept


def test_file_meta_and_preamble_are_replaced() -> None:
    ds = _burned("NO")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    ds.preamble = b"PATIENT DOE" + b"\x00" * 117
    result = Anonymizer(SECRET).anonymize(ds)
    assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID != "1.2.3.4"
    assert "SourceApplicationEntityTitle" not in result.file_meta
    assert result.preamble == b"\x00" * 128


def test_nested_identifiers_are_replaced_consistently() -> None:
    ds = _burned("NO")
    item = Dataset()
    item.PatientID = "ID-42"
    item.PatientName = "DOE^JANE"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.InstitutionName = "General Hospital"
    ds.SourceImageSequence = Sequence([item])
    result = Anonymizer(SECRET).anonymize(ds)
    inner = result.SourceImageSequence[0]
    assert inner.PatientID == result.PatientID
    assert inner.ReferencedSOPInstanceUID == result.SOPInstanceUID
    assert inner.InstitutionName != "General Hospital"


def test_modified_dates_shift_one_patient_consistently() -> None:
    ds = _burned("NO")
    ds.StudyDate = "20200301"
    ds.SeriesDate = "20200302"
    ds.AcquisitionDateTime = "20200301120000.5"
    out = Anonymizer(SECRET, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES]).anonymize(ds)
    from datetime import date

    study = date.fromisoformat(f"{out.StudyDate[:4]}-{out.StudyDate[4:6]}-{out.StudyDate[6:]}")
    series = date.fromisoformat(f"{out.SeriesDate[:4]}-{out.SeriesDate[4:6]}-{out.SeriesDate[6:]}")
    assert (series - study).days == 1
    assert out.StudyDate != "20200301"
    assert out.AcquisitionDateTime == out.StudyDate + "120000.5"
    full = Anonymizer(SECRET, [Option.RETAIN_LONGITUDINAL_FULL_DATES]).anonymize(ds)
    assert (full.StudyDate, full.LongitudinalTemporalInformationModified) == (
        "20200301",
        "UNMODIFIED",
    )
    assert Anonymizer(SECRET).anonymize(ds).StudyDate == ""


def test_clean_descriptors_strikes_identifying_values() -> None:
    ds = _burned("NO")
    ds.StudyDescription = "CT chest for Jane Doe, ID-42"
    plain = Anonymizer(SECRET).anonymize(ds)
    assert "StudyDescription" not in plain
    cleaned = Anonymizer(SECRET, [Option.CLEAN_DESCRIPTORS]).anonymize(ds)
    assert cleaned.StudyDescription == "CT chest for * *, *"


def test_every_file_round_trips_through_bytes_without_decoding_everything() -> None:
    """The fast path keeps undecoded values as read; the file must still be written right."""
    from pydicom.data import get_testdata_files

    from radpacs.deid.files import anonymize_bytes

    anonymizer = Anonymizer(SECRET)
    done = 0
    for path in [*get_testdata_files(), *sorted(str(p) for p in RT_WORKSHOP.glob("*.dcm"))]:
        if read(path) is None:
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = anonymize_bytes(anonymizer, data, pixels_checked=True, name=path)
            back = pydicom.dcmread(io.BytesIO(out), force=True)
            assert back.PatientIdentityRemoved == "YES", path
            left = identifying_values(read(path)) & all_values(back)  # type: ignore[arg-type]
        assert not left, f"{path}: {sorted(left)[:5]}"
        done += 1
    assert done == len(CORPUS)
