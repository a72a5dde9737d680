"""De-identify one DICOM dataset by PS3.15 Annex E, keeping links between objects.

:class:`Anonymizer` applies the :class:`~radpacs.deid.profile.Profile` to every attribute
of a dataset, items of nested sequences included (PS3.15 E.1.1: "whether contained in
the main dataset or embedded in an Item of a Sequence of Items"):

- ``X`` removes, ``Z`` empties, ``D`` puts a dummy value of the attribute's VR, ``K``
  keeps (a kept sequence has the profile applied to its items), ``U`` replaces every UID
  by its pseudonym (:meth:`Pseudonyms.uid`), ``C`` cleans: dates and date-times move by
  the patient's date shift (Retain Longitudinal Temporal Information with Modified
  Dates, E.3.6), text has every identifying value of the instance struck out (Clean
  Descriptors, E.3.5; Retain Patient Characteristics, E.3.8), sequences are walked.
- Patient ID and Patient's Name (Z) get the patient's pseudonym rather than an empty
  value, so that separate uploads of one patient stay linked; the original is recorded in
  the :class:`~radpacs.deid.pseudonyms.PseudonymStore` when one is given.
- Every UI element that the table does not list is replaced as if it were ``U`` unless it
  names a class rather than an instance (SOP Class, Transfer Syntax, Coding Scheme, ...)
  or is a UID registered in PS3.6 Annex A: references inside RTSTRUCT, RTDOSE, RTPLAN,
  SEG and SR therefore resolve to the replaced UIDs of the objects they point at.
- Dates, date-times and times that the table does not list are treated as the table's
  own dates are (PS3.15 E.1.1 note 4): emptied, kept under Full Dates, shifted under
  Modified Dates.
- Private attributes are removed; under Retain Safe Private only numeric ones (binary
  numbers, DS, IS) and the Private Creators are kept (radpacs's own safe list, E.3.10).
- Curves (50xx) are removed, and so are overlays (60xx) whole, since their Overlay Data
  (60xx,3000) is removed; group lengths (gggg,0000) go too.
- The File Meta Information and the preamble are replaced (E.1.1 point 7).
- Patient Identity Removed (0012,0062) is YES; De-identification Method (0012,0063) and
  its Code Sequence (0012,0064) name 113100 and the Options' codes (PS3.16 CID 7050);
  Longitudinal Temporal Information Modified (0028,0303) says what happened to dates.

An instance whose Burned In Annotation (0028,0301) is YES is refused with
:class:`~radpacs.errors.InvalidInput` unless the caller states that the pixels were
checked (``pixels_checked=True``): radpacs does not clean pixel data (E.3.1).

Example::

    anonymizer = Anonymizer(secret, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    clean = anonymizer.anonymize(pydicom.dcmread("ct.dcm"))
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any, Final

from pydicom._dicom_dict import DicomDictionary
from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from radpacs.deid.profile import Action, Option, Profile, identifying_tags
from radpacs.deid.pseudonyms import (
    PatientPseudonym,
    PatientRecord,
    Pseudonyms,
    PseudonymStore,
    shift_date,
    shift_datetime,
)
from radpacs.errors import InvalidInput

__all__ = ["DEIDENTIFICATION_METHOD", "Anonymizer"]

#: The first value of De-identification Method (0012,0063) that radpacs writes.
DEIDENTIFICATION_METHOD: Final = "radpacs PS3.15 E.1-1 Basic Profile"

PATIENT_ID: Final = 0x00100020
PATIENT_NAME: Final = 0x00100010
ISSUER_OF_PATIENT_ID: Final = 0x00100021
BURNED_IN_ANNOTATION: Final = 0x00280301

# UI attributes whose values name a class, a scheme, a syntax or a template, never an
# instance: taken from pydicom's PS3.6 dictionary by keyword.
_CLASS_KEYWORD: Final = re.compile(
    r"SOPClass|ClassUID|TransferSyntax|CodingSchemeUID|ContextGroupExtensionCreatorUID"
    r"|ContextUID|MappingResourceUID|TemplateExtension|SegmentationTemplateUID"
)
CLASS_UID_TAGS: Final[frozenset[int]] = frozenset(
    tag
    for tag, (vr, _vm, _name, _retired, keyword) in DicomDictionary.items()
    if vr == "UI" and _CLASS_KEYWORD.search(keyword)
)

_TEXT_VRS: Final = frozenset(
    {
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UI",
        "UR",
        "UT",
    }
)
_FREE_TEXT_VRS: Final = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_DATE_VRS: Final = frozenset({"DA", "DT", "TM"})
# VRs of unlisted or kept attributes that the walk must look into.
# X/Z sequences that are Type 2 in the IODs that carry them (PS3.3 C.4.15 Acquisition
# Context Module), so emptied rather than removed.
_TYPE2_SEQUENCES: Final = frozenset({0x00400555})
_INSPECTED_VRS: Final = frozenset({"SQ", "UI", "DA", "DT", "TM"})
_IDENTIFYING_TAGS: Final = identifying_tags()
_NUMERIC_VRS: Final = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "DS", "IS"})
_DUMMY_TEXT: Final[dict[str, str]] = {
    "PN": "ANONYMOUS",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
    "DS": "0",
    "IS": "0",
    "UR": "",
}
_DUMMY_BYTES: Final = b"\x00\x00"


def _is_class_uid(tag: int, value: str) -> bool:
    return tag in CLASS_UID_TAGS or value in UID_dictionary


class _Instance:
    """What one call of :meth:`Anonymizer.anonymize` needs while it walks a dataset."""

    __slots__ = ("patient", "scrub")

    def __init__(self, patient: PatientPseudonym, scrub: re.Pattern[str] | None) -> None:
        self.patient = patient
        self.scrub = scrub


class Anonymizer:
    """Applies PS3.15 E.1-1 with the given Options under a per-installation secret.

    ``secret`` (16 bytes or more) keys every pseudonym (see
    :mod:`radpacs.deid.pseudonyms`); ``options`` are :class:`Option` members or their
    values; ``store`` receives the original identity behind each patient pseudonym.
    One Anonymizer may be reused for any number of instances, and the same secret gives
    the same output for the same input on any machine.
    """

    def __init__(
        self,
        secret: bytes | str,
        options: Iterable[Option | str] = (),
        *,
        store: PseudonymStore | None = None,
    ) -> None:
        self.profile = Profile(options)
        self.pseudonyms = Pseudonyms(secret)
        self.store = store
        opts = self.profile.options
        self._retain_uids = Option.RETAIN_UIDS in opts
        if Option.RETAIN_LONGITUDINAL_FULL_DATES in opts:
            self._unlisted_date_action = Action.KEEP
            self._temporal = "UNMODIFIED"
        elif Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in opts:
            self._unlisted_date_action = Action.CLEAN
            self._temporal = "MODIFIED"
        else:
            self._unlisted_date_action = Action.EMPTY
            self._temporal = "REMOVED"
        self._method = [DEIDENTIFICATION_METHOD, *(o.code[1][:64] for o in Option if o in opts)]

    def anonymize(
        self, dataset: Dataset, *, pixels_checked: bool = False, copy_first: bool = True
    ) -> Dataset:
        """The de-identified dataset; ``dataset`` is left alone unless ``copy_first`` is False.

        Raises :class:`~radpacs.errors.InvalidInput` when Burned In Annotation is YES and
        ``pixels_checked`` is False.
        """
        burned = dataset.get(BURNED_IN_ANNOTATION)
        if burned is not None and str(burned.value).strip().upper() == "YES" and not pixels_checked:
            raise InvalidInput(
                "the instance has Burned In Annotation (0028,0301) YES: its pixels may show "
                "identifying text; check them and repeat the request with pixels_checked=true"
            )
        result = copy.deepcopy(dataset) if copy_first else dataset
        instance = self._begin(result)
        self._walk(result, instance)
        self._mark(result)
        self._replace_file_meta(result)
        return result

    # -- one instance -----------------------------------------------------------------

    def _begin(self, ds: Dataset) -> _Instance:
        patient_id = _text(ds.get(PATIENT_ID))
        patient_name = _text(ds.get(PATIENT_NAME))
        issuer = _text(ds.get(ISSUER_OF_PATIENT_ID))
        if not patient_id and not patient_name:
            # No patient identity at all: a patient of its own per study.
            patient_id = "study:" + _text(ds.get(0x0020000D))
        patient = self.pseudonyms.patient(patient_id, patient_name, issuer)
        if self.store is not None:
            self.store.record(PatientRecord(patient.patient_id, patient_id, patient_name, issuer))
        return _Instance(patient, self._scrub_pattern(ds))

    def _scrub_pattern(self, ds: Dataset) -> re.Pattern[str] | None:
        """A pattern matching every identifying text value at the top level of ``ds``.

        Identifying means: an attribute the Basic Profile does not keep (D, Z, X, U and
        the compound codes) and that no Option cleans (descriptors are what gets
        cleaned, not what is struck out). Person names count by each component too.
        """
        tokens: set[str] = set()
        for tag in _IDENTIFYING_TAGS.intersection(ds.keys()):
            try:
                elem = ds[tag]
            except Exception:  # unreadable values are removed by the walk
                continue
            if elem.VR not in _FREE_TEXT_VRS and elem.VR not in {"DA", "DT"}:
                continue
            for value in _values(elem):
                text = str(value).strip()
                tokens.add(text)
                if elem.VR == "PN":
                    tokens.update(re.split(r"[\^= ]+", text))
        tokens = {t for t in tokens if len(t) >= 3}
        if not tokens:
            return None
        alternatives = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
        return re.compile(alternatives, re.IGNORECASE)

    def _walk(self, ds: Dataset, instance: _Instance) -> None:
        profile = self.profile
        for tag in list(ds.keys()):
            group = tag >> 16
            if group & 1:
                self._private(ds, tag)
                continue
            if (
                tag & 0xFFFF == 0
                or group == 0x0002
                or 0x5000 <= group <= 0x50FF
                or 0x6000 <= group <= 0x60FF
            ):
                # group lengths, stray file meta, curves and overlays (see module docstring)
                if tag & 0xFFFF == 0 or group == 0x0002 or group % 2 == 0:
                    del ds[tag]
                continue
            action = profile.action_for(tag)
            if action is Action.REMOVE:
                del ds[tag]
                continue
            vr = _vr(ds, tag)
            if vr not in _INSPECTED_VRS and " or " not in vr and action in (None, Action.KEEP):
                continue  # kept as read: no need to decode the value
            try:
                elem = ds[tag]
            except Exception:  # a value pydicom cannot parse cannot be checked
                del ds[tag]
                continue
            if action is None:
                self._unlisted(ds, elem, instance)
            else:
                self._apply(ds, elem, action, instance)

    def _unlisted(self, ds: Dataset, elem: DataElement, instance: _Instance) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._walk_items(elem, instance)
        elif vr == "UI":
            if not self._retain_uids:
                self._replace_uids(elem)
        elif vr in _DATE_VRS:
            self._apply(ds, elem, self._unlisted_date_action, instance)

    def _apply(self, ds: Dataset, elem: DataElement, action: Action, instance: _Instance) -> None:
        tag = elem.tag
        vr = elem.VR
        if action is Action.REMOVE:
            del ds[tag]
        elif action is Action.KEEP:
            if vr == "SQ":
                self._walk_items(elem, instance)
        elif tag == PATIENT_ID:
            elem.value = instance.patient.patient_id
        elif tag == PATIENT_NAME:
            elem.value = instance.patient.patient_name
        elif action is Action.EMPTY and vr == "SQ" and self._remove_empty_sequence(tag):
            del ds[tag]
        elif action is Action.EMPTY:
            elem.value = Sequence() if vr == "SQ" else ("" if vr in _TEXT_VRS else None)
        elif vr == "SQ":  # D, C, U on a sequence: the profile applies to its items
            self._walk_items(elem, instance)
        elif vr == "UI":
            if action is Action.UID or not self._retain_uids:
                self._replace_uids(elem, listed=True)
        elif action is Action.UID:
            elem.value = "" if vr in _TEXT_VRS else None
        elif action is Action.CLEAN:
            self._clean(elem, instance)
        else:  # Action.DUMMY
            elem.value = _dummy(vr)

    def _remove_empty_sequence(self, tag: int) -> bool:
        """X/Z on a sequence: remove it, unless it is Type 2 where it occurs.

        A sequence present with no item is valid only where it is Type 2; where it is Type 3
        its module asks for one or more items (dciodvfy: "Bad Sequence number of Items 0"),
        so an emptied Referenced Study Sequence broke every RT Structure Set.
        """
        return (
            self.profile.raw_action_for(tag) is Action.REMOVE_OR_EMPTY
            and tag not in _TYPE2_SEQUENCES
        )

    def _walk_items(self, elem: DataElement, instance: _Instance) -> None:
        for item in elem.value or ():
            self._walk(item, instance)

    def _replace_uids(self, elem: DataElement, *, listed: bool = False) -> None:
        """Replace instance UIDs; a UID the table lists is replaced even in a class-like
        attribute (e.g. Manufacturer's Device Class UID, U), a registered UID never."""
        tag = -1 if listed else int(elem.tag)
        uid = self.pseudonyms.uid
        value = elem.value
        if not value:
            return
        if isinstance(value, MultiValue | list):
            elem.value = [v if not v or _is_class_uid(tag, v) else uid(v) for v in value]
        elif not _is_class_uid(tag, str(value)):
            elem.value = uid(str(value))

    def _clean(self, elem: DataElement, instance: _Instance) -> None:
        vr = elem.VR
        days = instance.patient.date_shift_days
        if vr == "DA":
            elem.value = _map_values(elem.value, lambda v: shift_date(v, days))
        elif vr == "DT":
            elem.value = _map_values(elem.value, lambda v: shift_datetime(v, days))
        elif vr in _FREE_TEXT_VRS and instance.scrub is not None:
            pattern = instance.scrub
            elem.value = _map_values(elem.value, lambda v: pattern.sub("*", v))
        # TM under Modified Dates: whole-day shifts leave times of day as they were.

    def _private(self, ds: Dataset, tag: int) -> None:
        if self.profile.private_action is Action.REMOVE:
            del ds[tag]
            return
        if 0x0010 <= tag & 0xFFFF <= 0x00FF:  # Private Creator
            return
        try:
            vr = ds[tag].VR
        except Exception:  # unreadable: not known safe
            vr = "UN"
        if vr not in _NUMERIC_VRS:
            del ds[tag]

    # -- marks and file meta --------------------------------------------------------------

    def _mark(self, ds: Dataset) -> None:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = self._method
        codes = Sequence()
        for value, meaning in self.profile.codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = codes
        ds.LongitudinalTemporalInformationModified = self._temporal

    def _replace_file_meta(self, ds: Dataset) -> None:
        old = getattr(ds, "file_meta", None)
        if hasattr(ds, "preamble"):
            ds.preamble = b"\x00" * 128
        if old is None:
            return
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(
            str(ds.get("SOPClassUID", old.get("MediaStorageSOPClassUID", "")))
        )
        sop_instance = str(ds.get("SOPInstanceUID", ""))
        if not sop_instance and old.get("MediaStorageSOPInstanceUID"):
            sop_instance = str(old.MediaStorageSOPInstanceUID)
            if not self._retain_uids:
                sop_instance = self.pseudonyms.uid(sop_instance)
        meta.MediaStorageSOPInstanceUID = UID(sop_instance)
        if "TransferSyntaxUID" in old:
            meta.TransferSyntaxUID = old.TransferSyntaxUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "RADPACS_DEID"
        ds.file_meta = meta


def _vr(ds: Dataset, tag: int) -> str:
    """The VR of ``ds[tag]`` without decoding its value (PS3.6 VR for implicit or UN).

    A raw element read with implicit VR gets its PS3.6 VR recorded, so that it can be
    written in an explicit VR transfer syntax without being decoded.
    """
    raw = ds.get_item(tag)
    vr = raw.VR
    if vr is None or vr == "UN":
        try:
            found = str(dictionary_VR(tag))
        except KeyError:
            found = "UN"
        if vr is None and isinstance(raw, RawDataElement) and " or " not in found:
            ds[tag] = raw._replace(VR=found)
        return found
    return str(vr)


def _text(elem: DataElement | Any) -> str:
    if elem is None:
        return ""
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _values(elem: DataElement) -> list[Any]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list):
        return [v for v in value if v]
    return [value]


def _map_values(value: Any, func: Any) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, MultiValue | list):
        return [func(str(v)) for v in value]
    return func(str(value))


def _dummy(vr: str) -> Any:
    if vr in _DUMMY_TEXT:
        return _DUMMY_TEXT[vr]
    if vr in _TEXT_VRS:
        return "ANONYMIZED"
    if vr in _NUMERIC_VRS:
        return 0
    if vr == "AT":
        return 0
    return _DUMMY_BYTES
