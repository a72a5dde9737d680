"""Resolve attribute identifiers as QIDO-RS writes them: a keyword or a tag (00100020)."""

from __future__ import annotations

import re
from functools import lru_cache

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from radpacs.errors import InvalidQuery

__all__ = ["keyword_of", "resolve_tag", "tag_hex", "vr_of"]

_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


def resolve_tag(identifier: str) -> int:
    """The tag for a keyword or an eight-digit hex tag; InvalidQuery names anything else.

    >>> hex(resolve_tag("PatientID")), hex(resolve_tag("00100020"))
    ('0x100020', '0x100020')
    """
    if _HEX_TAG.match(identifier):
        return int(identifier, 16)
    tag = tag_for_keyword(identifier)
    if tag is None:
        raise InvalidQuery(f"{identifier!r} is neither a DICOM keyword nor an 8-digit hex tag")
    return int(tag)


@lru_cache(maxsize=65536)
def tag_hex(tag: int) -> str:
    """The eight upper-case hex digits DICOM JSON uses as a key (cached: the same few hundred
    tags recur in every file stored)."""
    return f"{tag:08X}"


def keyword_of(tag: int) -> str:
    """The keyword of a tag, or its hex form when the dictionary has none (private tags)."""
    return keyword_for_tag(tag) or tag_hex(tag)


def vr_of(tag: int) -> str:
    """The dictionary VR of a tag; 'UN' for private or unknown tags, the first of ambiguous ones."""
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return "UN"
    return vr.split(" or ")[0]
