"""DICOM JSON Model (PS3.18 Annex F): datasets to JSON, with large binary values as BulkDataURI.

``dataset_to_json`` turns an instance into the object WADO-RS metadata returns. Binary values
longer than the threshold become ``BulkDataURI`` entries relative to the DICOMweb root
(``/studies/{study}/series/{series}/instances/{sop}/bulkdata/{path}``, where ``path`` is the tag,
and ``tag/item/tag`` inside sequences); :func:`absolute_bulkdata_uris` prefixes them with the
root of a given request when the JSON is served.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydicom import Dataset

from radpacs.dicom._fastjson import fast_encoding, raw_to_json
from radpacs.dicom.tags import tag_hex

__all__ = [
    "BULK_DATA_THRESHOLD",
    "absolute_bulkdata_uris",
    "attribute",
    "dataset_to_json",
    "json_to_bytes",
]

BULK_DATA_THRESHOLD = 1024
_BULK_MARK = b'"BulkDataURI":"/'

JsonObject = dict[str, Any]


def attribute(vr: str, *values: Any) -> JsonObject:
    """One DICOM JSON attribute; empty or None values give an attribute with no ``Value``.

    >>> attribute("PN", "Doe^John")
    {'vr': 'PN', 'Value': [{'Alphabetic': 'Doe^John'}]}
    """
    kept = [value for value in values if value is not None and value != ""]
    if not kept:
        return {"vr": vr}
    if vr == "PN":
        kept = [{"Alphabetic": str(value)} for value in kept]
    return {"vr": vr, "Value": kept}


def dataset_to_json(dataset: Dataset, instance_path: str) -> JsonObject:
    """The DICOM JSON of ``dataset``; bulk values refer to ``{instance_path}/bulkdata/{path}``.

    ``instance_path`` is relative to the DICOMweb root and starts with ``/studies/``.
    Elements whose value pydicom cannot encode are left out rather than failing the instance.
    Little-endian values in common character sets are encoded straight from their raw bytes
    (:mod:`radpacs.dicom._fastjson`); anything else goes through pydicom.
    """
    return _to_json(dataset, f"{instance_path}/bulkdata/", fast_encoding(dataset))


def _to_json(dataset: Dataset, prefix: str, encoding: str | None) -> JsonObject:
    result: JsonObject = {}
    # The elements as read, raw until converted, in file order (ascending in a valid file; JSON
    # objects are unordered anyway): Dataset.get_item and sorting by pydicom's tag class cost
    # more per element than encoding most values.
    for tag, raw in dataset._dict.items():
        key = tag_hex(int(tag))  # an int: pydicom's tag class compares in Python
        try:
            if encoding is not None:
                fast = raw_to_json(raw, encoding, f"{prefix}{key}")
                if fast is not None:
                    result[key] = fast
                    continue
            element = dataset[tag]
            if element.VR == "SQ":
                items = [
                    _to_json(item, f"{prefix}{key}/{index}/", encoding)
                    for index, item in enumerate(element.value)
                ]
                result[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
                continue
            result[key] = element.to_json_dict(
                bulk_data_element_handler=_BulkUri(f"{prefix}{key}"),
                bulk_data_threshold=BULK_DATA_THRESHOLD,
            )
        except Exception:  # one unencodable value must not lose the instance
            continue
    return result


class _BulkUri:
    """The bulk data handler pydicom calls for a large binary value: answers its URI."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __call__(self, _element: object) -> str:
        return self.uri


def json_to_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON, the form stored in the index and served."""
    return orjson.dumps(value)


def absolute_bulkdata_uris(body: bytes, dicomweb_root: str) -> bytes:
    """Prefix every relative BulkDataURI in serialized JSON with ``dicomweb_root``.

    Safe on compact JSON from :func:`json_to_bytes`: a string value containing the marker
    would have its quotes escaped, so only real BulkDataURI keys match.
    """
    return body.replace(_BULK_MARK, b'"BulkDataURI":"' + dicomweb_root.encode() + b"/")
