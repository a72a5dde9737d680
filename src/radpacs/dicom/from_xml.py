"""DICOM JSON data sets (PS3.18 F.2) from Native DICOM Model XML documents (PS3.19 A.1), for
STOW-RS of metadata and bulk data as ``multipart/related; type="application/dicom+xml"``
(PS3.18 10.5.1.2).

:func:`xml_to_json` reads one ``NativeDicomModel`` document into the DICOM JSON object that
:func:`radpacs.dicom.from_json.instance_from_json` turns into a PS3.10 file, so the XML and JSON
forms of STOW share one way of joining bulk data and writing the file. It reads what
:mod:`radpacs.dicom.xml` writes and what the standard allows beside it:

- ``DicomAttribute`` with ``tag`` and ``vr`` (the dictionary's VR when ``vr`` is absent);
- ``Value number="n"`` (numbers for the binary numeric VRs and IS/DS, text otherwise, an empty
  element as an empty value), ``PersonName number="n"`` with ``Alphabetic``/``Ideographic``/
  ``Phonetic`` groups of name components, ``Item number="n"`` for sequences (nested at most
  :data:`radpacs.dicom.limits.MAX_DEPTH` deep), ``InlineBinary`` (Base64) and
  ``BulkData uri="..."``; the namespace is optional.

The document is parsed with defusedxml: a DTD, entity declaration or external reference is
refused before anything is expanded (no "billion laughs", no file or network access). Anything
else malformed is InvalidInput naming it.

Example::

    item = xml_to_json(b'<NativeDicomModel>...</NativeDicomModel>')
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydicom.datadict import dictionary_VR

from radpacs.dicom.limits import MAX_DEPTH
from radpacs.errors import InvalidInput

__all__ = ["xml_to_json"]

_NAME_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_INTEGER_VRS = frozenset({"IS", "SL", "SS", "SV", "UL", "US", "UV"})
_FLOAT_VRS = frozenset({"DS", "FD", "FL"})


def _local(element: Element) -> str:
    """The element's name without its namespace."""
    return element.tag.rpartition("}")[2]


def _numbered(element: Element, name: str) -> list[Element]:
    """The children called ``name``, ordered by their ``number`` attribute (1, 2, ...)."""
    children = [child for child in element if _local(child) == name]
    try:
        return sorted(children, key=lambda child: int(child.get("number", "0")))
    except ValueError as exc:
        raise InvalidInput(f"a <{name}> has a number that is not an integer: {exc}") from exc


def _number(text: str, vr: str, tag: str) -> int | float:
    try:
        return int(text) if vr in _INTEGER_VRS else float(text)
    except ValueError as exc:
        raise InvalidInput(f"attribute {tag} ({vr}): {text!r} is not a number") from exc


def _value(element: Element, vr: str, tag: str) -> Any:
    text = (element.text or "").strip() if vr not in ("ST", "LT", "UT") else element.text or ""
    if not text:
        return None
    if vr in _INTEGER_VRS or vr in _FLOAT_VRS:
        return _number(text, vr, tag)
    return text


def _person_name(element: Element) -> dict[str, str]:
    name: dict[str, str] = {}
    for group in element:
        kind = _local(group)
        if kind not in ("Alphabetic", "Ideographic", "Phonetic"):
            continue
        parts = {_local(child): (child.text or "") for child in group}
        components = [parts.get(component, "") for component in _NAME_COMPONENTS]
        while components and not components[-1]:
            components.pop()
        name[kind] = "^".join(components)
    return name


def _attribute(element: Element, depth: int) -> tuple[str, dict[str, Any]]:
    tag = (element.get("tag") or "").upper()
    if len(tag) != 8 or any(c not in "0123456789ABCDEF" for c in tag):
        raise InvalidInput(f"a <DicomAttribute> has no valid tag (8 hex digits): {tag!r}")
    vr = element.get("vr") or ""
    if not vr:
        try:
            vr = str(dictionary_VR(int(tag, 16)))
        except KeyError as exc:
            raise InvalidInput(f"attribute {tag} has no vr and is not in the dictionary") from exc
    result: dict[str, Any] = {"vr": vr}
    children = {_local(child): child for child in element}
    if "BulkData" in children:
        uri = children["BulkData"].get("uri")
        if not uri:
            raise InvalidInput(f"attribute {tag}: <BulkData> without a uri (uuid is not taken)")
        result["BulkDataURI"] = uri
    elif "InlineBinary" in children:
        result["InlineBinary"] = "".join((children["InlineBinary"].text or "").split())
    elif vr == "SQ":
        if depth >= MAX_DEPTH:
            raise InvalidInput(f"sequences nest deeper than {MAX_DEPTH} levels")
        items = [_dataset(item, depth + 1) for item in _numbered(element, "Item")]
        if items:
            result["Value"] = items
    elif vr == "PN":
        names = [_person_name(name) for name in _numbered(element, "PersonName")]
        if names:
            result["Value"] = names
    else:
        values = [_value(value, vr, tag) for value in _numbered(element, "Value")]
        if values:
            result["Value"] = values
    return tag, result


def _dataset(element: Element, depth: int) -> dict[str, Any]:
    dataset: dict[str, Any] = {}
    for child in element:
        if _local(child) != "DicomAttribute":
            raise InvalidInput(f"<{_local(child)}> where a <DicomAttribute> belongs")
        tag, attribute = _attribute(child, depth)
        dataset[tag] = attribute
    return dataset


def xml_to_json(document: bytes) -> dict[str, Any]:
    """The DICOM JSON object of one PS3.19 ``NativeDicomModel`` document (UTF-8 or as declared).

    Raises InvalidInput for a document that is not well-formed XML, declares a DTD or entities,
    or is not a Native DICOM Model data set."""
    try:
        root = SafeET.fromstring(document, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise InvalidInput(
            f"the XML declares a DTD, entities or external references, which are refused: {exc}"
        ) from exc
    except ParseError as exc:
        raise InvalidInput(f"the XML is not well-formed: {exc}") from exc
    if _local(root) != "NativeDicomModel":
        raise InvalidInput(f"the XML root is <{_local(root)}>, not <NativeDicomModel> (PS3.19)")
    return _dataset(root, 0)
