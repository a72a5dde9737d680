"""Accept-header negotiation for DICOMweb resources (PS3.18 8.7.3-8.7.5).

Each function picks the first acceptable media range of the request and says what to produce,
or raises NotAcceptable naming what the server can offer.
"""

from __future__ import annotations

from dataclasses import dataclass

from radpacs.dicom.mediatypes import (
    DICOM,
    DICOM_JSON,
    DICOM_XML,
    EXPLICIT_VR_LITTLE_ENDIAN,
    MULTIPART_RELATED,
    OCTET_STREAM,
    parse_accept,
)
from radpacs.dicom.pixels import FRAME_MEDIA_TYPES
from radpacs.dicom.render import JPEG as RENDERED_JPEG
from radpacs.dicom.render import PNG as RENDERED_PNG
from radpacs.errors import NotAcceptable

__all__ = [
    "AS_STORED",
    "FrameChoice",
    "InstanceChoice",
    "RenderedChoice",
    "choose_bulkdata",
    "choose_frames",
    "choose_instances",
    "choose_json",
    "choose_rendered",
    "wants_xml",
]

AS_STORED = "*"
_ANY = {"*/*", "multipart/*"}
_JSON = {DICOM_JSON, "application/json", "application/*"}


def choose_json(accept: str | None) -> None:
    """Accept DICOM JSON (QIDO results, metadata, STOW answers) or raise NotAcceptable."""
    for media in parse_accept(accept):
        if media.type in _JSON or media.type == "*/*":
            return
    raise NotAcceptable(f"this resource is served as {DICOM_JSON}; Accept was {accept!r}")


@dataclass(frozen=True)
class InstanceChoice:
    """How to send instances: multipart or a single file, in which transfer syntax."""

    transfer_syntax: str
    multipart: bool = True


def choose_instances(accept: str | None, single_allowed: bool) -> InstanceChoice:
    """Instances are sent multipart/related; type=application/dicom, as stored by default."""
    for media in parse_accept(accept):
        syntax = media.param("transfer-syntax", AS_STORED)
        if media.type in _ANY:
            return InstanceChoice(AS_STORED)
        if media.type == MULTIPART_RELATED and media.param("type", DICOM).lower() in (DICOM, "*/*"):
            return InstanceChoice(syntax)
        if media.type == DICOM and single_allowed:
            return InstanceChoice(syntax, multipart=False)
    raise NotAcceptable(
        f'instances are served as multipart/related; type="{DICOM}"'
        + (f" or {DICOM}" if single_allowed else "")
        + f"; Accept was {accept!r}"
    )


@dataclass(frozen=True)
class FrameChoice:
    """How to send frames: as stored, or decoded to native little endian."""

    as_stored: bool
    media_type: str = OCTET_STREAM


def choose_frames(accept: str | None, stored_syntax: str) -> FrameChoice:
    """Frames are multipart/related; type=application/octet-stream, decoded by default.

    ``transfer-syntax=*`` (OHIF's request) returns the stored bitstream; an image type such
    as image/jpeg is served only when the stored syntax already is that type.
    """
    stored_type = FRAME_MEDIA_TYPES.get(stored_syntax, OCTET_STREAM)
    for media in parse_accept(accept):
        part_type = media.param("type", OCTET_STREAM).lower()
        syntax = media.param("transfer-syntax", "")
        if media.type in _ANY:
            return FrameChoice(as_stored=False)
        if media.type == MULTIPART_RELATED and part_type == "*/*":
            return FrameChoice(as_stored=True, media_type=stored_type)
        if media.type not in (MULTIPART_RELATED, OCTET_STREAM) and media.type != stored_type:
            continue
        if media.type == stored_type and media.type != OCTET_STREAM:
            part_type = stored_type
        if part_type == OCTET_STREAM:
            if syntax == AS_STORED or (syntax and syntax == stored_syntax):
                return FrameChoice(as_stored=True, media_type=stored_type)
            if syntax in ("", EXPLICIT_VR_LITTLE_ENDIAN):
                return FrameChoice(as_stored=False)
            continue
        if part_type == stored_type and syntax in ("", AS_STORED, stored_syntax):
            return FrameChoice(as_stored=True, media_type=stored_type)
    raise NotAcceptable(
        "frames of this instance are served as multipart/related; "
        f'type="{OCTET_STREAM}" (decoded, or transfer-syntax=* as stored'
        + (f', or type="{stored_type}"' if stored_type != OCTET_STREAM else "")
        + f"); Accept was {accept!r}"
    )


def choose_bulkdata(accept: str | None) -> bool:
    """True for a multipart/related answer, False for a bare application/octet-stream body."""
    for media in parse_accept(accept):
        if media.type == "multipart/*" or (
            media.type == MULTIPART_RELATED
            and media.param("type", OCTET_STREAM) in (OCTET_STREAM, "*/*")
        ):
            return True
        if media.type in (OCTET_STREAM, "*/*", "application/*"):
            return False
    raise NotAcceptable(f"bulk data is served as {OCTET_STREAM}; Accept was {accept!r}")


@dataclass(frozen=True)
class RenderedChoice:
    """How to send a rendered resource: image/jpeg or image/png, single part or multipart."""

    media_type: str
    multipart: bool = False


def choose_rendered(accept: str | None, accept_query: str | None = None) -> RenderedChoice:
    """Rendered resources (PS3.18 8.3.5.1.3): image/jpeg (default) or image/png.

    The ``accept`` query parameter (PS3.18 8.3.3.1, OHIF sends ``accept=image/jpeg``) wins
    over the header; ``multipart/related; type=image/...`` asks for a multipart body.
    """
    header = accept_query if accept_query else accept
    for media in parse_accept(header):
        if media.type in (RENDERED_JPEG, RENDERED_PNG):
            return RenderedChoice(media.type)
        if media.type in ("*/*", "image/*"):
            return RenderedChoice(RENDERED_JPEG)
        if media.type == MULTIPART_RELATED:
            part_type = media.param("type", RENDERED_JPEG).lower()
            if part_type in (RENDERED_JPEG, RENDERED_PNG):
                return RenderedChoice(part_type, multipart=True)
            if part_type in ("*/*", "image/*"):
                return RenderedChoice(RENDERED_JPEG, multipart=True)
    raise NotAcceptable(
        f"rendered images are served as {RENDERED_JPEG} or {RENDERED_PNG}; Accept was {header!r}"
    )


def wants_xml(accept: str | None) -> bool:
    """True when Accept prefers multipart/related; type=application/dicom+xml (PS3.18 8.7.4).

    Otherwise the answer is DICOM JSON, or NotAcceptable when neither is acceptable.
    """
    for media in parse_accept(accept):
        if media.type == MULTIPART_RELATED and media.param("type").lower() == DICOM_XML:
            return True
        if media.type in _JSON or media.type == "*/*":
            return False
    raise NotAcceptable(
        f'this resource is served as {DICOM_JSON} or multipart/related; type="{DICOM_XML}"; '
        f"Accept was {accept!r}"
    )
