"""Messages GNOME Evolution reads otherwise than mailproxy.mime (which follows Dovecot) and the engine do,
in ways that would let HTML (or anything remote) reach its WebKit view unfiltered. Each case names the
evolution-data-server (camel) or Evolution (em-format) function whose reading it follows; the engine must
leave nothing remote in what Evolution would render.
"""

from __future__ import annotations

import base64
import binascii

import pytest

from mailproxy import mime
from mailproxy.engine import Engine, may_change

TRACKER = "https://news.us5.list-manage.com/track/open.php?u=0123456789abcdef012345678&id=abcdef0123"
BEACON = b'<p>Hi</p><img src="' + TRACKER.encode() + b'" width=1 height=1>'
HEAD = b"From: Shop <news@shop.example>\r\nTo: alice@example.org\r\nSubject: Deals\r\nMIME-Version: 1.0\r\n"
ENGINE = Engine()


def rewritten(raw: bytes) -> bytes:
    """The message as the IMAP filter delivers it: through the engine when ``may_change`` says so."""
    if not may_change(raw):
        return raw
    out = ENGINE.rewrite(raw).data
    assert len(out) == len(raw) and out.count(b"\n") == raw.count(b"\n")
    return out


def test_a_delimiter_of_an_outer_boundary_is_an_inner_one_to_evolution() -> None:
    # camel-mime-parser.c, folder_boundary_check: the innermost open boundary that prefixes the line
    # wins ("B" before "BB"), where Dovecot takes the longest. "--BB--" is then no close delimiter but
    # one of "B", and the HTML after it, the outer multipart's epilogue to Dovecot, is a part to Evolution.
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--BB--\r\nContent-Type: text/html\r\n\r\n" + BEACON + b"\r\n"
    )
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in rewritten(raw)


def test_nested_boundaries_evolution_reads_alike_stay_unambiguous() -> None:
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: multipart/alternative; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain\r\n\r\nhi\r\n--BB\r\nContent-Type: text/html\r\n\r\n"
        + BEACON
        + b"\r\n--BB--\r\n--B--\r\n"
    )
    assert not mime.parse(raw).walk()[1].ambiguous and not mime.parse(raw).ambiguous


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "content_type",
    [
        b"(ad) text/html",  # camel_content_type_decode skips comments before a token
        b"text/html=1",  # a token ends at a tspecial
        b"text/html\x01",  # or a control character
        b"text/ (x) html",
    ],
)
def test_a_type_camel_reads_as_html_is_neutralized(content_type: bytes) -> None:
    raw = HEAD + b"Content-Type: " + content_type + b"\r\n\r\n" + BEACON + b"\r\n"
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in rewritten(raw)


def test_a_type_field_named_up_to_a_nul_is_read_by_camel() -> None:
    # camel-mime-parser.c, header_raw_find compares the name as a C string: "Content-Type\0x" is
    # Content-Type to it; Dovecot and the stdlib skip the line and read text/plain.
    raw = HEAD + b"Content-Type\x00x: text/html\r\n\r\n" + BEACON + b"\r\n"
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in rewritten(raw)


@pytest.mark.parametrize("cte", [b"(x) base64", b"base64:x", b"base64=", b'base64"'])
def test_an_encoding_camel_reads_as_base64_is_neutralized(cte: bytes) -> None:
    # camel_content_transfer_encoding_decode: comments skipped, the token ends at a tspecial. Read as
    # the bytes they are, these parts showed the engine base64 text and nothing to rewrite.
    raw = (
        HEAD
        + b"Content-Type: text/html\r\nContent-Transfer-Encoding: "
        + cte
        + b"\r\n\r\n"
        + base64.encodebytes(BEACON).replace(b"\n", b"\r\n")
    )
    assert mime.parse(raw).ambiguous
    assert TRACKER.encode() not in base64.b64decode(body_of(rewritten(raw)))


def test_an_encoding_camel_reads_as_uuencode_is_blanked() -> None:
    uu = b"".join(
        binascii.b2a_uu(BEACON[i : i + 45]).replace(b"\n", b"\r\n") for i in range(0, len(BEACON), 45)
    )
    raw = (
        HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: x-uuencode=1\r\n\r\n"
        b"begin 644 a.html\r\n" + uu + b"`\r\nend\r\n"
    )
    assert not body_of(rewritten(raw)).strip()


def test_encodings_read_alike_stay_as_they_are() -> None:
    for cte in (b"base64", b"BASE64 (x)", b"quoted-printable", b"7bit", b"8bit; x"):
        raw = HEAD + b"Content-Type: text/html\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\nx\r\n"
        assert not mime.parse(raw).ambiguous, cte
