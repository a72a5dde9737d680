"""The multipart/related parser and media-type parsing, on the framings clients really send."""

from __future__ import annotations

import pytest

from radpacs.dicom.mediatypes import parse_accept, parse_media_type
from radpacs.dicom.multipart import MultipartError, MultipartParser

BODY = (
    b"preamble to ignore\r\n"
    b"--b1\r\nContent-Type: application/dicom\r\n\r\nfirst\r\npart\r\n"
    b"--b1\r\nContent-Type: application/dicom\r\nContent-Length: 6\r\n\r\nsecond\r\n"
    b"--b1--\r\nepilogue"
)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, len(BODY)])
def test_parts_are_the_same_whatever_the_chunk_size(chunk: int) -> None:
    parser = MultipartParser(b"b1")
    for start in range(0, len(BODY), chunk):
        parser.feed(BODY[start : start + chunk])
    parts = parser.close()
    assert [part.read() for part in parts] == [b"first\r\npart", b"second"]
    assert parts[1].headers["content-length"] == "6"
    assert parts[0].content_type == "application/dicom"


def test_a_body_without_its_closing_delimiter_is_refused() -> None:
    parser = MultipartParser(b"b1")
    parser.feed(BODY[: BODY.index(b"--b1--")])
    with pytest.raises(MultipartError, match="cut short"):
        parser.close()


def test_a_body_that_never_uses_the_boundary_is_refused() -> None:
    parser = MultipartParser(b"other")
    parser.feed(BODY)
    with pytest.raises(MultipartError, match="boundary"):
        parser.close()


def test_a_malformed_header_line_is_refused() -> None:
    parser = MultipartParser(b"b1")
    with pytest.raises(MultipartError, match="malformed part header"):
        parser.feed(b"--b1\r\nno colon here\r\n\r\nx\r\n--b1--")


def test_an_empty_boundary_is_refused() -> None:
    with pytest.raises(MultipartError):
        MultipartParser(b"")


def test_media_type_parameters_quoted_or_not() -> None:
    quoted = parse_media_type('multipart/related; type="application/dicom"; boundary="a b;c"')
    bare = parse_media_type("Multipart/Related;type=application/dicom;boundary=abc")
    assert quoted.type == bare.type == "multipart/related"
    assert quoted.param("type") == bare.param("type") == "application/dicom"
    assert quoted.param("boundary") == "a b;c"


def test_accept_lists_split_outside_quotes_and_sort_by_quality() -> None:
    ranges = parse_accept(
        'multipart/related; type="image/jpeg"; q=0.5, '
        'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    )
    assert [r.param("type") for r in ranges] == ["application/octet-stream", "image/jpeg"]
    assert parse_accept(None)[0].type == "*/*"
