"""C-FIND identifiers as QIDO-RS queries over the archive (PS3.4 C.4.1, C.6).

An identifier's non-empty attributes that the index holds become the same matching keys a
QIDO-RS request would carry, so DIMSE and DICOMweb share one matcher
(:mod:`radpacs.archive.query`: single value, ``*`` and ``?`` wildcards, UID lists, date and
time ranges, case-insensitive person names). Empty attributes are return keys. A non-empty
attribute the index does not hold is returned as a return key, its value not matched
(PS3.4 C.2.2.1.2 lets an SCP skip matching on optional keys it does not support).

PATIENT level answers one response per patient, from the studies that match the patient
keys; STUDY, SERIES and IMAGE map to the QIDO levels. The same matching selects what a C-MOVE
or C-GET sends (:func:`instances_for`).

Example::

    for response in find(archive, identifier, QueryModel.STUDY_ROOT, "RADPACS"):
        print(response.PatientName, response.StudyInstanceUID)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

from radpacs.archive import Archive, InstanceFile, Level, parse_query
from radpacs.archive.query import ATTRIBUTES, Query
from radpacs.dicom.tags import tag_hex
from radpacs.errors import InvalidQuery

__all__ = ["FindRequest", "QueryModel", "find", "instances_for", "parse_identifier"]

PAGE = 500
_LEVELS = {"PATIENT": None, "STUDY": Level.STUDY, "SERIES": Level.SERIES, "IMAGE": Level.INSTANCE}
_PATIENT_KEYWORDS = {"PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate"}
_PATIENT_KEYWORDS |= {"PatientSex"}
_NOT_KEYS = {
    0x00080005,  # SpecificCharacterSet
    0x00080052,  # QueryRetrieveLevel
    0x00080054,  # RetrieveAETitle: answered, never matched
    0x00080056,  # InstanceAvailability
}
_PATIENT_COUNTS = (0x00201200, 0x00201202, 0x00201204)  # studies, series, instances


class QueryModel(StrEnum):
    """The information model of a query (PS3.4 C.6.1 patient root, C.6.2 study root)."""

    PATIENT_ROOT = "patient"
    STUDY_ROOT = "study"


@dataclass
class FindRequest:
    """A checked C-FIND identifier: its level, the QIDO query, the keys to answer."""

    level: str
    query: Query
    keys: list[DataElement] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _text(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(item) for item in value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def parse_identifier(
    identifier: Dataset, model: QueryModel | str, max_results: int = PAGE
) -> FindRequest:
    """The QIDO query an identifier asks for; InvalidQuery for a bad level or value."""
    model = QueryModel(model)
    level_text = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level_text not in _LEVELS:
        raise InvalidQuery(
            f"QueryRetrieveLevel {level_text!r} is not PATIENT, STUDY, SERIES or IMAGE"
        )
    if level_text == "PATIENT" and model is QueryModel.STUDY_ROOT:
        raise InvalidQuery("the study root model has no PATIENT level")
    qido_level = _LEVELS[level_text] or Level.STUDY
    params: list[tuple[str, str]] = []
    keys: list[DataElement] = []
    ignored: list[str] = []
    for element in identifier:
        tag = int(element.tag)
        if tag in _NOT_KEYS or element.tag.group in (0x0000, 0x0002):
            continue
        keys.append(element)
        attribute = ATTRIBUTES.get(tag)
        value = "" if element.VR == "SQ" else _text(element).strip()
        if attribute is None or (level_text == "PATIENT" and attribute.keyword not in
                                 _PATIENT_KEYWORDS):  # fmt: skip
            if value:
                ignored.append(element.keyword or tag_hex(tag))
            if attribute is None and tag not in _PATIENT_COUNTS:
                params.append(("includefield", tag_hex(tag)))
            continue
        if attribute.level.depth > qido_level.depth:
            continue  # a lower level's key: returned empty
        if value and value != "*":
            params.append((attribute.keyword, value))
        else:
            params.append(("includefield", attribute.keyword))
    query = parse_query(qido_level, params, max_results=max_results)
    return FindRequest(level_text, query, keys, ignored)


def _pages(archive: Archive, query: Query) -> Iterator[dict[str, object]]:
    query.offset = 0
    while True:
        result = archive.search(query)
        yield from result.matches
        if not result.has_more:
            return
        query.offset += query.limit


def _values(vr: str, element: dict[str, object]) -> object:
    """The pydicom value of one DICOM JSON element of a QIDO match (PS3.18 F.2)."""
    values = element.get("Value")
    if not isinstance(values, list) or not values:
        return None
    if vr == "PN":
        values = [str(v.get("Alphabetic", "")) if isinstance(v, dict) else str(v) for v in values]
    return values[0] if len(values) == 1 else values


def _answer(request: FindRequest, match: dict[str, object], ae_title: str, charset: str) -> Dataset:
    """The C-FIND response: each requested key, from the match or empty (PS3.4 C.2.2.1)."""
    response = Dataset()
    response.SpecificCharacterSet = charset
    response.QueryRetrieveLevel = request.level
    for key in request.keys:
        element = match.get(tag_hex(int(key.tag)))
        if not isinstance(element, dict):
            response.add_new(key.tag, key.VR, [] if key.VR == "SQ" else None)
        elif key.VR == "SQ" or element.get("vr") == "SQ":
            found = Dataset.from_json({tag_hex(int(key.tag)): element})
            response[key.tag] = found[key.tag]
        else:
            response.add_new(key.tag, str(element.get("vr", key.VR)), _values(key.VR, element))
    response.RetrieveAETitle = ae_title  # PS3.4 C.4.1.1.3.2: in every response
    return response


def find(
    archive: Archive,
    identifier: Dataset,
    model: QueryModel | str,
    ae_title: str,
) -> Iterator[Dataset]:
    """The C-FIND responses to ``identifier``, one Dataset per match, in the archive's order."""
    request = parse_identifier(identifier, model)
    charset = "ISO_IR 192"
    if request.level != "PATIENT":
        for match in _pages(archive, request.query):
            yield _answer(request, match, ae_title, charset)
        return
    patients: dict[tuple[str, str], list[dict[str, object]]] = {}
    for match in _pages(archive, request.query):
        key = (_json_text(match, "00100020"), _json_text(match, "00100021"))
        patients.setdefault(key, []).append(match)
    for matches in patients.values():
        first = dict(matches[0])
        first["00201200"] = {"vr": "IS", "Value": [len(matches)]}
        first["00201202"] = {"vr": "IS", "Value": [sum(_json_int(m, "00201206") for m in matches)]}
        first["00201204"] = {"vr": "IS", "Value": [sum(_json_int(m, "00201208") for m in matches)]}
        yield _answer(request, first, ae_title, charset)


