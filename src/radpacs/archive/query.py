"""QIDO-RS queries (PS3.18 10.6) as SQL over the index.

:func:`parse_query` checks the request's parameters and turns them into a :class:`Query`:
matching keys (keyword or tag), ``includefield``, ``fuzzymatching``, ``limit`` and ``offset``.
Matching follows PS3.4 C.2.2.2: single value, wildcards ``*`` and ``?``, UID lists, and date,
time and datetime ranges (``A-B``, ``A-``, ``-B``). Person names match case-insensitively;
with ``fuzzymatching=true`` each word of the value must start one of the name's components.
The keys of :data:`ATTRIBUTES` are columns of the index (fast); any other attribute is matched
on the stored DICOM JSON of the instances (:attr:`Query.residual`): a series or study matches
when one of its instances does. Sequences cannot be matched.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from radpacs.archive.index import Instance, Patient, Series, Study
from radpacs.archive.ingest import normalize_datetime, normalize_time
from radpacs.dicom.tags import keyword_of, resolve_tag, tag_hex, vr_of
from radpacs.errors import InvalidQuery

__all__ = [
    "ATTRIBUTES",
    "Attribute",
    "Kind",
    "Level",
    "Query",
    "ResidualMatch",
    "parse_patient_query",
    "parse_query",
]

ResidualMatch = Callable[[dict[str, Any]], bool]
"""A test of one stored instance's DICOM JSON, for a key the index does not hold."""


class Level(StrEnum):
    """The level a QIDO-RS request searches."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"

    @property
    def depth(self) -> int:
        return {"study": 0, "series": 1, "instance": 2}[self.value]


class Kind(Enum):
    """How an attribute's value is matched."""

    TEXT = "text"
    UID = "uid"
    PERSON_NAME = "pn"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    NUMBER = "number"
    MODALITIES = "modalities"
    COMPUTED = "computed"


@dataclass(frozen=True)
class Attribute:
    """A DICOM attribute the index knows: its level, column, matching kind and VR."""

    keyword: str
    tag: int
    vr: str
    level: Level
    kind: Kind
    column: InstrumentedAttribute[Any] | None
    match_column: InstrumentedAttribute[Any] | None = None
    returned_by_default: bool = True


def _a(
    keyword: str,
    tag: int,
    vr: str,
    level: Level,
    kind: Kind,
    column: InstrumentedAttribute[Any] | None,
    match_column: InstrumentedAttribute[Any] | None = None,
    default: bool = True,
) -> Attribute:
    return Attribute(keyword, tag, vr, level, kind, column, match_column, default)


