"""DICOM JSON Model (PS3.18 Annex F): datasets to JSON, with large binary values as BulkDataURI.

``dataset_to_json`` turns an instance into the object WADO-RS metadata returns. Binary values
longer than the threshold become ``BulkDataURI`` entries relative to the DICOMweb root
(``/studies/{study}/series/{series}/instances/{sop}/bulkdata/{path}``, where ``path`` is the tag,
and ``tag/item/tag`` inside sequences); :func:`absolute_bulkdata_uris` prefixes them with the
root of a given request when the JSON is served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement

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


def _element_paths(dataset: Dataset, prefix: str = "") -> Iterator[tuple[int, str]]:
    """(id of element, bulkdata path) for every element, sequences included."""
    for element in dataset:
        path = f"{prefix}{tag_hex(element.tag)}"
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                yield from _element_paths(item, f"{path}/{index}/")
        else:
            yield id(element), path


def dataset_to_json(dataset: Dataset, instance_path: str) -> JsonObject:
    """The DICOM JSON of ``dataset``; bulk values refer to ``{instance_path}/bulkdata/{path}``.

    ``instance_path`` is relative to the DICOMweb root and starts with ``/studies/``.
    Elements whose value pydicom cannot encode are left out rather than failing the instance.
    """
    paths = dict(_element_paths(dataset))

    def bulk_uri(element: DataElement) -> str:
        return f"{instance_path}/bulkdata/{paths[id(element)]}"

    result: JsonObject = dataset.to_json_dict(
        bulk_data_threshold=BULK_DATA_THRESHOLD,
        bulk_data_element_handler=bulk_uri,
        suppress_invalid_tags=True,
    )
    return result


def json_to_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON, the form stored in the index and served."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def absolute_bulkdata_uris(body: bytes, dicomweb_root: str) -> bytes:
    """Prefix every relative BulkDataURI in serialized JSON with ``dicomweb_root``.

    Safe on compact JSON from :func:`json_to_bytes`: a string value containing the marker
    would have its quotes escaped, so only real BulkDataURI keys match.
    """
    return body.replace(_BULK_MARK, b'"BulkDataURI":"' + dicomweb_root.encode() + b"/")
