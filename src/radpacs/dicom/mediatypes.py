"""Media types and transfer syntaxes as DICOMweb negotiates them (PS3.18 8.7).

Parses ``Content-Type`` and ``Accept`` headers, quoted parameters and commas inside quotes
included, into :class:`MediaType` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DICOM",
    "DICOM_JSON",
    "DICOM_XML",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "MULTIPART_RELATED",
    "OCTET_STREAM",
    "MediaType",
    "parse_accept",
    "parse_media_type",
]

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
MULTIPART_RELATED = "multipart/related"
OCTET_STREAM = "application/octet-stream"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"


@dataclass(frozen=True)
class MediaType:
    """A media type with lower-case type and parameter names; values keep their case."""

    type: str
    params: dict[str, str] = field(default_factory=dict)

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    @property
    def quality(self) -> float:
        try:
            return float(self.params.get("q", "1"))
        except ValueError:
            return 0.0


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    pieces, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            quoted = not quoted
            current.append(char)
        elif char == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_media_type(text: str) -> MediaType:
    """``multipart/related; type="application/dicom"; boundary=x`` as a MediaType."""
    head, *params = _split_outside_quotes(text, ";")
    parsed: dict[str, str] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if sep and name.strip():
            parsed[name.strip().lower()] = _unquote(value)
    return MediaType(head.strip().lower(), parsed)


def parse_accept(header: str | None) -> list[MediaType]:
    """The media ranges of an Accept header, best quality first; ``*/*`` when absent."""
    if not header or not header.strip():
        return [MediaType("*/*")]
    ranges = [parse_media_type(item) for item in _split_outside_quotes(header, ",") if item.strip()]
    ranges = [item for item in ranges if item.quality > 0]
    return sorted(ranges, key=lambda item: -item.quality) or [MediaType("*/*")]
