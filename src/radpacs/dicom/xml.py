"""Native DICOM Model (PS3.19 A.1) XML, written from the DICOM JSON model (PS3.18 F.2).

The archive keeps every instance's DICOM JSON; :func:`json_to_xml` turns one JSON object into a
``NativeDicomModel`` document so that QIDO-RS and metadata can be answered as
multipart/related; type="application/dicom+xml" (PS3.18 8.7.4) without reading the files.

- ``<DicomAttribute tag="00100010" vr="PN" keyword="PatientName">``, private tags with
  ``privateCreator`` when the JSON says nothing more (keyword left out);
- values as ``<Value number="n">``, person names as ``<PersonName number="n">`` with
  ``Alphabetic``/``Ideographic``/``Phonetic`` groups split into name components;
- sequences as ``<Item number="n">``; ``InlineBinary`` as is; ``BulkDataURI`` as
  ``<BulkData uri="..."/>``.

Example::

    json_to_xml({"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}})
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from pydicom.datadict import keyword_for_tag

__all__ = ["NATIVE_DICOM_MODEL_NS", "json_to_xml"]

NATIVE_DICOM_MODEL_NS = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_NAME_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


def _keyword(tag: str) -> str:
    try:
        return str(keyword_for_tag(int(tag, 16)))
    except ValueError:
        return ""


def _person_name(parent: ET.Element, number: int, value: Any) -> None:
    name = ET.SubElement(parent, "PersonName", number=str(number))
    groups = value if isinstance(value, dict) else {"Alphabetic": str(value)}
    for group in ("Alphabetic", "Ideographic", "Phonetic"):
        text = groups.get(group)
        if not text:
            continue
        element = ET.SubElement(name, group)
        for component, part in zip(_NAME_COMPONENTS, str(text).split("^"), strict=False):
            if part:
                ET.SubElement(element, component).text = part


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _attributes(parent: ET.Element, dataset: dict[str, Any]) -> None:
    for tag in sorted(dataset):
        attribute = dataset[tag]
        vr = str(attribute.get("vr", "UN"))
        element = ET.SubElement(parent, "DicomAttribute", {"tag": tag.upper(), "vr": vr})
        keyword = _keyword(tag)
        if keyword:
            element.set("keyword", keyword)
        if "BulkDataURI" in attribute:
            ET.SubElement(element, "BulkData", uri=str(attribute["BulkDataURI"]))
            continue
        if "InlineBinary" in attribute:
            ET.SubElement(element, "InlineBinary").text = str(attribute["InlineBinary"])
            continue
        for number, value in enumerate(attribute.get("Value", []), start=1):
            if vr == "SQ":
                item = ET.SubElement(element, "Item", number=str(number))
                _attributes(item, value or {})
            elif vr == "PN":
                _person_name(element, number, value)
            elif value is None:
                ET.SubElement(element, "Value", number=str(number))
            else:
                ET.SubElement(element, "Value", number=str(number)).text = _value_text(value)


def json_to_xml(dataset: dict[str, Any]) -> bytes:
    """One DICOM JSON object as a UTF-8 ``NativeDicomModel`` document (PS3.19 A.1)."""
    root = ET.Element("NativeDicomModel", xmlns=NATIVE_DICOM_MODEL_NS)
    root.set("xml:space", "preserve")
    _attributes(root, dataset)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