S, R, INST = Level.STUDY, Level.SERIES, Level.INSTANCE
ATTRIBUTES: dict[int, Attribute] = {
    a.tag: a
    for a in [
        _a("PatientName", 0x00100010, "PN", S, Kind.PERSON_NAME, Patient.patient_name,
           Patient.patient_name_lower),
        _a("PatientID", 0x00100020, "LO", S, Kind.TEXT, Patient.patient_id),
        _a("IssuerOfPatientID", 0x00100021, "LO", S, Kind.TEXT, Patient.issuer, default=False),
        _a("PatientBirthDate", 0x00100030, "DA", S, Kind.DATE, Patient.birth_date),
        _a("PatientSex", 0x00100040, "CS", S, Kind.TEXT, Patient.sex),
        _a("StudyInstanceUID", 0x0020000D, "UI", S, Kind.UID, Study.study_uid),
        _a("StudyDate", 0x00080020, "DA", S, Kind.DATE, Study.study_date),
        _a("StudyTime", 0x00080030, "TM", S, Kind.TIME, Study.study_time),
        _a("AccessionNumber", 0x00080050, "SH", S, Kind.TEXT, Study.accession_number),
        _a("StudyID", 0x00200010, "SH", S, Kind.TEXT, Study.study_id),
        _a("StudyDescription", 0x00081030, "LO", S, Kind.TEXT, Study.study_description),
        _a("ReferringPhysicianName", 0x00080090, "PN", S, Kind.PERSON_NAME,
           Study.referring_physician, Study.referring_physician_lower),
        _a("ModalitiesInStudy", 0x00080061, "CS", S, Kind.MODALITIES, None),
        _a("NumberOfStudyRelatedSeries", 0x00201206, "IS", S, Kind.COMPUTED, None),
        _a("NumberOfStudyRelatedInstances", 0x00201208, "IS", S, Kind.COMPUTED, None),
        _a("SeriesInstanceUID", 0x0020000E, "UI", R, Kind.UID, Series.series_uid),
        _a("Modality", 0x00080060, "CS", R, Kind.TEXT, Series.modality),
        _a("SeriesNumber", 0x00200011, "IS", R, Kind.NUMBER, Series.series_number),
        _a("SeriesDescription", 0x0008103E, "LO", R, Kind.TEXT, Series.series_description),
        _a("BodyPartExamined", 0x00180015, "CS", R, Kind.TEXT, Series.body_part, default=False),
        _a("PerformedProcedureStepStartDate", 0x00400244, "DA", R, Kind.DATE,
           Series.pps_start_date),
        _a("PerformedProcedureStepStartTime", 0x00400245, "TM", R, Kind.TIME,
           Series.pps_start_time),
        _a("NumberOfSeriesRelatedInstances", 0x00201209, "IS", R, Kind.COMPUTED, None),
        _a("SOPInstanceUID", 0x00080018, "UI", INST, Kind.UID, Instance.sop_uid),
        _a("SOPClassUID", 0x00080016, "UI", INST, Kind.UID, Instance.sop_class_uid),
        _a("InstanceNumber", 0x00200013, "IS", INST, Kind.NUMBER, Instance.instance_number),
        _a("Rows", 0x00280010, "US", INST, Kind.NUMBER, Instance.rows),
        _a("Columns", 0x00280011, "US", INST, Kind.NUMBER, Instance.columns),
        _a("BitsAllocated", 0x00280100, "US", INST, Kind.NUMBER, Instance.bits_allocated),
        _a("NumberOfFrames", 0x00280008, "IS", INST, Kind.NUMBER, Instance.number_of_frames),
        _a("ContentDate", 0x00080023, "DA", INST, Kind.DATE, Instance.content_date, default=False),
        _a("ContentTime", 0x00080033, "TM", INST, Kind.TIME, Instance.content_time, default=False),
        _a("AcquisitionDateTime", 0x0008002A, "DT", INST, Kind.DATETIME,
           Instance.acquisition_datetime, default=False),
    ]
}  # fmt: skip
_PARAMETERS = {"includefield", "fuzzymatching", "limit", "offset"}
_DATE = re.compile(r"^\d{8}$")


@dataclass
class Query:
    """A checked QIDO-RS request."""

    level: Level
    study_uid: str | None = None
    series_uid: str | None = None
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    include: set[int] = field(default_factory=set)
    include_all: bool = False
    fuzzy: bool = False
    limit: int = 1000
    offset: int = 0
    limited_by_server: bool = False
    residual: list[ResidualMatch] = field(default_factory=list)  # keys matched on metadata

    def returned(self, attribute: Attribute) -> bool:
        """Whether an indexed attribute appears in each result of this query."""
        if attribute.level.depth > self.level.depth:
            return False
        if attribute.kind is Kind.COMPUTED and attribute.level is not self.level:
            return False
        return attribute.returned_by_default or self.include_all or attribute.tag in self.include

    @property
    def extra_tags(self) -> set[int]:
        """includefield tags the index does not hold: read from a stored instance."""
        return {tag for tag in self.include if tag not in ATTRIBUTES}


_MAX_INT_PARAM = 2**53  # far below the 64-bit integers databases take for OFFSET and LIMIT