def _json_text(match: dict[str, object], key: str) -> str:
    element = match.get(key)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if values else ""


def _json_int(match: dict[str, object], key: str) -> int:
    text = _json_text(match, key)
    return int(text) if text.isdigit() else 0


def instances_for(
    archive: Archive, identifier: Dataset, model: QueryModel | str
) -> list[InstanceFile]:
    """The stored instances a C-MOVE or C-GET identifier names (PS3.4 C.4.2.2.1), in
    series and instance order; an empty list when nothing matches."""
    request = parse_identifier(identifier, model)
    instance_query = parse_query(
        Level.INSTANCE, _uid_keys(identifier, request.level), max_results=PAGE
    )
    wanted: dict[str, set[str]] = {}
    for match in _pages(archive, instance_query):
        wanted.setdefault(_json_text(match, "0020000D"), set()).add(_json_text(match, "00080018"))
    files: list[InstanceFile] = []
    for study_uid, sops in wanted.items():
        files.extend(f for f in archive.instance_files(study_uid) if f.sop_uid in sops)
    return files


def _uid_keys(identifier: Dataset, level: str) -> list[tuple[str, str]]:
    """The unique keys down to ``level`` (PS3.4 C.4.2.2.1): what a retrieve may name."""
    names = ["PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    depth = ["PATIENT", "STUDY", "SERIES", "IMAGE"].index(level)
    keys = []
    for keyword in names[: depth + 1]:
        element = identifier.data_element(keyword) if keyword in identifier else None
        value = _text(element).strip() if element is not None else ""
        if value and value != "*":
            keys.append((keyword, value))
    if not keys:
        raise InvalidQuery(f"a {level}-level retrieve names no {names[depth]}")
    return keys