def _int_param(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidQuery(f"{name}={value[:40]!r} is not an integer") from None
    if number < minimum:
        raise InvalidQuery(f"{name}={value} must be at least {minimum}")
    if number > _MAX_INT_PARAM:
        raise InvalidQuery(f"{name}={value[:40]} must be at most 2^53")
    return number


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _text_condition(column: Any, value: str) -> ColumnElement[bool]:
    if "*" in value or "?" in value:
        return column.like(_like(value), escape="\\")  # type: ignore[no-any-return]
    return column == value  # type: ignore[no-any-return]


def _person_name_condition(column: Any, value: str, fuzzy: bool) -> ColumnElement[bool]:
    lowered = value.lower()
    if not fuzzy:
        return _text_condition(column, lowered)
    words = [word for word in re.split(r"[\s^=,]+", lowered.replace("*", "")) if word]
    if not words:
        return _text_condition(column, lowered)
    per_word = []
    for word in words:
        start = _like(word) + "%"
        per_word.append(
            or_(
                column.like(start, escape="\\"),
                column.like("%^" + start, escape="\\"),
                column.like("% " + start, escape="\\"),
            )
        )
    return and_(*per_word)


def _range_condition(
    column: Any, value: str, keyword: str, normalize: Any, upper_fill: str
) -> ColumnElement[bool]:
    def bound(text: str, upper: bool) -> str:
        normal: str = normalize(text)
        if not normal:
            raise InvalidQuery(f"{keyword}={value!r}: {text!r} is not a valid value")
        if upper:
            # A bound given to the second or day covers its whole span.
            given = len(text.split(".")[0]) if keyword != "date" else 8
            return normal[:given] + upper_fill[given:] if upper_fill else normal
        return normal

    if "-" in value and value.count("-") == 1:
        low, high = (part.strip() for part in value.split("-"))
        if not low and not high:
            raise InvalidQuery(f"{keyword}={value!r} is an empty range")
        conditions = [column != ""]
        if low:
            conditions.append(column >= bound(low, upper=False))
        if high:
            conditions.append(column <= bound(high, upper=True))
        return and_(*conditions)
    if "-" in value:
        raise InvalidQuery(f"{keyword}={value!r} is not a value or a range A-B")
    low, high = bound(value, upper=False), bound(value, upper=True)
    return column == low if low == high else and_(column >= low, column <= high)


def _normalize_date(text: str) -> str:
    return text if _DATE.match(text) else ""


def _condition(attribute: Attribute, value: str, fuzzy: bool) -> ColumnElement[bool]:
    column = attribute.match_column or attribute.column
    keyword = attribute.keyword
    if attribute.kind is Kind.UID:
        uids = [uid.strip() for uid in re.split(r"[,\\]", value) if uid.strip()]
        if any(not re.match(r"^[0-9.*?]+$", uid) for uid in uids):
            raise InvalidQuery(f"{keyword}={value!r} is not a UID or a list of UIDs")
        if len(uids) == 1:
            return _text_condition(column, uids[0])
        return column.in_(uids)  # type: ignore[union-attr]
    if attribute.kind is Kind.PERSON_NAME:
        return _person_name_condition(column, value, fuzzy)
    if attribute.kind is Kind.DATE:
        return _range_condition(column, value, keyword, _normalize_date, "")
    if attribute.kind is Kind.TIME:
        return _range_condition(column, value, keyword, normalize_time, "235959.999999")
    if attribute.kind is Kind.DATETIME:
        return _range_condition(column, value, keyword, normalize_datetime, "99991231235959.999999")
    if attribute.kind is Kind.NUMBER:
        numbers = [part for part in re.split(r"[,\\]", value) if part.strip()]
        try:
            parsed = [int(part) for part in numbers]
        except ValueError:
            raise InvalidQuery(f"{keyword}={value!r} is not an integer") from None
        return column == parsed[0] if len(parsed) == 1 else column.in_(parsed)  # type: ignore[union-attr,return-value]
    if attribute.kind is Kind.MODALITIES:
        modalities = [item.strip() for item in re.split(r"[,\\]", value) if item.strip()]
        return exists(
            select(Series.pk).where(Series.study_pk == Study.pk, Series.modality.in_(modalities))
        )
    if attribute.kind is Kind.COMPUTED:
        raise InvalidQuery(f"{keyword} can be returned but not matched")
    return _text_condition(column, value)


_NUMERIC_VRS = {"IS", "DS", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"}


def _value_test(tag: int, vr: str, value: str, fuzzy: bool) -> Callable[[Any], bool]:
    """A test of one value of a stored attribute against a QIDO-RS matching value (PS3.4
    C.2.2.2, as for the indexed keys: wildcards, UID lists, ranges, person names)."""
    keyword = keyword_of(tag)
    if vr == "UI":
        uids = {uid.strip() for uid in re.split(r"[,\\]", value) if uid.strip()}
        return lambda stored: str(stored) in uids
    if vr in _NUMERIC_VRS:
        try:
            numbers = {float(part) for part in re.split(r"[,\\]", value) if part.strip()}
        except ValueError:
            raise InvalidQuery(f"{keyword}={value!r} is not a number") from None
        return lambda stored: _number(stored) in numbers
    if vr in ("DA", "TM", "DT"):
        normalize: Callable[[str], str] = {
            "DA": _normalize_date,
            "TM": normalize_time,
            "DT": normalize_datetime,
        }[vr]
        ranged = value.count("-") == 1
        low_text, dash, high_text = value.partition("-") if ranged else (value, "", "")
        low = normalize(low_text.strip()) if low_text.strip() else ""
        high = normalize(high_text.strip()) if high_text.strip() else ""
        if (low_text.strip() and not low) or (high_text.strip() and not high):
            raise InvalidQuery(f"{keyword}={value!r} is not a valid value or range")
        if not dash:
            return lambda stored: normalize(str(stored)) == low
        return lambda stored: (
            bool(normalize(str(stored)))
            and (
                (not low or normalize(str(stored)) >= low)
                and (not high or normalize(str(stored))[: len(high)] <= high)
            )
        )
    if vr == "PN":
        pattern = value.lower()
        words = [word for word in re.split(r"[\s^=,]+", pattern.replace("*", "")) if word]

        def person(stored: Any) -> bool:
            name = str(stored.get("Alphabetic", "") if isinstance(stored, dict) else stored)
            name = name.lower()
            if fuzzy and words:
                parts = re.split(r"[\s^]+", name)
                return all(any(part.startswith(word) for part in parts) for word in words)
            return fnmatch.fnmatchcase(name, pattern)

        return person
    return lambda stored: fnmatch.fnmatchcase(str(stored), value)


def _number(stored: Any) -> float | None:
    try:
        return float(stored)
    except (TypeError, ValueError):
        return None


def _residual(tag: int, value: str, fuzzy: bool) -> ResidualMatch:
    """Match a key the index does not hold on an instance's stored DICOM JSON."""
    vr = vr_of(tag)
    if vr == "SQ":
        raise InvalidQuery(f"matching on the sequence {keyword_of(tag)} is not supported")
    test = _value_test(tag, vr, value, fuzzy)
    key = tag_hex(tag)

    def matches(metadata: dict[str, Any]) -> bool:
        values = (metadata.get(key) or {}).get("Value") or []
        return any(test(item) for item in values if item is not None)

    return matches


def parse_query(
    level: Level,
    params: Iterable[tuple[str, str]],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    max_results: int = 1000,
) -> Query:
    """Check QIDO-RS parameters; InvalidQuery names the first unknown or malformed one."""
    query = Query(level=level, study_uid=study_uid, series_uid=series_uid, limit=max_results)
    pairs = list(params)
    matches: list[tuple[Attribute, str]] = []
    unindexed: list[tuple[int, str]] = []
    for name, value in pairs:
        if name == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise InvalidQuery(f"fuzzymatching={value!r} must be true or false")
            query.fuzzy = value.lower() == "true"
        elif name == "limit":
            requested = _int_param("limit", value, 1)
            query.limit = min(requested, max_results)
            query.limited_by_server = requested > max_results
        elif name == "offset":
            query.offset = _int_param("offset", value, 0)
        elif name == "includefield":
            for item in re.split(r"[,\s]+", value.strip()):
                if item == "all":
                    query.include_all = True
                elif item:
                    query.include.add(resolve_tag(item))
        else:
            tag = resolve_tag(name)
            attribute = ATTRIBUTES.get(tag)
            if attribute is None:  # not indexed: matched on the stored metadata
                query.include.add(tag)
                if value.strip():
                    unindexed.append((tag, value.strip()))
                continue
            if attribute.level.depth > level.depth:
                raise InvalidQuery(
                    f"{attribute.keyword} is a {attribute.level.value}-level attribute and cannot "
                    f"be matched in a {level.value}-level search"
                )
            if attribute.kind is Kind.MODALITIES and level is not Level.STUDY:
                raise InvalidQuery("ModalitiesInStudy can be matched only in a study search")
            query.include.add(tag)
            matches.append((attribute, value))
    for attribute, value in matches:
        if value.strip():
            query.conditions.append(_condition(attribute, value.strip(), query.fuzzy))
    query.residual = [_residual(tag, value, query.fuzzy) for tag, value in unindexed]
    if study_uid:
        query.conditions.append(Study.study_uid == study_uid)
    if series_uid:
        query.conditions.append(Series.series_uid == series_uid)
    return query


def parse_patient_query(params: Iterable[tuple[str, str]], *, max_results: int = 1000) -> Query:
    """A patient-level search (beyond PS3.18, which searches from the study level down): only
    the patient attributes the index holds can be matched; the paging parameters as usual."""
    pairs = list(params)
    for name, _value in pairs:
        if name in _PARAMETERS:
            continue
        attribute = ATTRIBUTES.get(resolve_tag(name))
        if attribute is None or attribute.column is None or attribute.column.class_ is not Patient:
            raise InvalidQuery(
                f"{name} cannot be matched in a patient search; patient keys: "
                + ", ".join(
                    a.keyword
                    for a in ATTRIBUTES.values()
                    if a.column is not None and a.column.class_ is Patient
                )
            )
    return parse_query(Level.STUDY, pairs, max_results=max_results)
